# Fails when a C++ file tracked by git is not formatted by the root .clang-format.
# Run as: cmake -DCLANG_FORMAT=<exe> -DGIT=<exe> -DSOURCE_DIR=<repo> -P check_format.cmake
execute_process(
  COMMAND ${GIT} ls-files -- *.cc *.h
  WORKING_DIRECTORY ${SOURCE_DIR}
  OUTPUT_VARIABLE files
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "git ls-files failed in ${SOURCE_DIR}")
endif()
string(REPLACE "\n" ";" files "${files}")
list(FILTER files EXCLUDE REGEX "^$")
set(unformatted "")
foreach(f IN LISTS files)
  execute_process(
    COMMAND ${CLANG_FORMAT} --dry-run --Werror ${f}
    WORKING_DIRECTORY ${SOURCE_DIR}
    RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT rc EQUAL 0)
    list(APPEND unformatted ${f})
  endif()
endforeach()
if(unformatted)
  list(JOIN unformatted "\n  " listing)
  message(FATAL_ERROR "not clang-format clean (run clang-format -i on them):\n  ${listing}")
endif()
list(LENGTH files n)
message(STATUS "${n} C++ files are clang-format clean")
