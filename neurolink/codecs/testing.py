"""Shared codec test kit: every codec's tests call these (as numcodecs' ``tests/common.py``).

Third-party codecs can use it too: ``from neurolink.codecs.testing import check_roundtrip``.
"""

from __future__ import annotations

import json

import numpy as np

from neurolink.codecs.base import Codec
from neurolink.codecs.registry import get_codec
from neurolink.errors import CodecError, MissingReferenceError

#: one config of every lossy codec (the rate knob mid-range): the families' shared hostile-input tests
LOSSY_CONFIGS: list[dict] = [
    {"id": "nl-spike", "step": 8.0},
    {"id": "nl-nearlossless", "k": 4},
    {"id": "nl-nearlossless-lpc", "k": 4},
    {"id": "nl-dpcm", "step": 8.0},
    {"id": "nl-wavelet", "step": 32.0},
    {"id": "nl-pca", "step": 32.0},
    {"id": "nl-vq", "bits": 6},
    {"id": "nl-cs", "m": 6, "qstep": 8.0},
    {"id": "nl-ae", "step": 0.2},
]


def check_config_roundtrip(codec: Codec) -> None:
    cfg = codec.get_config()
    assert isinstance(cfg.get("id"), str)
    assert json.loads(json.dumps(cfg)) == cfg, "config must be plain JSON"
    again = get_codec(cfg)
    assert again.get_config() == cfg


def check_roundtrip(codec: Codec, x: np.ndarray, *, max_abs_error: float | None = None) -> np.ndarray:
    """Encode then decode with a *fresh* decoder instance; lossless codecs must be bit-exact."""
    blob = codec.encode(x)
    assert isinstance(blob, (bytes, bytearray)), "encode must return bytes"
    dec = get_codec(codec.get_config())
    y = dec.decode(bytes(blob))
    x2 = x if x.ndim == 2 else x[:, None]
    assert y.shape == x2.shape, f"shape {y.shape} != {x2.shape}"
    assert y.dtype == x2.dtype, f"dtype {y.dtype} != {x2.dtype}"
    if codec.lossless:
        assert np.array_equal(y, x2), "lossless codec is not bit-exact"
    elif max_abs_error is not None:
        err = np.max(np.abs(y.astype(np.float64) - x2.astype(np.float64))) if x2.size else 0.0
        assert err <= max_abs_error, f"max abs error {err} > {max_abs_error}"
    return y


def check_stream_roundtrip(codec: Codec, x: np.ndarray, frame: int) -> None:
    """Streaming use: consecutive frames through one encoder and one decoder stay exact (lossless)."""
    enc = get_codec(codec.get_config())
    dec = get_codec(codec.get_config())
    for start in range(0, x.shape[0], frame):
        part = x[start : start + frame]
        y = dec.decode(enc.encode(part))
        if codec.lossless:
            assert np.array_equal(y, part), f"frame at {start} not bit-exact"
        else:
            assert y.shape == part.shape


def check_corruption(codec: Codec, x: np.ndarray, *, seed: int = 0, trials: int = 50) -> None:
    """Truncated or bit-flipped payloads raise CodecError or decode to the right shape: never crash."""
    rng = np.random.default_rng(seed)
    blob = bytearray(codec.encode(x))
    cases: list[bytes] = [b"", bytes(blob[:1]), bytes(blob[: len(blob) // 2]), bytes(blob[:-1])]
    for _ in range(trials):
        b = bytearray(blob)
        if b:
            for _k in range(int(rng.integers(1, 4))):
                b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
        cases.append(bytes(b))
    for case in cases:
        dec = get_codec(codec.get_config())
        try:
            y = dec.decode(case)
        except CodecError:
            continue
        assert isinstance(y, np.ndarray) and y.ndim == 2


def encode_frames(codec: Codec, x: np.ndarray, frame: int) -> list[bytes]:
    """Consecutive frames of ``frame`` samples of x through one encoder (its stream of payloads)."""
    return [codec.encode(x[i : i + frame]) for i in range(0, x.shape[0], frame)]


def stream(config: dict, x: np.ndarray, frame: int) -> tuple[np.ndarray, int]:
    """x in frames through a fresh encoder and decoder: (the reconstruction, concatenated; payload bytes)."""
    enc, dec = get_codec(config), get_codec(config)
    out, total = [], 0
    for b in encode_frames(enc, x, frame):
        total += len(b)
        out.append(dec.decode(b))
    return np.concatenate(out), total


def check_stream_contract(config: dict, x: np.ndarray, frame: int, *, corruption_trials: int = 50) -> list[bytes]:
    """The config round-trips, x streams through in frames, corrupt payloads of its first two frames never
    crash; returns the payloads of x in frames from one encoder (for loss and join tests)."""
    check_config_roundtrip(get_codec(config))
    check_stream_roundtrip(get_codec(config), x, frame)
    check_corruption(get_codec(config), x[: frame * 2], trials=corruption_trials)
    return encode_frames(get_codec(config), x, frame)


def check_bad_input(config: dict) -> None:
    """Non-finite floats and unsupported dtypes raise CodecError, and the message says which."""
    for x, word in ((np.full((4, 2), np.nan, np.float32), "finite"), (np.zeros((4, 2), np.int64), "dtype")):
        try:
            get_codec(config).encode(x)
        except CodecError as exc:
            assert word in str(exc), f"CodecError for bad {word} does not say so: {exc}"
        else:
            raise AssertionError(f"{config['id']}: no CodecError for a bad {word}")


def check_float32_and_1d(config: dict, *, channels: int = 3) -> np.ndarray:
    """float32 in -> finite float32 out, a 1-D int16 array round-trips, bad input raises CodecError."""
    x = np.random.default_rng(0).normal(0, 50, (30, channels)).astype(np.float32)
    y = check_roundtrip(get_codec(config), x)
    assert y.dtype == np.float32 and np.all(np.isfinite(y))
    check_roundtrip(get_codec(config), np.arange(15, dtype=np.int16))
    check_bad_input(config)
    return y


def check_loss_recovery(config: dict, blobs: list[bytes], *, keyframe: int = 100,
                        ref: list[np.ndarray] | None = None, join_at: int | None = None) -> np.ndarray:
    """A stream (``blobs``, keyframes every ``keyframe`` frames) loses frame 1: every later frame raises
    MissingReferenceError until the keyframe, from which decoding resumes (equal to an undisturbed
    decoder's ``ref`` when given). A fresh decoder (a receiver joining late) at keyframe ``join_at``
    (default: that keyframe) decodes the same frame. Returns the first frame decoded after the loss."""
    dec = get_codec(config)
    dec.decode(blobs[0])
    for i in range(2, keyframe):
        try:
            dec.decode(blobs[i])
        except MissingReferenceError:
            continue
        raise AssertionError(f"frame {i} decoded without its reference (frame 1 was lost)")
    out = [dec.decode(b) for b in blobs[keyframe:]]
    if ref is not None:
        for i, y in enumerate(out, keyframe):
            assert np.array_equal(y, ref[i]), f"frame {i} differs from an undisturbed decoder's"
    j = keyframe if join_at is None else join_at
    late = get_codec(config).decode(blobs[j])
    assert np.array_equal(late, ref[j] if ref is not None else out[j - keyframe]), "a late joiner decodes differently"
    return out[0]


def check_corrupt_predicted_frames(config: dict, *, trials: int = 20, seed: int = 1) -> None:
    """Bit flips in frames after a good keyframe (the decoder has state) raise CodecError or decode."""
    rng = np.random.default_rng(seed)
    x = np.rint(rng.normal(2000, 60, (15 * 6, 4))).astype(np.int16)
    blobs = encode_frames(get_codec(config), x, 15)
    for trial in range(trials):
        dec = get_codec(config)
        dec.decode(blobs[0])
        b = bytearray(blobs[1 + trial % 5])
        for _ in range(3):
            b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
        try:
            y = dec.decode(bytes(b))
        except CodecError:
            continue
        assert y.shape == (15, 4)
