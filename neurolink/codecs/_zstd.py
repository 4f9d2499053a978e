"""Bounded zstd decompression shared by the codecs that use zstd for a part of their payload."""

from __future__ import annotations

import zstandard

from neurolink.codecs.base import current_decode_limit
from neurolink.errors import CodecError


def inflate_exact(dctx: zstandard.ZstdDecompressor, payload: bytes, expected: int, where: str) -> bytes:
    """Decompress ``payload`` that must hold exactly ``expected`` bytes; anything else is a CodecError
    naming ``where``. Why: zstd allocates what a frame declares up front, so a hostile frame declaring
    gigabytes is refused before decompression, and output is capped at ``expected``, which must itself be
    within the current decode limit (:func:`~neurolink.codecs.base.decode_limit`)."""
    limit = current_decode_limit()
    if expected > limit:
        raise CodecError(f"{where}: {expected} bytes to inflate, above the decode limit of {limit} bytes")
    try:
        declared = zstandard.frame_content_size(payload)
        if declared not in (-1, expected):
            raise CodecError(f"{where}: zstd frame declares {declared} bytes, expected {expected}")
        raw = dctx.decompress(payload, max_output_size=expected)
    except zstandard.ZstdError as exc:
        raise CodecError(f"{where}: corrupt zstd data: {exc}") from exc
    if len(raw) != expected:
        raise CodecError(f"{where}: decodes to {len(raw)} bytes, expected {expected}")
    return raw
