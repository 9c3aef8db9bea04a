/* rr_decide_answer on arbitrary documents, for a few devices. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_decide(data, size, rr_decide_answer);
}
