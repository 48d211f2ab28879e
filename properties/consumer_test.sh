#!/usr/bin/env bash
# Install attncheck into a temporary prefix, build examples/consumer against
# it with find_package, run its tests: the correct kernel passes, the broken
# one fails with a minimal case and a replay line.
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
flags=$(sed -n 's/^CMAKE_CXX_FLAGS:STRING=//p' "$build/CMakeCache.txt")
ldflags=$(sed -n 's/^CMAKE_EXE_LINKER_FLAGS:STRING=//p' "$build/CMakeCache.txt")
export ATTNCHECK_CASES=${ATTNCHECK_CASES:-8}
for variant in good broken; do
  b=$work/$variant
  cmake -S "$src" -B "$b" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$ldflags" -DBROKEN_KERNEL=$([ $variant = broken ] && echo ON || echo OFF) >/dev/null
  cmake --build "$b" -j 2 >/dev/null
done
# The correct kernel: every property test passes, each by name.
"$work/good/my_kernel_tests" --gtest_filter='MyKernels.plain_*' > "$work/good.log" 2>&1 || {
  cat "$work/good.log"; echo "consumer: the correct kernel failed"; exit 1; }
grep -q '\[       OK \] MyKernels.plain_semantics_spatial' "$work/good.log"
grep -q '\[       OK \] MyKernels.plain_layout_invariance_temporal' "$work/good.log"
grep -q 'PASSED.*24 tests' "$work/good.log"
# The broken kernel: caught, with the minimal case and the replay line.
if "$work/broken/my_kernel_tests" --gtest_filter='MyKernels.plain_semantics_*' \
     --gtest_output=xml:"$work/broken.xml" > "$work/broken.log" 2>&1; then
  cat "$work/broken.log"; echo "consumer: the broken kernel was not caught"; exit 1
fi
grep -q '\[  FAILED  \] MyKernels.plain_semantics_spatial' "$work/broken.log"
grep -q 'minimal case:' "$work/broken.log"
grep -q 'replay: ATTNCHECK_CASE=' "$work/broken.log"
grep -q '<failure' "$work/broken.xml"
sed -n '/FAILED semantics/,/replay:/p' "$work/broken.log" | head -14
echo "consumer ok"
