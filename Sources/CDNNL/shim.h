// oneDNN's C API (Debian's libdnnl-dev, built on the GNU OpenMP runtime).
#include <dnnl.h>

// The OpenMP thread count is per calling thread, so each inference shard sets its own team size.
// Declared here rather than through <omp.h>, which lives in gcc's private include directory.
void omp_set_num_threads(int num_threads);
int omp_get_max_threads(void);
