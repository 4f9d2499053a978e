"""Lossy codec families (one rate knob each); see docs/codecs-lossy.md."""

from neurolink.codecs.base import Codec
from neurolink.codecs.lossy.ae import Autoencoder
from neurolink.codecs.lossy.cs import CompressedSensing
from neurolink.codecs.lossy.nearlossless import NearLossless
from neurolink.codecs.lossy.nearlossless_lpc import DPCM, NearLosslessLPC
from neurolink.codecs.lossy.pca import PCA
from neurolink.codecs.lossy.spike import SpikeGated
from neurolink.codecs.lossy.vq import VQ
from neurolink.codecs.lossy.wavelet import Wavelet

LOSSY_CODECS: list[type[Codec]] = [NearLossless, NearLosslessLPC, DPCM, SpikeGated, Wavelet, PCA, VQ, CompressedSensing, Autoencoder]

__all__ = ["DPCM", "LOSSY_CODECS", "PCA", "VQ", "Autoencoder", "CompressedSensing", "NearLossless", "NearLosslessLPC", "SpikeGated", "Wavelet"]
