#!/usr/bin/env bash
# Creates scripts/.venv with the project's pinned Python dependencies.
#   scripts/setup_venv.sh           light set: reference env, golden checks, cTrader interop (CI)
#   scripts/setup_venv.sh --train   adds torch, stable-baselines3, hmmlearn (training, make_fixtures.py;
#                                   about 5.7 GB installed, ~3 GB of it CUDA libraries PyPI's torch pulls)
# Safe to run again: it only installs what is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

stamp="$venv/.light-installed"
if [ ! -f "$stamp" ] || [ "$here/requirements-light.txt" -nt "$stamp" ]; then
  "${pip[@]}" -r "$here/requirements-light.txt"
  # Spotware's official Open API SDK: we only use its generated message modules (messages/*_pb2.py),
  # the independent reference for our wire format. Its pins (old protobuf, twisted) are not needed
  # for those modules, so install it without dependencies.
  "${pip[@]}" --no-deps ctrader-open-api==0.9.2
  touch "$stamp"
fi

if [ "${1:-}" = "--train" ]; then
  "${pip[@]}" -r "$here/requirements-train.txt"
fi
echo "venv ready: $venv"
