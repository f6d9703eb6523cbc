#!/usr/bin/env bash
# Set up the environment if it is missing or stale, then run one job:
#   bash scripts/dev.sh demo    # the main job on the embedded model
#   bash scripts/dev.sh test    # lint + the whole test suite (what CI runs)
#   bash scripts/dev.sh setup   # only create/refresh .venv
# Needs only Python >= 3.10 and bash. Without a GPU it installs the CPU build of torch (no CUDA packages).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${WORKBENCH_VENV:-.venv}
TORCH_VERSION=2.13.0

setup() {
  local stamp="$VENV/.workbench-installed"
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
    return 0
  fi
  echo "setting up $VENV (one time; about two minutes)" >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
  elif ! "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION+cpu" 2>/dev/null; then
    # PyPI's Linux torch wheel depends on CUDA packages; the CPU build lives on PyTorch's own index.
    "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION" \
      --index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
  fi
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
  touch "$stamp"
}

case "${1:-}" in
  setup) setup ;;
  demo) setup; shift; exec "$VENV/bin/python" -m workbench.demo "$@" ;;
  test)
    setup; shift
    "$VENV/bin/ruff" check workbench tests benchmarks
    "$VENV/bin/ruff" format --check workbench tests benchmarks
    "$VENV/bin/lint-imports"
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} exec "$VENV/bin/python" -m pytest -q "$@" ;;
  *) echo "usage: bash scripts/dev.sh {demo|test|setup}" >&2; exit 2 ;;
esac
