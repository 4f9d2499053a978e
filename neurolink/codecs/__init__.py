"""Codec registry, built-in codecs and the level ladder.

>>> from neurolink.codecs import get_codec
>>> codec = get_codec({"id": "delta-zstd", "level": 3})
"""

from neurolink.codecs.base import Codec
from neurolink.codecs.delta_zstd import DeltaZstd
from neurolink.codecs.float_lossless import NlFloat
from neurolink.codecs.ladder import Ladder, load_ladder
from neurolink.codecs.lossless import NlLossless
from neurolink.codecs.registry import get_codec, list_codecs, register_codec
from neurolink.codecs.text import NlText

register_codec(DeltaZstd)
register_codec(NlLossless)
register_codec(NlText)  # string streams (LSL markers)
register_codec(NlFloat)

from neurolink.codecs.lossy import LOSSY_CODECS  # noqa: E402

for _cls in LOSSY_CODECS:
    register_codec(_cls)

__all__ = ["Codec", "Ladder", "get_codec", "list_codecs", "load_ladder", "register_codec"]
