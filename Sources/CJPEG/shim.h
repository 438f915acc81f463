// libjpeg-turbo (libjpeg-dev): sheets too large for a sensible PNG.
// jpeglib.h needs FILE and size_t declared first.
#include <stdio.h>
#include <stddef.h>
#include <jpeglib.h>
