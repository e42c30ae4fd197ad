#!/usr/bin/env bash
# The whole command-line chain on an accelerator, which CI (CPU only) never runs: prepare →
# train-ae → encode → train (a few steps each, bf16 autocast), then the four tasks with a trained
# pipeline on DEVICE (generation once more through the compiled U-Nets), and heal once more on the
# CPU to compare the two devices' outputs.
#
#   bash bench/gpu_check.sh [PIPELINE] [COHORT] [DEVICE]
#
# PIPELINE (default demo_out/train/diffusion/pipeline) and COHORT (default demo_out/cohort) come
# from `make demo`; DEVICE defaults to cuda. Writes into $OUT (default /tmp/usbrain_gpu_check).
set -uo pipefail  # go on past a failing step: the rest still tells
pipeline=${1:-demo_out/train/diffusion/pipeline}
cohort=${2:-demo_out/cohort}
device=${3:-cuda}
out=${OUT:-/tmp/usbrain_gpu_check}
steps=${STEPS:-30}
mkdir -p "$out"
u() { python3 -m usbrain "$@"; }
stamp() { echo "[$(date +%T)] $*"; }

stamp "training chain on $device, $steps steps a model"
u prepare "$cohort/manifest.csv" --out "$out/cache" --overwrite
u train-ae --data "$out/cache" --out "$out/ae" --device "$device" --overwrite \
    --set train_autoencoder.steps="$steps" --set train_autoencoder.val_every="$steps" \
    --set train_autoencoder.precision=bf16
u encode --checkpoint "$out/ae/checkpoint" --data "$out/cache" --out "$out/latents" \
    --device "$device" --overwrite
u train --latents "$out/latents" --out "$out/dm" --device "$device" --overwrite \
    --set train_diffusion.steps="$steps" --set train_diffusion.val_every="$steps" \
    --set train_diffusion.precision=bf16

# a validation subject with a lesion (the test split is for the final benchmark alone)
row=$(awk -F, 'NR > 1 && $5 == "val" && $7 > 1 {print; exit}' "$cohort/manifest.csv")
image="$cohort/$(cut -d, -f2 <<<"$row")"
mask="$cohort/$(cut -d, -f3 <<<"$row")"
healthy="$cohort/$(cut -d, -f4 <<<"$row")"
stamp "four tasks on $device with $pipeline, subject $(cut -d, -f1 <<<"$row")"
u generate --checkpoint "$pipeline" -n 2 --out "$out/generate" --device "$device" --overwrite
# the same samples through the compiled U-Nets (CUDA graphs on a GPU)
u generate --checkpoint "$pipeline" -n 2 --out "$out/generate_compiled" --device "$device" \
    --overwrite --set compile=true
u condition --checkpoint "$pipeline" --mask "$mask" --out "$out/condition" --device "$device" \
    --overwrite
u lesion --checkpoint "$pipeline" --image "$healthy" --mask "$mask" --out "$out/lesion" \
    --device "$device" --overwrite
for d in "$device" cpu; do
    u heal --checkpoint "$pipeline" --image "$image" --mask "$mask" --out "$out/heal_$d" \
        --device "$d" --overwrite
done
stamp "heal on $device vs cpu; generated eager vs compiled"
python3 - "$out/heal_$device" "$out/heal_cpu" "$out/generate" "$out/generate_compiled" <<'EOF'
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

args = [Path(p) for p in sys.argv[1:]]
for a, b in zip(args[::2], args[1::2], strict=True):
    for f in sorted(a.rglob("*.nii.gz")):
        x = np.asarray(nib.load(f).dataobj, dtype=np.float64)
        y = np.asarray(nib.load(b / f.relative_to(a)).dataobj, dtype=np.float64)
        peak = max(float(np.abs(y).max()), 1e-12)
        print(f"{f.relative_to(a.parent)} vs {b.name}: max |Δ| {np.abs(x - y).max():.4g} of peak "
              f"{peak:.4g}, mean |Δ| {np.abs(x - y).mean():.3g}")
EOF
stamp done
