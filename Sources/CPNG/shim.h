// libpng (libpng-dev): lora-xyz writes cells and sheets as PNG with
// A1111's `parameters` text chunk, and reads cached cells back.
#include <png.h>
