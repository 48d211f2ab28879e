# A oneDNN config that is found but does not load, as Debian's does on a
# machine without OpenCL: it requires OpenCL through its own FindOpenCL.cmake.
# It loads once OpenCL_LIBRARY is given (the configure's cache reaches it).
list(INSERT CMAKE_MODULE_PATH 0 ${CMAKE_CURRENT_LIST_DIR})
find_package(OpenCL REQUIRED)
list(REMOVE_AT CMAKE_MODULE_PATH 0)
set(dnnl_VERSION 0.0.0)
if(NOT TARGET DNNL::dnnl)
  add_library(DNNL::dnnl INTERFACE IMPORTED)
endif()
