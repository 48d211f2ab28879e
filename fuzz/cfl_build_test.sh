#!/usr/bin/env bash
# Runs .clusterfuzzlite/build.sh locally with the environment OSS-Fuzz /
# ClusterFuzzLite give it (clang, ASan, libFuzzer), then checks $OUT: each
# target, its .options, dictionary and seed corpus zip, and that each target
# runs its seeds cleanly. A full clang build (minutes): not part of ctest.
#   fuzz/cfl_build_test.sh [OUT (a temporary directory)]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}
work=$(mktemp -d)
export CC=clang CXX=clang++
export CFLAGS="-O1 -fno-omit-frame-pointer -gline-tables-only -fsanitize=address,fuzzer-no-link"
export CXXFLAGS="$CFLAGS" LIB_FUZZING_ENGINE=-fsanitize=fuzzer OUT=$out WORK=$work
export ATTNCHECK_JOBS=${ATTNCHECK_JOBS:-2}
.clusterfuzzlite/build.sh >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
for t in attention layout abi; do
  for f in "$t" "$t.options" "${t}_seed_corpus.zip"; do
    [ -s "$out/$f" ] || { echo "cfl_build_test: $out/$f missing" >&2; exit 1; }
  done
  mkdir -p "$work/seeds/$t"
  (cd "$work/seeds/$t" && unzip -q "$out/${t}_seed_corpus.zip")
  "$out/$t" -runs=0 "$work/seeds/$t" >"$work/$t.log" 2>&1 || { tail -20 "$work/$t.log"; exit 1; }
  echo "cfl_build_test: $t ok ($(ls "$work/seeds/$t" | wc -l) seeds)"
done
[ -s "$out/layout.dict" ] || { echo "cfl_build_test: layout.dict missing" >&2; exit 1; }
rm -rf "$work"
echo "cfl_build_test: .clusterfuzzlite/build.sh OK, targets in $out"
