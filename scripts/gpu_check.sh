#!/usr/bin/env bash
# The GPU check, in one go (at most 8 minutes on one GPU: every step has a time limit): the training benchmark
# (benchmarks/train_gpu.py, a subset that fits the time) and short CIFAR-shaped training
# runs on synthetic data with every training flag, including a stop and a resume; under
# torchrun too when there is more than one GPU. Results go to $OUT (default gpu_check/):
# summary.txt (compact), benchmark.md, and one log per run.
#
#   OUT=/some/folder scripts/gpu_check.sh        # PYTHON=... picks the interpreter
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
S="$OUT/summary.txt"
: > "$S"
say() { echo "$*" | tee -a "$S"; }
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 ))s; }

say "== environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$S"
"$PY" - <<'EOF' 2>&1 | tee -a "$S"
import importlib, torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPUs {torch.cuda.device_count()}, "
      f"native bf16 {torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)}")
missing = [m for m in ("pydantic", "networkx", "jinja2", "yaml", "click", "rich", "numpy",
                       "matplotlib", "sklearn") if importlib.util.find_spec(m) is None]
print("missing modules:", ", ".join(missing) if missing else "none")
EOF
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
if [ "$GPUS" = 0 ]; then say "no CUDA GPU visible: stopping"; exit 1; fi

say "== benchmark (each configuration in its own process) $(elapsed)"
# first what the targets need (ResNet-110 against the conventional trainer, ResNet-1202's
# memory, one real epoch), then the other depths; each part has its own time limit
B="benchmarks/train_gpu.py --windows 5 --steps 10 --warm 3"
timeout 180 "$PY" $B --specs cifar_resnet110 > "$OUT/benchmark.md" 2> "$OUT/benchmark.err"
echo "exit $?" >> "$OUT/benchmark.md"
timeout 80 "$PY" $B --specs cifar_resnet20 cifar_resnet56 cifar_resnet1202 \
  --rows fp32 bf16+cl bf16+cl+cudagraphs --compile-specs cifar_resnet20 \
  --skip baseline memory epoch 2>> "$OUT/benchmark.err" | tail -n +4 >> "$OUT/benchmark.md"
echo "exit ${PIPESTATUS[0]}" >> "$OUT/benchmark.md"
cat "$OUT/benchmark.md" >> "$S"

say "== training runs on synthetic CIFAR-shaped data $(elapsed)"
DATA="$OUT/.data"
"$PY" -c "
import sys; from pathlib import Path; sys.path.insert(0, 'benchmarks')
from train_gpu import write_cifar_folder; write_cifar_folder(Path('$DATA'), 10000)"
R="$OUT/runs"
rm -rf "$R"; mkdir -p "$R"
run() {  # name, timeout, args...
  local name=$1 limit=$2; shift 2
  local t=$(date +%s)
  timeout "$limit" "$PY" -m resgraph train --data-dir "$DATA" "$@" > "$R/$name.log" 2>&1
  local rc=$?
  say "$name: exit $rc in $(( $(date +%s) - t ))s; $(grep -E '^(done|stopped|error)' "$R/$name.log" | tail -1 | cut -c1-150)"
  grep -E '^warning' "$R/$name.log" | cut -c1-200 | tee -a "$S"
  return $rc
}
# every flag at once: fp16 (fused SGD + scaler), channels-last, compile with CUDA graphs,
# activation checkpointing, TF32, the SGD flags, warm-up
run every_flag_fp16 90 specs/cifar_resnet20.yaml --out "$R/every_flag_fp16" \
  --iterations 120 --eval-every 40 --checkpoint-every 40 --batch-size 128 --seed 1 \
  --amp fp16 --channels-last --compile --compile-mode reduce-overhead \
  --checkpoint-activations --tf32 --sync-bn --lr 0.1 --momentum 0.9 --weight-decay 0.0005 \
  --milestones 60,90 --warmup-lr 0.01
# stochastic depth in bf16, deterministic, stopped by SIGINT after a while, then resumed
# with the printed command (the recipe comes from the checkpoint)
SD="$R/stochastic_depth_bf16"
timeout -s INT 25 "$PY" -m resgraph train specs/cifar_resnet110_stochastic_depth.yaml \
  --data-dir "$DATA" --out "$SD" --iterations 800 --eval-every 100 --amp bf16 \
  --deterministic --no-tf32 > "$R/stopped.log" 2>&1
say "stopped run: exit $? (130 expected); $(grep -E '^(stopped|error)' "$R/stopped.log" | cut -c1-120)"
run resumed 60 specs/cifar_resnet110_stochastic_depth.yaml --out "$SD" --resume --amp bf16 \
  --deterministic --no-tf32
# eval of the first run's weights
timeout 25 "$PY" -m resgraph eval specs/cifar_resnet20.yaml --weights "$R/every_flag_fp16/last.pt" \
  --data-dir "$DATA" 2>&1 | tail -2 | tee -a "$S"
if [ "$GPUS" -gt 1 ]; then
  say "== torchrun on $GPUS GPUs $(elapsed)"
  timeout 150 "$PY" -m torch.distributed.run --standalone --nproc_per_node "$GPUS" -m resgraph \
    train specs/cifar_resnet56.yaml --data-dir "$DATA" --out "$R/ddp" --iterations 100 \
    --eval-every 50 --amp bf16 --channels-last --sync-bn > "$R/ddp.log" 2>&1
  say "ddp: exit $?; $(grep -E '^(done|error)|identical' "$R/ddp.log" | tr '\n' ' ' | cut -c1-200)"
fi
rm -rf "$DATA"
say "== finished in $(elapsed)"
