"""``nl-lossless`` (archive mode) as a numcodecs codec and a Zarr v3 array->bytes codec.

numcodecs finds :class:`NeurolinkLossless` through the ``numcodecs.codecs`` entry point
(id ``neurolink.lossless``). Zarr 3.1 wraps numcodecs codecs as ``numcodecs.<id>`` codecs and finds
the wrapper class through the ``zarr.codecs`` entry point, so::

    from neurolink.codecs.numcodecs_adapter import NeurolinkLosslessZarr
    zarr.create_array(store, shape=x.shape, chunks=(30000, 64), dtype="int16",
                      serializer=NeurolinkLosslessZarr())

and anyone with neurolink installed reads the array back with plain ``zarr.open_array``.
Chunks are treated as (samples, channels): 1-D chunks become one channel, N-D chunks are flattened
after the first axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numcodecs.abc import Codec as _NumcodecsCodec

from neurolink.codecs.lossless import NlLossless


class NeurolinkLossless(_NumcodecsCodec):
    """numcodecs codec: every chunk is one self-contained nl-lossless archive payload."""

    codec_id = "neurolink.lossless"

    def __init__(self) -> None:
        self._codec = NlLossless(mode="archive")

    def encode(self, buf: Any) -> bytes:
        x = np.asarray(buf)
        if x.ndim == 0:
            x = x.reshape(1, 1)
        elif x.ndim == 1:
            x = x[:, None]
        elif x.ndim > 2:
            x = x.reshape(x.shape[0], -1)
        return self._codec.encode(np.ascontiguousarray(x))

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        y = self._codec.decode(bytes(memoryview(buf)))
        if out is not None:
            o = np.asarray(out)
            o.reshape(-1).view(y.dtype)[:] = y.reshape(-1)
            return out
        return y

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id}


try:  # Zarr v3 wrapper (zarr >= 3.1.3); absent zarr simply means no Zarr integration.
    from zarr.codecs.numcodecs import _NumcodecsArrayBytesCodec

    class NeurolinkLosslessZarr(_NumcodecsArrayBytesCodec, codec_name="neurolink.lossless"):
        """Zarr v3 serializer ``numcodecs.neurolink.lossless`` (array -> bytes)."""

        def __init__(self, **codec_config: Any) -> None:
            super().__init__(**codec_config)

except ImportError:  # pragma: no cover
    pass
