#!/usr/bin/env bash
# Runs the whole suite; pytest's exit code 5 ("no tests collected") is a failure, not a pass.
set -uo pipefail
VPY="${1:-.venv/bin/python}"
export LSLAPICFG="$(pwd)/tests/lsl_api.cfg"
"$VPY" -m pytest -q -p no:cacheprovider "${@:2}"
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi
exit "$rc"
