"""Archive blocks: several consecutive live frames coded as one self-contained nl-lossless payload.

Why blocks: nl-lossless archive mode costs ~10x less CPU per sample (and compresses a little better) on
100-frame blocks than on 1 ms frames, and the archive path has no latency target. Each frame's own
first-sample timestamp is kept, so per-sample timestamps are exactly what the live path would produce.

Payload: ``n_frames u32 | n_frames x (n_samples u32, t0 f64) | archive codec payload`` (nl-lossless archive
mode for int16/int32, see ``neurolink.sinks.archive.archive_codec_for``; string (marker) streams: nl-text, with
the frame header's dtype ``string``; an irregular stream's frame is one marker with its own t0).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from neurolink.codecs.base import frame_decode_limit
from neurolink.errors import WireFormatError
from neurolink.framer import RawFrame

_N = struct.Struct("<I")
_ENTRY = np.dtype([("n", "<u4"), ("t0", "<f8")])
MAX_BLOCK_FRAMES = 1 << 16


def pack_block(frames: list[RawFrame], codec: Any) -> tuple[np.ndarray, bytes]:
    """Concatenated samples and the block payload."""
    data = frames[0].data if len(frames) == 1 else np.concatenate([f.data for f in frames])
    table = np.array([(f.data.shape[0], f.timestamp) for f in frames], dtype=_ENTRY)
    return data, _N.pack(len(frames)) + table.tobytes() + codec.encode(data)


def unpack_block(payload: bytes, n_samples: int, n_channels: int, codec: Any, fs: float,
                 dtype: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(samples, per-sample timestamps) of one block; WireFormatError on any inconsistency (``dtype``: the
    frame header's, checked too when given: the archive would otherwise cast a mismatching block silently)."""
    if len(payload) < _N.size:
        raise WireFormatError("payload", 40, "archive block shorter than its frame count")
    (k,) = _N.unpack_from(payload, 0)
    end = _N.size + k * _ENTRY.itemsize
    if not 1 <= k <= MAX_BLOCK_FRAMES or len(payload) < end:
        raise WireFormatError("payload", 40, f"archive block frame table of {k} entries does not fit {len(payload)} bytes")
    table = np.frombuffer(payload, dtype=_ENTRY, count=k, offset=_N.size)
    if int(table["n"].sum()) != n_samples or not np.all(np.isfinite(table["t0"])):
        raise WireFormatError("payload", 44, f"archive block table sums to {int(table['n'].sum())} samples, header says {n_samples}")
    with frame_decode_limit(n_samples, n_channels, dtype or "int64"):  # a block decodes to no more than it claims
        data = codec.decode(payload[end:])
    if data.shape != (n_samples, n_channels):
        raise WireFormatError("payload", end + 40, f"archive block decodes to {data.shape}, header says {(n_samples, n_channels)}")
    got = "string" if data.dtype == object else data.dtype.name  # nl-text decodes to object arrays of str
    if dtype is not None and got != dtype:
        raise WireFormatError("payload", end + 40, f"archive block decodes to {got}, header says {dtype}")
    counts = table["n"].astype(np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    idx = np.arange(n_samples) - starts
    ts = np.repeat(table["t0"], counts) + (idx / fs if fs > 0 else 0.0)
    return data, ts
