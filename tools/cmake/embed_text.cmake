# Writes the text file INPUT into the C++ source OUTPUT as a raw string, so that a tool needs no
# files at run time: `const char* const NAMESPACE::SYMBOL`, declared extern in HEADER (which
# OUTPUT includes, for the external linkage).
#   cmake -DINPUT=... -DOUTPUT=... -DHEADER=... -DNAMESPACE=... -DSYMBOL=... -P embed_text.cmake
foreach(var INPUT OUTPUT HEADER NAMESPACE SYMBOL)
  if(NOT ${var})
    message(FATAL_ERROR "embed_text.cmake: -D${var}=... is missing")
  endif()
endforeach()
file(READ ${INPUT} content)
string(FIND "${content}" ")embedded\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter )embedded\"")
endif()
file(WRITE ${OUTPUT} "// Generated from ${INPUT} at build time; do not edit.\n#include \"${HEADER}\"\nnamespace ${NAMESPACE} {\nconst char* const ${SYMBOL} = R\"embedded(${content})embedded\";\n}\n")
