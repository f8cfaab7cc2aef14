# Run by cpack (CPACK_PRE_BUILD_SCRIPTS) between installing into its staging directory and
# building the .deb: what Debian policy asks of the package's files, done here so that
# `cmake --install` and the build tree keep plain man pages and a static library with debug
# info. The programs and the .so are stripped by CPack itself (their debug info goes to the
# -dbgsym .ddeb); the .a it leaves alone.
set(stage "${CPACK_TEMPORARY_DIRECTORY}")
if(NOT IS_DIRECTORY "${stage}")
  message(FATAL_ERROR "cpack_pre_build: no staging directory (CPACK_TEMPORARY_DIRECTORY='${stage}')")
endif()

# Man pages and the changelog. -n: no file name or time stamp in the .gz, so the package
# builds reproducibly.
file(GLOB_RECURSE man_pages LIST_DIRECTORIES false "${stage}/*/share/man/man[1-9]/*")
file(GLOB changelogs LIST_DIRECTORIES false "${stage}/*/share/doc/*/changelog")
set(to_gzip ${man_pages} ${changelogs})
list(FILTER to_gzip EXCLUDE REGEX "\\.gz$")
foreach(f IN LISTS to_gzip)
  execute_process(COMMAND "${CPACK_FB_GZIP}" -9nf "${f}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cpack_pre_build: gzip ${f} failed (${rc})")
  endif()
endforeach()

file(GLOB_RECURSE archives LIST_DIRECTORIES false "${stage}/*.a")
foreach(a IN LISTS archives)
  execute_process(
    COMMAND "${CPACK_FB_STRIP}" --strip-debug --remove-section=.comment
            --enable-deterministic-archives "${a}"
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cpack_pre_build: strip --strip-debug ${a} failed (${rc})")
  endif()
endforeach()
list(LENGTH to_gzip n_gz)
list(LENGTH archives n_a)
message(STATUS "cpack_pre_build: gzipped ${n_gz} files, stripped debug info from ${n_a} archives")
