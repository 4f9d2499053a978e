"""neurolink: real-time, closed-loop BCI middleware (LSL → codec → ZeroMQ/MQTT → LSL)."""

import os as _os

# One BLAS thread: the codecs multiply small matrices per 1 ms frame, where OpenBLAS's thread pool costs
# ~100x more than the work (measured 14 ms vs 0.09 ms). Set before numpy loads; a user's value wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
