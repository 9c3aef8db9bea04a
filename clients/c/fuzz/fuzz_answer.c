/* rr_decide_answer on arbitrary documents, for a few devices: the input is the answer, and also the
   rollouts document when the answer has staged offers. */
#include "fuzz_common.h"

static rr_status decide_answer(const rr_doc *doc, const rr_identity *device, const rr_crypto *crypto,
                               rr_decision *out)
{
    rr_status status = rr_decide_answer(doc, NULL, device, crypto, out);
    return status == RR_NEED_ROLLOUTS ? rr_decide_answer(doc, doc, device, crypto, out) : status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_decide(data, size, decide_answer);
}
