# attncheck_probe_package(<pkg> <out> [DEPENDS <Name>=<debian-package>...])
#
# Whether the CMake configuration file of an optional package loads, tried
# before the real find_package(<pkg>). A config that calls
# find_package(<dependency> REQUIRED) (Debian's dnnl-config.cmake requires
# OpenCL) ends the whole configure when the dependency is missing, and CMake
# cannot catch that in-process, so the config is loaded in a child configure
# of a tiny project instead, with this project's cache (compilers, flags,
# <pkg>_DIR, CMAKE_PREFIX_PATH, dependency hints).
#
# Sets <out> to "" when the config loads, or when there is no config at all
# (the caller's find_package then says "not found", as before); else to one
# line: the first error of the config, then what to install: the Debian
# package of the DEPENDS name that the error names first, e.g.
#   Could NOT find OpenCL (missing: OpenCL_LIBRARY OpenCL_INCLUDE_DIR); apt-get install ocl-icd-opencl-dev
#
# Cheap: the child runs only when a config file exists, and a config that
# loaded is remembered by its directory (ATTNCHECK_PROBED_<pkg>), so a
# re-configure does not probe it again. A broken one is probed again on each
# configure, so that installing what it lacks is enough to switch it on.
function(attncheck_probe_package pkg out)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "" "DEPENDS")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "attncheck_probe_package: unexpected arguments: ${arg_UNPARSED_ARGUMENTS}")
  endif()
  set(${out} "" PARENT_SCOPE)
  if(ATTNCHECK_PROBED_${pkg} AND "${${pkg}_DIR}" STREQUAL "${ATTNCHECK_PROBED_${pkg}}")
    return()
  endif()

  # The config file find_package(<pkg>) would load, without loading it: asked
  # for a version no package has, find_package reads only the version files
  # and lists the configs it considered, in its search order.
  set(had_dir FALSE)
  if(DEFINED CACHE{${pkg}_DIR})
    set(had_dir TRUE)
    set(saved_dir "$CACHE{${pkg}_DIR}")
  endif()
  find_package(${pkg} 999999999 QUIET CONFIG)
  if(had_dir)  # the version asked for failed the search, which reset it
    set(${pkg}_DIR "${saved_dir}" CACHE PATH "The directory containing a CMake configuration file for ${pkg}." FORCE)
  endif()
  if(NOT ${pkg}_CONSIDERED_CONFIGS)
    return()
  endif()
  list(GET ${pkg}_CONSIDERED_CONFIGS 0 config)
  get_filename_component(config_dir "${config}" DIRECTORY)

  # The child: this project's languages and cache, the same config directory.
  set(dir ${CMAKE_BINARY_DIR}/CMakeFiles/attncheck_probe/${pkg})
  file(REMOVE_RECURSE ${dir})
  set(langs)
  get_property(enabled GLOBAL PROPERTY ENABLED_LANGUAGES)
  foreach(lang C CXX)
    if(lang IN_LIST enabled)
      list(APPEND langs ${lang})
    endif()
  endforeach()
  if(NOT langs)
    set(langs NONE)
  endif()
  file(WRITE ${dir}/CMakeLists.txt
    "cmake_minimum_required(VERSION ${CMAKE_MINIMUM_REQUIRED_VERSION})\n"
    "project(attncheck_probe_${pkg} LANGUAGES ${langs})\n"
    "find_package(${pkg} REQUIRED)\n")
  set(cache "")
  get_property(names DIRECTORY PROPERTY CACHE_VARIABLES)
  foreach(name ${names})
    get_property(type CACHE ${name} PROPERTY TYPE)
    if(NOT type MATCHES "^(INTERNAL|STATIC)$" AND NOT name STREQUAL "${pkg}_DIR")
      string(APPEND cache "set(${name} [==[$CACHE{${name}}]==] CACHE ${type} \"\")\n")
    endif()
  endforeach()
  # Search paths this configure set as plain variables rather than in the cache.
  foreach(name CMAKE_PREFIX_PATH CMAKE_MODULE_PATH CMAKE_FIND_ROOT_PATH)
    if(DEFINED ${name})
      string(APPEND cache "set(${name} [==[${${name}}]==] CACHE STRING \"\" FORCE)\n")
    endif()
  endforeach()
  string(APPEND cache "set(${pkg}_DIR [==[${config_dir}]==] CACHE PATH \"\")\n")
  file(WRITE ${dir}/cache.cmake "${cache}")
  set(generator -G ${CMAKE_GENERATOR})
  if(CMAKE_GENERATOR_PLATFORM)
    list(APPEND generator -A ${CMAKE_GENERATOR_PLATFORM})
  endif()
  if(CMAKE_GENERATOR_TOOLSET)
    list(APPEND generator -T ${CMAKE_GENERATOR_TOOLSET})
  endif()
  execute_process(
    COMMAND ${CMAKE_COMMAND} ${generator} -C ${dir}/cache.cmake -S ${dir} -B ${dir}/build
    RESULT_VARIABLE rc OUTPUT_VARIABLE child_out ERROR_VARIABLE child_err TIMEOUT 300)
  file(WRITE ${dir}/output.txt "${child_out}${child_err}")
  if(rc EQUAL 0)
    set(ATTNCHECK_PROBED_${pkg} "${config_dir}" CACHE INTERNAL "The ${pkg} config directory whose config loaded")
    file(REMOVE_RECURSE ${dir})
    return()
  endif()
  unset(ATTNCHECK_PROBED_${pkg} CACHE)

  # The reason: the first error's message, on one line.
  if("${child_err}" MATCHES "CMake Error[^\n]*\n((  [^\n]*\n)+)")
    string(REGEX REPLACE "[ \t\n]+" " " reason "${CMAKE_MATCH_1}")
    string(STRIP "${reason}" reason)
    string(REGEX REPLACE "\\.$" "" reason "${reason}")
  elseif(rc MATCHES "^[0-9]+$")
    set(reason "a configure that loads ${config} exits ${rc}")
  else()
    set(reason "a configure that loads ${config}: ${rc}")
  endif()
  string(LENGTH "${reason}" length)
  if(length GREATER 240)
    string(SUBSTRING "${reason}" 0 237 reason)
    string(APPEND reason "...")
  endif()
  # What to install: the dependency named first in the reason.
  string(TOLOWER "${reason}" lower)
  set(install "")
  set(first -1)
  foreach(dep ${arg_DEPENDS})
    if(NOT dep MATCHES "^([^=]+)=(.+)$")
      message(FATAL_ERROR "attncheck_probe_package: DEPENDS takes Name=debian-package, not '${dep}'")
    endif()
    set(deb ${CMAKE_MATCH_2})
    string(TOLOWER "${CMAKE_MATCH_1}" name)
    string(FIND "${lower}" "${name}" at)
    if(at GREATER -1 AND (first EQUAL -1 OR at LESS first))
      set(first ${at})
      set(install "apt-get install ${deb}")
    endif()
  endforeach()
  if(NOT install)
    set(install "install what ${config} needs, or point ${pkg}_DIR at a working one")
  endif()
  set(${out} "${reason}; ${install}" PARENT_SCOPE)
endfunction()

# attncheck_optional_package_loads(<pkg> <option> <part> <what> <out> [DEPENDS ...])
#
# The policy every optional part applies to the probe above: when <pkg>'s
# config is found but does not load, <option> ON is an error naming why, and
# AUTO switches <part> off with one line. Sets <out> to TRUE when the caller
# may go on to find_package(<pkg>) (the config loads, or there is none).
function(attncheck_optional_package_loads pkg option part what out)
  attncheck_probe_package(${pkg} broken ${ARGN})
  if(NOT broken)
    set(${out} TRUE PARENT_SCOPE)
    return()
  endif()
  if(${option} STREQUAL "ON")
    message(FATAL_ERROR "${option}=ON but ${what}'s CMake package is broken: ${broken}")
  endif()
  message(STATUS "attncheck: ${part} off (its CMake package is broken: ${broken})")
  set(${out} FALSE PARENT_SCOPE)
endfunction()
