# Debian packages attncheck needs, by component. Sourced by ci/setup.
ATTNCHECK_PACKAGES_CORE=(
  build-essential cmake g++ git
  libgtest-dev libgmock-dev librapidcheck-dev
  libxtensor-dev xtl-dev libxsimd-dev libdlpack-dev
  libbenchmark-dev libopenblas-dev
  clang libclang-common-14-dev libclang-rt-14-dev
)
