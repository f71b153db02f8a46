// oneDNN's C API (Debian's libdnnl-dev, built on the GNU OpenMP runtime).
#include <dnnl.h>

// The OpenMP thread count is per calling thread, so each inference shard sets its own team size.
// Declared here rather than through <omp.h>, which lives in gcc's private include directory.
void omp_set_num_threads(int num_threads);
int omp_get_max_threads(void);

// GNU OpenMP's entry point for a parallel region (what `#pragma omp parallel` compiles to), so the
// runtime can spread its own loops (attention per text) over the team oneDNN uses; oneDNN calls made
// inside the region run single-threaded on each member.
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
