"""nl-lossless stream mode: a loss that spans a keyframe is detected, never decoded silently wrong.

Version-3 predicted frames carried their index since the last keyframe: when the lost frames held a keyframe
exactly ``g`` frames after the decoder's one (short keyframe intervals, or a keyframe forced by a request or
a level switch), the next frame's index equalled the one the old state expected and it decoded against the
wrong reference. Version 4 runs the index on from the keyframe's 6-bit counter, so any gap of 1-15 frames
changes it (the receiver restarts its decoders on longer gaps, COUNTER_SAFE_GAP)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolink.codecs import get_codec
from neurolink.errors import MissingReferenceError
from neurolink.receiver import COUNTER_SAFE_GAP

# 256-row frames: a 4-frame keyframe interval holds >= LPC_MIN_ROWS rows, so the stream is version 3/4 (LPC,
# headerless predicted frames); 30-row frames need an interval >= 34 for that, where only forced keyframes can
# fall inside a short gap
_X = np.cumsum(np.random.default_rng(3).integers(-40, 40, (64 * 256, 8)), axis=0).astype(np.int16)
_FRAMES = [_X[i:i + 256] for i in range(0, _X.shape[0], 256)]


def _stream(interval: int, forced: frozenset = frozenset()) -> list[bytes]:
    enc = get_codec({"id": "nl-lossless", "keyframe_interval": interval})
    out = []
    for i, f in enumerate(_FRAMES):
        if i in forced:
            enc.request_keyframe()
        out.append(enc.encode(f))
    return out


def test_losing_exactly_up_to_the_next_keyframe_is_detected():
    # keyframes at 0, 4, 8, ...; the decoder holds frame 2 (index 2); frames 3-6 are lost (keyframe 4 among
    # them); frame 7 is 3 frames after keyframe 4, the index the old state expects next
    msgs = _stream(4)
    dec = get_codec({"id": "nl-lossless", "keyframe_interval": 4})
    for i in range(3):
        assert np.array_equal(dec.decode(msgs[i]), _FRAMES[i])
    with pytest.raises(MissingReferenceError):
        dec.decode(msgs[7])
    assert np.array_equal(dec.decode(msgs[8]), _FRAMES[8])  # the next keyframe resumes, exact


@settings(max_examples=150, deadline=None)
@given(interval=st.integers(1, 20), forced=st.frozensets(st.integers(1, 63), max_size=8),
       lost=st.lists(st.tuples(st.integers(1, 62), st.integers(1, COUNTER_SAFE_GAP - 1)), max_size=4))
def test_any_short_loss_decodes_exact_or_waits(interval, forced, lost):
    msgs = _stream(interval, forced)
    drop = {i for start, g in lost for i in range(start, start + g)}
    dec = get_codec({"id": "nl-lossless", "keyframe_interval": interval})
    for i, m in enumerate(msgs):
        if i in drop:
            continue
        try:
            y = dec.decode(m)
        except MissingReferenceError:
            continue
        assert np.array_equal(y, _FRAMES[i]), f"frame {i} decoded silently wrong"
