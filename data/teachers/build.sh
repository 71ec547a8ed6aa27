#!/usr/bin/env bash
# Rebuilds the bundled teachers with the kit's own commands, on the CPU for repeatability.
# Resumable: every step runs with --resume, so after an interruption the same command continues
# where it stopped (a finished step returns at once). Each teacher: train from scratch, train
# linear DIH heads (DIH Eq. 3) on the frozen backbone, for the cifar10-mini ladder also MHKD's
# conv heads (width 32, the classroom profile's) on the same frozen backbone, then export teacher
# and heads into data/teachers/ and record it in manifest.json.
#
# Times on 2 CPU cores: the fmnist-mini teachers about 30 minutes in all; the cifar10-mini
# ladder about 41 minutes (epoch times: training 82 s resnet8, 275 s resnet20, 964 s wrn_16_2
# beside other work, 346 s vgg8; the eight head sets 806 s). A resnet56 trained the same way (30 epochs,
# lr 0.05) reached only 60.35 % test accuracy, below resnet8: too few epochs for a deep
# network on 4,500 images, so the ladder's largest teacher is the wide, shallow VGG8.
# TEACHERS="name:arch:dataset:epochs:lr:conv ..." rebuilds a selection; conv is 0 (no conv
# heads), 1 (at the stage outputs) or the comma-separated positions: MHKD pairs the first three
# units, so VGG8 (four stages) gets them at its first three.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIHKIT=${DIHKIT:-.venv/bin/dihkit}
# The deep resnet56 needs a lower learning rate and more epochs to beat the shallower
# fmnist-mini teachers (at 15 epochs and lr 0.1 it reached only 83.7% validation accuracy).
DEFAULT_TEACHERS="
resnet14:resnet14:fmnist-mini:15:0.1:0
resnet20:resnet20:fmnist-mini:15:0.1:0
resnet56:resnet56:fmnist-mini:30:0.05:0
resnet8-c10:resnet8:cifar10-mini:30:0.1:1
resnet20-c10:resnet20:cifar10-mini:30:0.1:1
wrn_16_2-c10:wrn_16_2:cifar10-mini:30:0.1:1
vgg8-c10:vgg8:cifar10-mini:30:0.05:pool0,pool1,pool2
"
for spec in ${TEACHERS:-$DEFAULT_TEACHERS}; do
  IFS=: read -r name arch dataset epochs lr conv <<<"$spec"
  dir=runs/teachers/$name
  train="dihkit train --model $arch --dataset $dataset --epochs $epochs --lr $lr --seed 0 --device cpu --out $dir --quiet"
  $DIHKIT ${train#dihkit } --resume
  command="$train"
  source=$dir/best.pt
  if [ "$conv" != 0 ]; then  # conv heads first: the linear set, trained last, is the primary one
    positions=""
    [ "$conv" != 1 ] && positions=" --positions ${conv//,/ }"
    convheads="dihkit train-heads --teacher $dir/best.pt --head conv$positions --width 32 --epochs 10 --lr 0.05 --seed 0 --device cpu --out $dir-conv-heads --quiet"
    $DIHKIT ${convheads#dihkit } --resume
    command="$command && $convheads"
    source=$dir-conv-heads/best.pt
  fi
  heads="dihkit train-heads --teacher $source --head linear --epochs 10 --lr 0.002 --seed 0 --device cpu --out $dir-heads --quiet"
  $DIHKIT ${heads#dihkit } --resume
  command="$command && $heads"
  $DIHKIT export-teacher "$dir-heads/best.pt" --name "$name" --command "$command"
done
