// Image decoding that must survive hostile files: libjpeg reports errors by
// calling a function that may not return, which Swift cannot catch, so the
// decoder runs here behind setjmp and reports a message instead.
#ifndef LORA_TOOLS_CIMAGING_H
#define LORA_TOOLS_CIMAGING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Decode a JPEG to 8-bit RGB (grayscale and YCbCr are converted). On success
/// returns 0 and sets *pixels (malloc'd, width*height*3 bytes; free() it),
/// *width and *height. On failure returns -1 and writes a message to `error`.
/// Images with more than `max_pixels` pixels are refused before decoding.
int lt_jpeg_decode(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **pixels, int *width, int *height,
                   char *error, size_t error_size);

#ifdef __cplusplus
}
#endif
#endif
