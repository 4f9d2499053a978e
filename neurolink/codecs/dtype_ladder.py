"""Which codec runs each ladder level for a stream of a given channel format.

Why: the packaged ladder is tuned for int16 ADC counts (nl-lossless, error bounds in LSB, spike steps in
counts), but LSL streams also come as float32 (most EEG amplifiers, in µV), float64, int32, int8 or int64.
A level whose codec cannot take the stream's dtype, and every lossy level of the packaged ladder for a
stream that is not int16 (its error bounds would be read in the stream's own unit: 8 "LSB" on a stream in
volts erases the signal), runs the dtype's lossless codec instead. Float streams are the exception that
keeps rate control: their values are ADC counts times a scale, so a lossy level runs as ``nl-float`` with
the level's codec on the recovered counts (``inner``), its error bound in counts as calibrated. A ladder the user configured for the stream is taken at its word wherever its codecs accept the
dtype.
"""

from __future__ import annotations

import logging
from typing import Any

from neurolink.codecs.registry import _REGISTRY, get_codec

log = logging.getLogger(__name__)

#: dtype name -> lossless codec config for levels that cannot serve that dtype
LOSSLESS_FALLBACK: dict[str, dict[str, Any]] = {
    "int16": {"id": "nl-lossless", "mode": "stream", "keyframe_interval": 100},
    "int32": {"id": "nl-lossless", "mode": "stream", "keyframe_interval": 100},
    "float32": {"id": "nl-float"},
    "float64": {"id": "nl-float"},
    "int8": {"id": "delta-zstd", "level": 3},
    "int64": {"id": "delta-zstd", "level": 3},
    "string": {"id": "nl-text"},
}

#: the dtype the packaged ladder's lossy levels are calibrated for
PACKAGED_LADDER_DTYPE = "int16"


def _accepts(config: dict[str, Any], dtype: str) -> bool:
    cls = _REGISTRY.get(config.get("id", ""))
    if cls is None:
        cls = type(get_codec(config))  # entry-point codecs: load them
    return dtype in getattr(cls, "dtypes", ())


def resolve_ladder(ladder: list[dict[str, Any]], dtype: str, *, explicit: bool, stream: str = "") -> list[dict[str, Any]]:
    """The codec configs a stream of ``dtype`` runs at each level of ``ladder`` (same number of levels).

    ``explicit``: the ladder was configured for this stream (else it is the packaged one, whose lossy
    levels only apply to int16). Logs once which levels were replaced and why."""
    if dtype not in LOSSLESS_FALLBACK:
        raise ValueError(f"stream {stream!r}: channel format {dtype!r} has no codec (known: {sorted(LOSSLESS_FALLBACK)})")
    fallback = LOSSLESS_FALLBACK[dtype]
    out: list[dict[str, Any]] = []
    replaced: list[str] = []
    lost_rate = False  # a lossy level became lossless: that level no longer lowers the rate
    for i, cfg in enumerate(ladder):
        lossless = bool(get_codec(cfg).lossless)
        keep = _accepts(cfg, dtype) and (explicit or dtype == PACKAGED_LADDER_DTYPE or lossless)
        if keep:
            out.append(dict(cfg))
        elif fallback["id"] == "nl-float" and not lossless and _accepts(cfg, PACKAGED_LADDER_DTYPE):
            # a float stream's values are ADC counts times a scale: nl-float recovers the counts and the
            # level's codec codes them, with the error bound it was calibrated for (in counts)
            out.append({**fallback, "inner": dict(cfg)})
        else:
            out.append(dict(fallback))
            replaced.append(f"{i}:{cfg.get('id')}")
            lost_rate |= not lossless
    if replaced and explicit:  # the user configured levels this stream's format cannot run
        log.warning("stream %r: configured ladder levels %s do not accept %s: they send lossless %s", stream,
                    ", ".join(replaced), dtype, fallback["id"])
    elif replaced:
        why = ("no lossy codec takes " + dtype + ": the stream is exact at every level" if lost_rate
               else "lossy levels code the recovered ADC counts" if any("inner" in c for c in out) else "")
        log.info("stream %r (%s): levels %s run %s%s", stream, dtype, ", ".join(replaced), fallback["id"],
                 f" ({why})" if why else "")
    return out


def float_configs(ladder: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every codec config a stream of another channel format runs with this (packaged-style) ladder, for
    warm-up: numba compiles a kernel per argument type, and a first float frame must not wait for it."""
    out: list[dict[str, Any]] = [dict(c) for c in LOSSLESS_FALLBACK.values() if c["id"] != "nl-text"]
    for cfg in resolve_ladder(list(ladder), "float32", explicit=False):
        if cfg not in out:
            out.append(cfg)
    return out
