"""Which codec each level runs for a stream: the daemon leaves an unconfigured ladder to the sender, which
resolves the packaged one per channel format; a configured ladder is the user's word."""

import numpy as np

from neurolink.codecs import load_ladder
from neurolink.config import validate_sender
from neurolink.daemon import build_specs
from neurolink.sender import StreamSpec, _Stream
from neurolink.sources.base import StreamMeta
from neurolink.sources.replay import Recording, ReplaySource

DEFAULT_LADDER = str(load_ladder().source)


def _cfg(**stream):
    return validate_sender({"transport": {"kind": "zmq", "data": "tcp://127.0.0.1:5999"},
                            "stream": [{"id": 1, "source": {"kind": "synthetic", "channels": 2}, **stream}]})


def test_daemon_leaves_an_unconfigured_ladder_to_the_sender():
    assert build_specs(_cfg())[0].ladder is None
    assert build_specs(_cfg(ladder=DEFAULT_LADDER))[0].ladder is not None


def _stream(fmt: str, ladder=None) -> _Stream:
    meta = StreamMeta("eeg", "EEG", "src", 1000.0, 8, fmt)
    src = ReplaySource(Recording(np.zeros((10, 8), np.dtype(fmt)), 1000.0, [], "eeg", "EEG", "uV"))
    return _Stream(StreamSpec(src, 1, ladder), meta)


def test_float_stream_with_the_packaged_ladder_codes_counts_at_every_level():
    packaged = load_ladder()
    st = _stream("float32")
    assert st.ladder[0] == {"id": "nl-float"}
    for lv, orig in list(zip(st.ladder, packaged, strict=True))[1:]:
        assert lv == {"id": "nl-float", "inner": orig}
    assert st.ladder.names[1].endswith("->nl-float")


def test_a_configured_ladder_is_kept_where_its_codecs_take_the_format():
    packaged = load_ladder()
    st = _stream("float32", packaged)  # configured explicitly: nl-nearlossless takes float32 as it is
    assert st.ladder[0] == {"id": "nl-float"} and st.ladder[1] == packaged[1]
    assert list(_stream("int16").ladder) == list(packaged)
