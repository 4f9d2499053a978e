"""Thin helpers around pylsl: machine-local discovery, format names and channel metadata (desc XML).

``use_machine_scope()`` must run before pylsl's first resolve: LSL otherwise sends multicast and broadcast
on every interface, which tests, CI and the demo must not do.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

_CFG = """; written by neurolink: keep LSL discovery on this machine
[multicast]
ResolveScope = machine
[lab]
KnownPeers = {127.0.0.1}
"""


def use_machine_scope() -> None:
    """Limit LSL discovery to this machine (unless LSLAPICFG already points to a config)."""
    if os.environ.get("LSLAPICFG") and Path(os.environ["LSLAPICFG"]).exists():
        return
    path = Path(os.environ.get("XDG_RUNTIME_DIR", "/tmp")) / f"neurolink-lsl-{os.getuid()}.cfg"
    if not path.exists() or path.read_text() != _CFG:
        path.write_text(_CFG)
    os.environ["LSLAPICFG"] = str(path)


use_machine_scope()

import pylsl  # noqa: E402

FORMAT_NAMES = {
    pylsl.cf_float32: "float32",
    pylsl.cf_double64: "float64",
    pylsl.cf_string: "string",
    pylsl.cf_int32: "int32",
    pylsl.cf_int16: "int16",
    pylsl.cf_int8: "int8",
    pylsl.cf_int64: "int64",
}
FORMAT_CODES = {v: k for k, v in FORMAT_NAMES.items()}
MAX_DESC_XML = 1 << 20


def desc_xml(info: pylsl.StreamInfo) -> str:
    """The ``<desc>`` element of a stream (channel labels, units, acquisition metadata) as XML text."""
    root = ET.fromstring(info.as_xml())
    desc = root.find("desc")
    if desc is None:
        return "<desc />"
    return ET.tostring(desc, encoding="unicode")


def _copy_children(src: ET.Element, dst) -> None:
    for child in src:
        if len(child):
            _copy_children(child, dst.append_child(child.tag))
        else:
            dst.append_child_value(child.tag, child.text or "")


def apply_desc_xml(info: pylsl.StreamInfo, xml_text: str) -> None:
    """Recreate a ``<desc>`` tree (from :func:`desc_xml`) inside a new StreamInfo."""
    if not xml_text:
        return
    if len(xml_text) > MAX_DESC_XML:
        raise ValueError(f"desc XML of {len(xml_text)} bytes exceeds {MAX_DESC_XML}")
    root = ET.fromstring(xml_text)
    _copy_children(root, info.desc())


def channel_labels(info: pylsl.StreamInfo) -> list[str]:
    try:
        labels = info.get_channel_labels()
    except Exception:
        labels = None
    return list(labels) if labels else []


def make_info(
    name: str,
    type_: str,
    channel_count: int,
    nominal_srate: float,
    channel_format: str,
    source_id: str,
    desc: str = "",
    labels: list[str] | None = None,
    units: str | None = None,
) -> pylsl.StreamInfo:
    info = pylsl.StreamInfo(name, type_, channel_count, nominal_srate, FORMAT_CODES[channel_format], source_id)
    if desc:
        apply_desc_xml(info, desc)
    elif labels:
        chans = info.desc().append_child("channels")
        for lab in labels:
            ch = chans.append_child("channel")
            ch.append_child_value("label", lab)
            if units:
                ch.append_child_value("unit", units)
            ch.append_child_value("type", type_)
    return info
