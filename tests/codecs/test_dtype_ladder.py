"""Per-dtype ladders: every level of a stream runs a codec that accepts its channel format."""

import logging

import pytest

from neurolink.codecs import get_codec, load_ladder
from neurolink.codecs.dtype_ladder import LOSSLESS_FALLBACK, resolve_ladder


def test_int16_keeps_the_packaged_ladder():
    lad = load_ladder()
    assert resolve_ladder(list(lad), "int16", explicit=False) == list(lad)


@pytest.mark.parametrize("dtype", ["int32", "int8", "int64"])
def test_other_ints_run_their_lossless_codec_at_every_packaged_level(dtype, caplog):
    lad = load_ladder()
    with caplog.at_level(logging.INFO):
        out = resolve_ladder(list(lad), dtype, explicit=False, stream="eeg")
    assert len(out) == len(lad)
    for cfg in out:
        codec = get_codec(cfg)
        assert codec.lossless and dtype in codec.dtypes
    if dtype == "int32":
        assert out[0] == lad[0]  # nl-lossless takes int32 itself
    assert "eeg" in caplog.text and dtype in caplog.text  # one line says which levels and why (info)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_streams_keep_the_ladder_on_their_counts(dtype):
    """Lossless levels run nl-float; each lossy level runs nl-float with that level's codec on the counts."""
    lad = load_ladder()
    out = resolve_ladder(list(lad), dtype, explicit=False, stream="eeg")
    for cfg, orig in zip(out, lad, strict=True):
        codec = get_codec(cfg)
        assert cfg["id"] == "nl-float" and dtype in codec.dtypes
        assert codec.lossless == get_codec(orig).lossless
        if not codec.lossless:
            assert cfg["inner"] == orig


def test_an_explicit_ladder_is_kept_where_its_codecs_accept_the_dtype():
    mine = [{"id": "nl-float"}, {"id": "nl-nearlossless", "k": 2}, {"id": "nl-lossless"}]
    out = resolve_ladder(mine, "float32", explicit=True)
    assert out[:2] == mine[:2] and out[2] == LOSSLESS_FALLBACK["float32"]


def test_unknown_channel_format_names_it():
    with pytest.raises(ValueError, match="complex64"):
        resolve_ladder(list(load_ladder()), "complex64", explicit=False, stream="x")


def test_only_a_configured_ladder_that_cannot_apply_warns(caplog):
    with caplog.at_level(logging.WARNING):
        resolve_ladder(list(load_ladder()), "string", explicit=False, stream="markers")
        resolve_ladder(list(load_ladder()), "float32", explicit=False, stream="eeg")
    assert not caplog.records  # expected substitutions: info only
    with caplog.at_level(logging.WARNING):
        resolve_ladder([{"id": "nl-spike", "step": 4.0}], "int32", explicit=True, stream="probe")
    assert "probe" in caplog.text and "int32" in caplog.text
