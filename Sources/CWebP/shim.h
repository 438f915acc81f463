// libwebp (libwebp-dev): WebP training images, which kohya's datasets often hold (PIL reads them there).
// encode.h is for the tests, which make WebP files to decode.
#include <webp/decode.h>
#include <webp/encode.h>
