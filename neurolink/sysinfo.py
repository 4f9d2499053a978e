"""``neurolink sys-info``: versions of everything a bug report needs (as mne-lsl does)."""

from __future__ import annotations

import importlib
import os
import platform
import sys


def _ver(mod: str) -> str:
    try:
        m = importlib.import_module(mod)
    except Exception as exc:  # missing optional part: say so
        return f"not available ({type(exc).__name__})"
    return str(getattr(m, "__version__", "?"))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect() -> dict[str, str]:
    import neurolink

    info = {
        "neurolink": neurolink.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": f"{cpu_name()} ({os.cpu_count()} logical cores)",
    }
    try:
        from neurolink.lsl import pylsl

        info["pylsl"] = _ver("pylsl")
        info["liblsl"] = f"{pylsl.library_version()} ({pylsl.library_info()})"
    except Exception as exc:
        info["liblsl"] = f"not available ({exc})"
    try:
        import zmq

        info["pyzmq"] = zmq.__version__
        info["libzmq"] = zmq.zmq_version()
    except Exception as exc:
        info["libzmq"] = f"not available ({exc})"
    for mod in ("numpy", "numba", "onnxruntime", "gymnasium", "aiomqtt", "zstandard", "numcodecs", "zarr",
                "stable_baselines3", "torch", "cryptography"):
        info[mod] = _ver(mod)
    return info


def main() -> int:
    for k, v in collect().items():
        print(f"{k:>18}: {v}")
    return 0
