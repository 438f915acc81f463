// Standard output's buffering, set from C: Swift 6 will not touch libc's `stdout` global (shared mutable state).
#include "CKernels.h"
#include <stdio.h>

void lt_line_buffer_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }
