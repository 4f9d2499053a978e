"""The scripts in examples/ run and say what they promise (each as a user would run it)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"{script} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    return p.stdout


def test_codecs_on_a_recording():
    out = _run("codecs_on_a_recording.py", "--seconds", "0.5")
    assert "level 0 lossless" in out and "bit-exact True" in out and "spike F1" in out


def test_bridge_eeg_and_markers():
    out = _run("bridge_eeg_and_markers.py", "--seconds", "1.5")
    assert "bit-exact True" in out and "markers: all 5/5 exact" in out and "nl-float" in out


@pytest.mark.parametrize("seconds", ["5"])
def test_rate_controller_in_sim(seconds):
    out = _run("rate_controller_in_sim.py", "--seconds", seconds)
    assert out.count("of the oracle") == 10 and "rl " in out
