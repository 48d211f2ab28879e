# Debian packages attncheck needs, by component. Sourced by ci/setup.
ATTNCHECK_PACKAGES_CORE=(
  build-essential cmake g++ git
  libgtest-dev libgmock-dev librapidcheck-dev
  libxtensor-dev xtl-dev libxsimd-dev libdlpack-dev
  libbenchmark-dev libopenblas-dev
  clang libclang-common-14-dev libclang-rt-14-dev
)
# The third-party adapters (src/adapters/): libtorch and TorchScript, oneDNN.
# ocl-icd-opencl-dev: Debian's dnnl-config.cmake requires OpenCL, which libdnnl-dev only Recommends.
ATTNCHECK_PACKAGES_ADAPTERS=(libtorch-dev libdnnl-dev ocl-icd-opencl-dev python3-torch)
# The Python package and pytest plugin (src/python/): pybind11 and Python's
# headers to build it; pytest (with xdist), NumPy (and python3-torch, above) to test it.
ATTNCHECK_PACKAGES_PYTHON=(python3-dev pybind11-dev python3-pybind11 python3-pytest python3-pytest-xdist python3-numpy)
