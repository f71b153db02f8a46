#ifndef MINIRBT_CLIBFUZZER_H
#define MINIRBT_CLIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt, LLVM >= 11): parses libFuzzer's flags from argv and runs `callback`
/// on every input. Only a `-sanitize=fuzzer` link provides it.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
