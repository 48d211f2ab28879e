#!/usr/bin/env bash
# Seconds for the attention target to find each in-tree mutant, from an
# empty corpus (no seeds), one job, ASan + UBSan; then ci/fuzz on each must
# exit 1 (--seconds 120) with a case that replays. Prints a table.
#   fuzz/measure_mutants.sh [SECONDS_PER_MUTANT (30)] [MUTANTS_SO]
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
so=${2:-build/fuzz/properties/examples/mutants.so}
[ -f build/fuzz/CMakeCache.txt ] || cmake --preset fuzz >/dev/null
cmake --build build/fuzz --target fuzz_attention mutants attncheck_cli -j "${ATTNCHECK_JOBS:-2}" >/dev/null || exit 2
mutants=$(sed -n '/^const attncheck_impl kImpls/,/^};/p' properties/mutants/mutants.cpp | grep -o 'MUTANT([a-z0-9_]*)' | sed 's/MUTANT(\(.*\))/\1/')
work=$(mktemp -d)
export ASAN_OPTIONS=abort_on_error=1:malloc_context_size=4 ATTNCHECK_FUZZ_PLUGIN=$(pwd)/$so
printf '%-20s %8s %8s %8s %8s %8s  %s\n' mutant seconds execs ci-exit ci-secs replayed 'what found it'
for m in $mutants; do
  mkdir -p "$work/$m"
  t0=$(date +%s.%N)
  ATTNCHECK_FUZZ_IMPL=$m build/fuzz/fuzz/attention -max_total_time="$secs" -max_len=256 -timeout=20 \
    -print_final_stats=1 -artifact_prefix="$work/$m/" "$work/$m" >"$work/$m.log" 2>&1
  took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$m.log" | grep -o '[0-9]*$' | tail -1)
  prop=$(grep -m1 -o "attention fuzz: $m [a-z_]*" "$work/$m.log" | awk '{print $4}')
  [ -n "$prop" ] || prop=$(grep -m1 -oE 'ERROR: [A-Za-z]+: [A-Za-z-]+|runtime error' "$work/$m.log" | sed 's/ERROR: //')
  ls "$work/$m"/crash-* >/dev/null 2>&1 || took="not found"
  ci/fuzz --seconds 120 --plugin "$so" --impl "$m" --corpus "$work/ci-$m" --artifacts "$work/art-$m" >"$work/$m.ci.log" 2>&1
  rc=$?
  replayed=$(grep -c 'replayed with attncheck verify: exit 1' "$work/$m.ci.log")
  ci_took=$(grep -m1 -o 'found after [0-9.]*s' "$work/$m.ci.log" | grep -o '[0-9.]*')
  says=$(grep -m1 'verify says:' "$work/$m.ci.log" | sed 's/.*verify says: //' | cut -c1-60)
  printf '%-20s %8s %8s %8s %8s %8s  %s; verify: %s\n' "$m" "$took" "${execs:-?}" "$rc" "${ci_took:-?}" \
    "$replayed" "${prop:-?}" "$says"
done
echo "logs: $work"
