# cmake -DINPUT=file -DOUTPUT=header -DNAME=kSymbol -P embed.cmake
# Writes a header holding INPUT's bytes as `inline constexpr unsigned char NAME[]` + NAMESize,
# so the web page ships inside the binary with no build step and no files at run time.
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" n_hex)
math(EXPR n_bytes "${n_hex} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUTPUT}" "// Generated from ${INPUT} by server/embed.cmake. Do not edit.\n#pragma once\n#include <cstddef>\nnamespace kiln::server {\ninline constexpr unsigned char ${NAME}[] = {\n${bytes}0x00};\ninline constexpr size_t ${NAME}Size = ${n_bytes};\n}  // namespace kiln::server\n")
