#!/usr/bin/env bash
# Train and export every shipped model from scratch (the one documented command):
#   scripts/build_models.sh            # venv (--train), data, HMM + PPO training, 20 zips, golden files
#   TIMESTEPS=50000 scripts/build_models.sh   # a quicker, weaker policy
# Deterministic: fixed seeds, CPU, one torch thread. Intermediate files go to scripts/build/ (ignored).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

"$here/setup_venv.sh" --train
py="$here/.venv/bin/python"
build="$here/build"
timesteps="${TIMESTEPS:-400000}"

"$py" "$here/make_data.py"
"$py" "$here/train.py" --bars data/EURUSD_H1.csv --symbol EURUSD --timeframe H1 --out "$build/EURUSD_H1" --timesteps "$timesteps"

export_one() {
  local sym="$1" bars
  if [ "$sym" = EURUSD ]; then bars=data/EURUSD_H1.csv; else bars="data/demo/$sym.csv"; fi
  "$py" "$here/export.py" --ppo "$build/EURUSD_H1/ppo.zip" --hmm "$build/EURUSD_H1/hmm.pkl" \
    --demo-costs --config "$build/EURUSD_H1/env_config.json" --symbol "$sym" --out "models/${sym}_H1.zip" --evaluate "$bars" \
    > "$build/export_$sym.log" 2>&1 || { cat "$build/export_$sym.log"; return 1; }
  grep -E "in_sample|out_of_sample|wrote" "$build/export_$sym.log"
}
export -f export_one
export py here build
mkdir -p models
# Two at a time: each export runs two reference backtests (onnxruntime, one thread).
"$py" -c "import sys; sys.path.insert(0, '$here'); from symbols import SYMBOLS; print('\n'.join(s.name for s in SYMBOLS))" \
  | xargs -P 2 -I{} bash -c 'export_one {}'

"$py" "$here/make_golden.py"
"$py" "$here/models_readme.py"
echo "models, golden files and models/README.md rebuilt"
