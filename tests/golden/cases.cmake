# Golden case directories (relative to ../shared/golden) that ctest runs through pigment-golden.
# Each group lists its cases in tests/golden/cases/<group>.cmake (list(APPEND PIGMENT_GOLDEN_CASES ...)) once the
# code it exercises exists; a listed case that is unsupported fails.
set(PIGMENT_GOLDEN_CASES)
file(GLOB PIGMENT_GOLDEN_CASE_LISTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/cases/*.cmake)
foreach(f ${PIGMENT_GOLDEN_CASE_LISTS})
  include(${f})
endforeach()
