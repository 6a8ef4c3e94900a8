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
