# Golden case directories (relative to ../shared/golden) that ctest runs through pigment-golden.
# A case is listed here once the code it exercises exists; an unsupported case fails.
set(PIGMENT_GOLDEN_CASES
)
