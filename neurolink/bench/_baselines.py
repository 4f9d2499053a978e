"""Reference lossy schemes the rate-distortion bench compares against (not registered codecs).

They take the same 1 ms frames as the neurolink codecs, so the comparison is like for like:
- WavPack hybrid (wavpack-numcodecs, ``bps`` bits per sample): it cannot encode a 1 ms frame (its
  output buffer is sized to the input), so it runs on the smallest block that works and says so;
- bit-depth truncation: drop ``bits`` LSBs (round to nearest), then delta+zstd;
- decimation: average ``factor`` samples, delta+zstd, hold on decode.
"""

from __future__ import annotations

import numpy as np

from neurolink.codecs import get_codec


class Truncate:
    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.z = get_codec({"id": "delta-zstd", "level": 3})

    def encode(self, x: np.ndarray) -> bytes:
        q = np.rint(x.astype(np.float64) / (1 << self.bits)).astype(np.int16)
        return self.z.encode(q)

    def decode(self, blob: bytes) -> np.ndarray:
        return np.clip(self.z.decode(blob).astype(np.int32) << self.bits, -32768, 32767).astype(np.int16)


class Decimate:
    def __init__(self, factor: int) -> None:
        self.factor = factor
        self.z = get_codec({"id": "delta-zstd", "level": 3})

    def encode(self, x: np.ndarray) -> bytes:
        n = x.shape[0]
        m = -(-n // self.factor)
        pad = np.concatenate([x, np.repeat(x[-1:], m * self.factor - n, axis=0)]) if n % self.factor else x
        d = np.rint(pad.reshape(m, self.factor, -1).mean(axis=1)).astype(np.int16)
        return n.to_bytes(2, "little") + self.z.encode(d)

    def decode(self, blob: bytes) -> np.ndarray:
        n = int.from_bytes(blob[:2], "little")
        return np.repeat(self.z.decode(blob[2:]), self.factor, axis=0)[:n]


class WavPackHybrid:
    def __init__(self, bps: float) -> None:
        from wavpack_numcodecs.wavpack import WavPack

        self.bps = bps
        self.c = WavPack(level=2, bps=bps, num_decoding_threads=1)

    def encode(self, x: np.ndarray) -> bytes:
        # WavPack's own header carries the channel count; prepend it for the reshape on decode.
        return x.shape[1].to_bytes(2, "little") + bytes(self.c.encode(np.ascontiguousarray(x)))

    def decode(self, blob: bytes) -> np.ndarray:
        n_ch = int.from_bytes(blob[:2], "little")
        raw = np.asarray(self.c.decode(blob[2:])).tobytes()
        return np.frombuffer(raw, np.int16).reshape(-1, n_ch)


def make_baseline(name: str, value: float):
    if name == "wavpack":
        return WavPackHybrid(float(value))
    if name == "truncate":
        return Truncate(int(value))
    if name == "decimate":
        return Decimate(int(value))
    raise KeyError(name)
