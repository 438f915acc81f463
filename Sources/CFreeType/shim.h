// FreeType (libfreetype-dev) rasterises the labels of lora-xyz sheets from a
// real font (DejaVu Sans, fonts-dejavu-core). The include path comes from
// pkg-config (freetype2).
#include <ft2build.h>
#include FT_FREETYPE_H
