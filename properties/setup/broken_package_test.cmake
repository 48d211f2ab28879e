# Configures the project (no build) against a oneDNN config that is found but
# does not load (broken_dnnl/), and checks what the configure says.
#   cmake -DMODE=auto|on|fixed|absent -DSOURCE=<project> -DBINARY=<new build dir>
#         -DGENERATOR=<generator> -DCC=<C compiler> -DCXX=<C++ compiler> -P broken_package_test.cmake
# auto:   exits 0 and says, in exactly one line, that the adapter is off, why,
#         and what to install; the adapter is not a target.
# on:     ATTNCHECK_ONEDNN=ON fails the configure, with the same reason.
# fixed:  configured again with what it lacked (OpenCL_LIBRARY), the adapter
#         is on; configured a third time, the config is not probed again.
# absent: a oneDNN that is not there at all still says "not found".
cmake_policy(SET CMP0007 NEW)
set(broken ${CMAKE_CURRENT_LIST_DIR}/broken_dnnl)
set(reason "Could NOT find OpenCL \\(missing: OpenCL_LIBRARY\\); apt-get install ocl-icd-opencl-dev")
set(off_line "-- attncheck: oneDNN adapter off \\(its CMake package is broken: ${reason}\\)")

function(fail)
  string(JOIN "" text ${ARGN})
  message(FATAL_ERROR "broken_package_test (${MODE}): ${text}")
endfunction()

# configure(<expected rc: 0 or nonzero> ARGS...): sets `out` to the output.
function(configure expected)
  execute_process(COMMAND ${CMAKE_COMMAND} -G ${GENERATOR} -S ${SOURCE} -B ${BINARY}
      -DCMAKE_C_COMPILER=${CC} -DCMAKE_CXX_COMPILER=${CXX}
      -DATTNCHECK_TORCH=OFF -DATTNCHECK_CUDA=OFF -DATTNCHECK_TESTS=OFF -DATTNCHECK_BENCH=OFF ${ARGN}
    RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e TIMEOUT 120)
  set(out "${o}${e}")
  message("${out}")
  if(expected STREQUAL "0" AND NOT rc STREQUAL "0")
    fail("the configure exited ${rc}, expected 0")
  elseif(expected STREQUAL "nonzero" AND (rc STREQUAL "0" OR NOT rc MATCHES "^[0-9]+$"))
    fail("the configure exited ${rc}, expected a failure")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

# The configure's lines about the oneDNN adapter: exactly `line` (a regex).
# (";" is "<sc>" here: a CMake list would split the line there.)
function(expect_onednn_line line)
  string(REPLACE ";" "<sc>" text "${out}")
  string(REPLACE ";" "<sc>" line "${line}")
  string(REGEX MATCHALL "[^\n]*oneDNN[^\n]*" lines "${text}")
  list(LENGTH lines n)
  if(NOT n EQUAL 1)
    fail("expected one line about oneDNN, got ${n}:\n" "${lines}")
  endif()
  if(NOT lines MATCHES "^${line}$")
    fail("the oneDNN line is\n  ${lines}\nexpected (regex)\n  ${line}")
  endif()
endfunction()

function(expect_adapter_target present)
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${BINARY} --target help
    RESULT_VARIABLE rc OUTPUT_VARIABLE targets ERROR_VARIABLE targets)
  if(NOT rc EQUAL 0)
    fail("listing the targets failed: ${targets}")
  endif()
  if(present AND NOT targets MATCHES "attncheck_onednn_adapter")
    fail("attncheck_onednn_adapter is not a target")
  elseif(NOT present AND targets MATCHES "attncheck_onednn_adapter")
    fail("attncheck_onednn_adapter is a target, though oneDNN's config is broken")
  endif()
endfunction()

foreach(v MODE SOURCE BINARY GENERATOR CC CXX)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "broken_package_test: -D${v}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE ${BINARY})

if(MODE STREQUAL "auto" OR MODE STREQUAL "fixed")
  configure(0 -Ddnnl_DIR=${broken})
  if(out MATCHES "CMake Error")
    fail("the configure printed an error")
  endif()
  expect_onednn_line("${off_line}")
  expect_adapter_target(FALSE)
  if(MODE STREQUAL "fixed")
    configure(0 -DOpenCL_LIBRARY=${broken}/libOpenCL.so)
    expect_onednn_line("-- attncheck: oneDNN adapter on \\(oneDNN 0\\.0\\.0\\)")
    expect_adapter_target(TRUE)
    configure(0 --trace-source=${SOURCE}/cmake/probe_package.cmake)
    expect_onednn_line("-- attncheck: oneDNN adapter on \\(oneDNN 0\\.0\\.0\\)")
    if(out MATCHES "execute_process")
      fail("a re-configure probed the config that had loaded again")
    endif()
    if(NOT out MATCHES "probe_package.cmake\\([0-9]+\\): +cmake_parse_arguments\\(")
      fail("the trace shows no call of attncheck_probe_package at all")
    endif()
  endif()
elseif(MODE STREQUAL "on")
  configure(nonzero -Ddnnl_DIR=${broken} -DATTNCHECK_ONEDNN=ON)
  # CMake wraps an error's message across lines.
  string(REGEX REPLACE "[ \n]+" " " text "${out}")
  if(NOT text MATCHES "CMake Error at [^ ]*cmake/probe_package.cmake:[0-9]+ \\(message\\): ATTNCHECK_ONEDNN=ON but oneDNN's CMake package is broken: ${reason}")
    fail("the error does not say why")
  endif()
elseif(MODE STREQUAL "absent")
  configure(0 -DCMAKE_DISABLE_FIND_PACKAGE_dnnl=ON)
  expect_onednn_line("-- attncheck: oneDNN adapter off \\(oneDNN not found\\)")
  expect_adapter_target(FALSE)
else()
  message(FATAL_ERROR "broken_package_test: MODE is auto, on, fixed or absent, not '${MODE}'")
endif()
