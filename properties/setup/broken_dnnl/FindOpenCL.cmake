# Finds OpenCL only where OpenCL_LIBRARY is given: never the machine's own.
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(OpenCL REQUIRED_VARS OpenCL_LIBRARY)
