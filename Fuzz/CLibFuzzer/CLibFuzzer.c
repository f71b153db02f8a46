// The declaration in include/CLibFuzzer.h is all this module provides; SwiftPM needs one source file.
#include "CLibFuzzer.h"
