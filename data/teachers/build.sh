#!/usr/bin/env bash
# Rebuilds the bundled teachers with the kit's own commands, on the CPU for repeatability
# (about 30 minutes on 2 cores; resnet56 alone trains at about 25 s per epoch). Each teacher:
# train from scratch, train linear heads on the frozen backbone, then export teacher + heads
# into data/teachers/ and record it in manifest.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIHKIT=${DIHKIT:-.venv/bin/dihkit}
# ARCH:EPOCHS:LR. The deep resnet56 needs a lower learning rate and more epochs to beat the
# shallower teachers (at 15 epochs and lr 0.1 it reached only 83.7% validation accuracy).
for spec in ${TEACHERS:-resnet14:15:0.1 resnet20:15:0.1 resnet56:30:0.05}; do
  IFS=: read -r arch epochs lr <<<"$spec"
  train="dihkit train --model $arch --dataset fmnist-mini --epochs $epochs --lr $lr --seed 0 --device cpu --out runs/teachers/$arch --quiet"
  heads="dihkit train-heads --teacher runs/teachers/$arch/best.pt --head linear --epochs 10 --lr 0.002 --seed 0 --device cpu --out runs/teachers/$arch-heads --quiet"
  $DIHKIT ${train#dihkit }
  $DIHKIT ${heads#dihkit }
  $DIHKIT export-teacher "runs/teachers/$arch-heads/best.pt" --name "$arch" --command "$train && $heads"
done
