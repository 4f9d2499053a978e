"""Codec warm-up: compiles every level without touching real stream state, never raises."""

import numpy as np

from neurolink.codecs import load_ladder
from neurolink.codecs.warmup import _frames, main, warm_up


def test_warm_up_default_ladder_int16_and_int32():
    ladder = load_ladder()
    assert warm_up(list(ladder), 4, 15, np.int16) >= 0.0
    assert warm_up(list(ladder)[:1], 3, 2, np.int32) >= 0.0


def test_warm_up_skips_configs_that_cannot_run():
    # an unknown codec id and a shape a codec may reject must not stop a daemon from starting
    assert warm_up([{"id": "no-such-codec"}, {"id": "nl-lossless"}], 1, 1, np.int16) >= 0.0


def test_warm_up_frames_are_in_range_and_shaped():
    frames = _frames(3, 5, 2, np.dtype(np.int16))
    assert len(frames) == 3 and all(f.shape == (5, 2) and f.dtype == np.int16 for f in frames)
    assert all(f.flags.c_contiguous for f in frames)


def test_warmup_cli(capsys):
    assert main(["--dtypes", "int16"]) == 0
    assert "ladder levels" in capsys.readouterr().out
