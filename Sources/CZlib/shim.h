// zlib comes with libpng-dev (its dependency zlib1g-dev); used only to read
// deflate-compressed members of re-zipped PyTorch checkpoints.
#include <zlib.h>
