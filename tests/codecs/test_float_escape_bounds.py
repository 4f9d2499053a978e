"""nl-float: escape positions whose deltas each fit the block but whose sum does not are rejected (CodecError),
never used as an index (found by ``bench fuzz`` at input 973,665 of 1,000,000)."""

from __future__ import annotations

import pytest
from conftest import SHARED

from neurolink.errors import CodecError, MissingReferenceError

# a keyframe naming the held parameter set, with escapes whose position deltas sum past the 15x4 integer block
BLOB = bytes.fromhex(
    "6a0fef876d2d48842104000f007f346545d45e84e04e05207bbb60d76114d743e3d1cc990ca902b5a93b0b143d5f922d9118e0075ac7"
    "f32d8eb6a05e82487890bbe94b97b6a2117c363c3669eae15d03081d28020101")


@pytest.mark.skipif(not (SHARED / "data").is_dir(), reason="needs ../shared/data (the fuzz seeds are real frames)")
def test_escape_positions_past_the_block_are_a_codec_error():
    from neurolink.bench.fuzz import _build, list_targets

    (target,) = [t for t in list_targets() if t["name"] == "codec.nl-float"]
    decode, seeds, _, reset = _build(target)
    reached = 0
    for i in range(len(seeds)):  # the decoder state the fuzzer had: after some prefix of the seeds
        reset()
        for s in seeds[:i + 1]:
            try:
                decode(s)
            except (CodecError, MissingReferenceError):
                pass
        try:
            decode(BLOB)
        except CodecError as exc:  # MissingReferenceError is a CodecError too
            reached += "escape index beyond" in str(exc)
    assert reached  # some state reaches the escape check (an IndexError would have failed the test)
