#!/bin/bash -eu
# Builds attncheck's fuzz targets the OSS-Fuzz / ClusterFuzzLite way: the
# compilers and flags come from the environment ($CC, $CXX, $CFLAGS,
# $CXXFLAGS, $LIB_FUZZING_ENGINE), the targets, their options, dictionaries
# and zipped seed corpora go to $OUT. Runs locally too, e.g.
#   CC=clang CXX=clang++ CFLAGS="-fsanitize=address,fuzzer-no-link" \
#   CXXFLAGS="-fsanitize=address,fuzzer-no-link" LIB_FUZZING_ENGINE=-fsanitize=fuzzer \
#   OUT=/tmp/out .clusterfuzzlite/build.sh
# (fuzz/cfl_build_test.sh does exactly that).
src=${SRC:-$(cd "$(dirname "$0")/.." && pwd)}
[ -f "$src/attncheck/CMakeLists.txt" ] && src=$src/attncheck
work=${WORK:-$(mktemp -d)}/attncheck-build
mkdir -p "$work" "$OUT"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$src" -B "$work" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_CXX_FLAGS="$CXXFLAGS" \
  -DATTNCHECK_FUZZ_ENGINE="$LIB_FUZZING_ENGINE" \
  -DATTNCHECK_CUDA=OFF -DATTNCHECK_BENCH=OFF -DATTNCHECK_TORCH=OFF -DATTNCHECK_ONEDNN=OFF
cmake --build "$work" --target fuzz_attention fuzz_layout fuzz_abi -j "${ATTNCHECK_JOBS:-$(nproc)}"
for t in attention layout abi; do
  cp "$work/fuzz/$t" "$OUT/$t"
  cp "$src/fuzz/$t.options" "$OUT/$t.options"
  [ -f "$src/fuzz/$t.dict" ] && cp "$src/fuzz/$t.dict" "$OUT/$t.dict"
  rm -f "$OUT/${t}_seed_corpus.zip"
  (cd "$src/fuzz/corpus/$t" && zip -q -r "$OUT/${t}_seed_corpus.zip" .)
done
