#!/usr/bin/env bash
# `make bench`: every benchmark in bench/, one after another (they need the machine to themselves).
# Each prints a markdown section; the combined output goes to bench/results/latest.md for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
out=bench/results/latest.md
{
  echo "# make bench — $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Python $(.venv/bin/python -c 'import platform; print(platform.python_version())')"
  echo
} > "$out"
for script in bench/bench_*.py; do
  [ -n "${BENCH:-}" ] && [[ "$script" != *"$BENCH"* ]] && continue
  echo "== $script" >&2
  .venv/bin/python "$script" | tee -a "$out"
  echo >> "$out"
done
echo "results: $out" >&2
