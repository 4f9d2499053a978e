"""neurolink's lossless codec family (``nl-lossless``): prediction + adaptive Rice, stream and archive."""

from neurolink.codecs.lossless.codec import NlLossless

__all__ = ["NlLossless"]
