#include "CImaging.h"
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

struct guarded_error {
    struct jpeg_error_mgr base;
    jmp_buf escape;
    char *message;
    size_t message_size;
};

static void on_error(j_common_ptr info) {
    struct guarded_error *e = (struct guarded_error *)info->err;
    char text[JMSG_LENGTH_MAX];
    (*info->err->format_message)(info, text);
    snprintf(e->message, e->message_size, "%s", text);
    longjmp(e->escape, 1);
}

// Warnings (corrupt data that libjpeg can decode around) are not fatal; stay quiet.
static void on_message(j_common_ptr info) { (void)info; }

int lt_jpeg_decode(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **pixels, int *width, int *height,
                   char *error, size_t error_size) {
    struct jpeg_decompress_struct info;
    struct guarded_error errors;
    uint8_t *volatile out = NULL;
    *pixels = NULL;
    memset(&info, 0, sizeof(info));
    info.err = jpeg_std_error(&errors.base);
    errors.base.error_exit = on_error;
    errors.base.output_message = on_message;
    errors.message = error;
    errors.message_size = error_size;
    if (setjmp(errors.escape)) {
        jpeg_destroy_decompress(&info);
        free(out);
        return -1;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, data, (unsigned long)size);
    jpeg_read_header(&info, TRUE);
    if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
        snprintf(error, error_size, "CMYK JPEGs are not supported; save the image as RGB");
        jpeg_destroy_decompress(&info);
        return -1;
    }
    if ((size_t)info.image_width * (size_t)info.image_height > max_pixels) {
        snprintf(error, error_size, "%ux%u pixels is more than this tool reads (%zu at most)", info.image_width, info.image_height, max_pixels);
        jpeg_destroy_decompress(&info);
        return -1;
    }
    info.out_color_space = JCS_RGB;
    jpeg_start_decompress(&info);
    size_t stride = (size_t)info.output_width * 3;
    out = malloc(stride * info.output_height);
    if (!out) {
        snprintf(error, error_size, "out of memory");
        jpeg_destroy_decompress(&info);
        return -1;
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = out + (size_t)info.output_scanline * stride;
        jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
    *width = (int)info.output_width;
    *height = (int)info.output_height;
    *pixels = out;
    jpeg_destroy_decompress(&info);
    return 0;
}
