"""Lossy codec families (one rate knob each); see docs/codecs-lossy.md."""

from neurolink.codecs.lossy.nearlossless import NearLossless
from neurolink.codecs.lossy.spike import SpikeGated

LOSSY_CODECS = [NearLossless, SpikeGated]

__all__ = ["LOSSY_CODECS", "NearLossless", "SpikeGated"]
