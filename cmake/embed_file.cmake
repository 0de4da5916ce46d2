# Writes a C++ source that holds a file's bytes as an array (used for the built-in CLIP merges table):
#   cmake -DINPUT=data/clip_merges.txt.gz -DOUTPUT=clip_merges_gz.cc -DSYMBOL=clip_merges_gz -P embed_file.cmake
# defines pigment::embedded::SYMBOL (const unsigned char[]) and SYMBOL_size (std::size_t).
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
# 0x.., per byte, 16 to a line.
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REPEAT "0x[0-9a-f][0-9a-f]," 16 line_pattern)
string(REGEX REPLACE "${line_pattern}" "\\0\n" bytes "${bytes}")
get_filename_component(input_name "${INPUT}" NAME)
file(WRITE "${OUTPUT}.tmp"
  "// Generated from ${input_name} by cmake/embed_file.cmake at build time; do not edit.\n"
  "#include <cstddef>\n\n"
  "namespace pigment::embedded {\n"
  "extern const unsigned char ${SYMBOL}[] = {\n${bytes}\n};\n"
  "extern const std::size_t ${SYMBOL}_size = ${size};\n"
  "}  // namespace pigment::embedded\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
