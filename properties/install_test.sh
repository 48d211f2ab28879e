#!/usr/bin/env bash
# Install attncheck into a fresh prefix and use it as a third party would.
set -euo pipefail
build=$1 plugin_src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/attncheck include/attncheck/plugin.h lib/attncheck/builtin.so \
         lib/cmake/attncheck/attncheckConfig.cmake; do
  [ -e "$prefix/$f" ] || { echo "missing after install: $f"; exit 1; }
done
# A plugin compiled against the installed header only, as C.
cc -std=c99 -Wall -Wextra -Werror -shared -fPIC -I"$prefix/include" "$plugin_src" -o "$work/spec_plugin.so"
"$prefix/bin/attncheck" list "$work/spec_plugin.so" | grep -q 'spec.decline'
"$prefix/bin/attncheck" list | grep -q 'reference_f32'
# find_package(attncheck) from a consumer project.
mkdir -p "$work/consumer"
cat > "$work/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(consumer CXX)
set(CMAKE_CXX_STANDARD 20)
find_package(attncheck REQUIRED)
add_executable(consumer main.cpp)
target_link_libraries(consumer attncheck::attncheck)
CM
cat > "$work/consumer/main.cpp" <<'CPP'
#include <attncheck/layout.h>
#include <attncheck/validate.h>
#include <iostream>
int main() {
  std::cout << attncheck::Layout::compact({2, 3}).str() << "\n";
  return attncheck::validate_call(nullptr, nullptr, nullptr) ? 1 : 0;
}
CPP
# The consumer compiles with the build's own flags (sanitizers included).
flags=$(sed -n 's/^CMAKE_CXX_FLAGS:STRING=//p' "$build/CMakeCache.txt")
ldflags=$(sed -n 's/^CMAKE_EXE_LINKER_FLAGS:STRING=//p' "$build/CMakeCache.txt")
cmake -S "$work/consumer" -B "$work/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$ldflags" >/dev/null
cmake --build "$work/consumer/build" >/dev/null
"$work/consumer/build/consumer" | grep -qx '(2,3):(3,1)'
# The Python package, where the build has it: Debian's layout, importable
# with one PYTHONPATH entry, its pytest plugin registered by its entry point.
if [ -d "$build/python/attncheck" ]; then
  site=$prefix/lib/python3/dist-packages
  for f in attncheck/__init__.py attncheck/pytest.py attncheck/__main__.py; do
    [ -e "$site/$f" ] || { echo "missing after install: lib/python3/dist-packages/$f"; exit 1; }
  done
  ls "$site"/attncheck/_core.*.so >/dev/null
  ls "$site"/attncheck-*.dist-info/entry_points.txt >/dev/null
  (cd "$work" && PYTHONPATH=$site /usr/bin/python3 -c 'import attncheck, attncheck.pytest; print(attncheck.__file__)' |
    grep "^$site/attncheck/__init__.py" >/dev/null)
  help=$(cd "$work" && PYTHONPATH=$site /usr/bin/python3 -m pytest -p no:cacheprovider --help)
  grep -q -- --attncheck-cases <<<"$help"
fi
echo "install layout ok"
