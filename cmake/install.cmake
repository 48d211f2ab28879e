# cmake --install lays out what shared/spec/plugin-abi.md lists:
#   bin/attncheck, include/attncheck/..., lib/attncheck/builtin.so,
#   lib/cmake/attncheck/ (find_package(attncheck)).
include(CMakePackageConfigHelpers)

install(TARGETS attncheck_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS builtin LIBRARY DESTINATION lib/attncheck)
install(DIRECTORY src/attncheck/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/attncheck
  FILES_MATCHING PATTERN "*.h")
install(DIRECTORY reference/attncheck/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/attncheck
  FILES_MATCHING PATTERN "*.h")

install(TARGETS attncheck attncheck_gtest attncheck_core attncheck_reference attncheck_reference_f32 EXPORT attncheckTargets
  ARCHIVE DESTINATION lib)
install(EXPORT attncheckTargets NAMESPACE attncheck:: DESTINATION lib/cmake/attncheck)
configure_package_config_file(cmake/attncheckConfig.cmake.in
  ${PROJECT_BINARY_DIR}/attncheckConfig.cmake INSTALL_DESTINATION lib/cmake/attncheck)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/attncheckConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/attncheckConfig.cmake
  ${PROJECT_BINARY_DIR}/attncheckConfigVersion.cmake DESTINATION lib/cmake/attncheck)
