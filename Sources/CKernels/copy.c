// In-kernel file-to-file copy for tensors a merge leaves unchanged: the bytes
// never pass through user space (no page faults on the input mapping, no
// user-to-kernel copy), and file systems that can share extents do so.
#define _GNU_SOURCE
#include "CKernels.h"
#include <errno.h>
#include <unistd.h>

long long lt_copy_file_range(int in_fd, long long in_offset, int out_fd, long long out_offset, long long length) {
    long long done = 0;
    while (done < length) {
        off64_t src = in_offset + done, dst = out_offset + done;
        ssize_t n = copy_file_range(in_fd, &src, out_fd, &dst, (size_t)(length - done), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (done == 0 && (errno == ENOSYS || errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP)) return -2;
            return -1;
        }
        if (n == 0) return -1; // source shorter than expected
        done += n;
    }
    return done;
}
