# Writes the page into a C++ source file (a raw string), so fbview needs no files at run time.
file(READ ${INPUT} content)
string(FIND "${content}" ")fbview_page\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter")
endif()
file(WRITE ${OUTPUT} "// Generated from ${INPUT} at build time; do not edit.\n#include \"fbview/web_server.hpp\"\nnamespace framebroker::fbview {\nconst char* const kIndexHtml = R\"fbview_page(${content})fbview_page\";\n}\n")
