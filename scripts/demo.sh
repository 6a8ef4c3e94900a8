#!/usr/bin/env bash
# The main job on built-in defaults (no data to download).
set -euo pipefail
cd "$(dirname "$0")/.."
RG=.venv/bin/resgraph
OUT=${DEMO_OUT:-demo-output}
mkdir -p "$OUT"
echo "== validate every spec"
$RG validate specs/*.yaml
echo; echo "== summary of the paper's ResNet-50"
$RG summary specs/resnet50.yaml
echo; echo "== summary of CIFAR ResNet-110"
$RG summary specs/cifar_resnet110.yaml
echo; echo "== build PyTorch source for every spec into $OUT/generated"
$RG build specs/*.yaml -o "$OUT/generated"
echo; echo "== render ResNet-34 and CIFAR ResNet-20 into $OUT"
$RG render specs/resnet34.yaml -o "$OUT/resnet34.svg"
$RG render specs/cifar_resnet20.yaml -o "$OUT/cifar_resnet20.svg"
echo; echo "== train CIFAR ResNet-20 on scikit-learn's bundled digits (CPU, about a minute)"
rm -rf "$OUT/train-digits"
$RG train specs/cifar_resnet20.yaml --dataset digits --iterations 300 --batch-size 64 \
  --eval-every 25 --out "$OUT/train-digits"
echo; echo "done: see $OUT/ (generated code, pictures, train-digits/metrics.csv and curves.png)"
