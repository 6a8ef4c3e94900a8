#!/usr/bin/env bash
# Create or reuse .venv and install what resgraph needs. Idempotent; used by `make`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch first: the CPU build 2.13.0 installs quickly; a bare "torch" requirement
# would pull a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install -q "torch==2.13.0"
fi
if ! .venv/bin/python -c "import resgraph, pytest, xdist, hypothesis, onnx, onnxscript, onnxruntime, webdataset, ray.tune" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.resgraph-installed ]; then
  .venv/bin/pip install -q -e ".[test]"
  touch .venv/.resgraph-installed
fi
# Graphviz's dot renders pictures; install Debian's package when it is missing.
if ! command -v dot >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz) >/dev/null \
      || echo "warning: could not install graphviz; 'resgraph render' will only write .dot files" >&2
  else
    echo "warning: graphviz's 'dot' is missing (apt-get install graphviz); render writes .dot only" >&2
  fi
fi
