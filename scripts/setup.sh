#!/usr/bin/env bash
# Idempotent installer: system packages (apt) when missing, then a repo-local venv with every extra.
set -euo pipefail
PY="${1:-python3}"
VENV="${2:-.venv}"
APT_PKGS=(mosquitto wavpack libwavpack-dev)

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[setup] installing system packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian starts a system-wide mosquitto on :1883; neurolink's tests start their own broker.
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true; fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --upgrade pip setuptools wheel
# torch must come from the pinned CPU wheel and be installed in the same command as stable-baselines3,
# otherwise pip resolves a multi-GB CUDA build.
"$VPY" -m pip install -q "torch==2.13.0" "stable-baselines3>=2.3" -e ".[train,bench,archive,test,dev]"
"$VPY" -m neurolink sys-info || true
# Fill numba's on-disk cache once, so the first live frames of a daemon or the demo never wait for a compile.
"$VPY" -m neurolink.codecs.warmup || echo "[setup] codec warm-up failed (kernels will compile on first use)"
