# Runs the command after "--" and fails unless it exits with EXPECTED_RC.
# Its output is echoed so PASS_REGULAR_EXPRESSION can inspect it; a test
# that sets one ignores the exit status, so every such test also sets
# FAIL_REGULAR_EXPRESSION "expect_rc: exit status" (the line below).
cmake_policy(SET CMP0007 NEW)
set(cmd)
set(found FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE ${last})
  if(found)
    list(APPEND cmd "${CMAKE_ARGV${i}}")
  elseif("${CMAKE_ARGV${i}}" STREQUAL "--")
    set(found TRUE)
  endif()
endforeach()
execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc STREQUAL "${EXPECTED_RC}")
  message(FATAL_ERROR "expect_rc: exit status ${rc}, expected ${EXPECTED_RC}")
endif()
