import pytest

from neurolink.codecs import get_codec, list_codecs, load_ladder
from neurolink.errors import ConfigError


def test_registry_lists_builtin():
    assert "delta-zstd" in list_codecs()


def test_unknown_codec_names_key():
    with pytest.raises(ConfigError, match="codec.id"):
        get_codec({"id": "nope"})
    with pytest.raises(ConfigError, match="codec.id"):
        get_codec({"level": 1})


def test_default_ladder_level0_lossless():
    ladder = load_ladder()
    assert len(ladder) >= 1
    assert get_codec(ladder[0]).lossless


def test_ladder_errors_name_key(tmp_path):
    p = tmp_path / "l.toml"
    p.write_text('[[level]]\ncodec = { id = "nope" }\n')
    with pytest.raises(ConfigError, match=r"level\[0\]\.codec"):
        load_ladder(p)
    p.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="level"):
        load_ladder(p)
