#!/usr/bin/env bash
# Every suite's accelerator rows on an NVIDIA GPU with no network (benchmarks/gpu.py says what it runs).
#
#   bash benchmarks/gpu.sh [gpu.py options]
#
# Installs jaxviz from this checkout and the peers' wheels from .whl/ (where present: captum, grad-cam, ttach,
# efficientnet-lite-pytorch, torch-lucent, dm-pix; benchmarks/README.md says how to fetch them) into a
# private target, never touching the machine's own packages, then runs gpu.py on the machine's jax. The results
# JSON goes to $OUT when set (the device tool's folder), else benchmarks/results/. Exit 3: JAX fell back to
# the CPU; exit 1: a section failed (the others' rows are still saved). PYTHON: the interpreter (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
site=${JAXVIZ_SITE:-/tmp/jaxviz-site}
py=${PYTHON:-python3}  # the machine's Python with jax (and torch for the peers)
pip=("$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site")
if compgen -G ".whl/*.whl" >/dev/null; then
    "${pip[@]}" .whl/*.whl
fi
"${pip[@]}" --no-build-isolation .
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # PyTorch's peers share the GPU
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "gpu.sh: no nvidia-smi" >&2
exec "$py" benchmarks/gpu.py --out "${OUT:-benchmarks/results}" "$@"
