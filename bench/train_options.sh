#!/usr/bin/env bash
# The authors' training switches, each measured once on validation against the demo's own
# denoisers: retrain the tiny U-Nets on `make demo`'s latents with one switch changed, then
# score heal and insertion on the validation subjects (bench/guidance.py, default sampling).
#
#   bash bench/train_options.sh [demo_out] [runs/train_options]
set -euo pipefail
demo=${1:-demo_out}
runs=${2:-runs/train_options}
py=${PYTHON:-.venv/bin/python}
mkdir -p "$runs"
declare -A switches=(
  [weight_decay_0]="train_diffusion.weight_decay=0"
  [clip_per_model]="train_diffusion.clip_per_model=true"
  [lesion_weighted]="diffusion.lesion_weighted_loss=true"
)
echo "== demo's own denoisers (weight_decay 0.01, one clip norm, plain brain loss)"
"$py" bench/guidance.py --demo "$demo" --split val --variants default
for name in weight_decay_0 clip_per_model lesion_weighted; do
  if [ ! -d "$runs/$name/pipeline" ]; then
    "$py" -m usbrain train --latents "$demo/train/latents" --out "$runs/$name" \
      --config "$demo/train/diffusion/pipeline/config.yaml" --set "${switches[$name]}" \
      --device cpu --overwrite > "$runs/$name.log" 2>&1
  fi
  echo "== $name (${switches[$name]}): $(grep -o '"val/loss_brain": [0-9.]*' "$runs/$name/metrics.jsonl" | tail -1)"
  "$py" bench/guidance.py --demo "$demo" --pipeline "$runs/$name/pipeline" --split val --variants default
done
