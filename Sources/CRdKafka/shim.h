// librdkafka's C API, >= 2.3 (scripts/setup.sh builds it when the system copy is older).
#include <librdkafka/rdkafka.h>
