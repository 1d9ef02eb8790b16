#!/usr/bin/env bash
# CLI start-up with and without compiled bytecode (docs/benchmarks.md, "CLI start-up"). With
# PYTHONDONTWRITEBYTECODE set, as in many containers and CI machines, Python compiles every module
# it imports again in each process unless the installer compiled them:
# `uv sync --compile-bytecode` compiles them once (.ci/run does).
#
#     bash benchmarks/cli_startup.sh      # removes the environment's __pycache__, then recompiles it
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export SEMRET_DATABASE_URL="sqlite:///$scratch/semret.sqlite3"
uv sync --quiet
timed() { /usr/bin/time -f "   %e s wall, %U s user CPU: $*" uv run --no-sync "$@" >/dev/null; }
measure() {
  echo "$1 (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  timed semret db upgrade
  timed semret db current
  timed python -c "import semret.cli"
  timed python -c "import torch, torchvision"  # what every command that makes features imports
}
find .venv src -name __pycache__ -type d -prune -exec rm -rf {} +
measure "no bytecode"
/usr/bin/time -f "   %e s wall: uv sync --compile-bytecode" uv sync --quiet --compile-bytecode
measure "compiled bytecode"
