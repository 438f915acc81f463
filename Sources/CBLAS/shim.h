// Debian's libopenblas-dev installs cblas.h under the multiarch include dir.
#include <cblas.h>
// OpenBLAS extensions used to report and control the kernels in use.
char *openblas_get_corename(void);
char *openblas_get_config(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
