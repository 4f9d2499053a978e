"""CRC-32 of wire messages (zlib's polynomial, so any zlib can check it).

Why not ``zlib.crc32`` alone: every frame is checksummed twice on its critical path (sender, receiver),
and at 1024 channels a frame is ~30 kB: zlib takes ~9-13 us for that, ISA-L's SIMD CRC ~1 us (measured
on this project's 2-core VM). ISA-L (``isal``) is a dependency; zlib remains the fallback where it is
not installed (same values)."""

from __future__ import annotations

try:
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - isal has wheels for the supported platforms
    from zlib import crc32

__all__ = ["crc32"]
