/* rr_decide_answer on arbitrary documents, for a few devices. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jsmntok_t tokens[DEVICE_TOKENS];
    rr_doc doc;
    rr_decision decision;
    fuzz_init();
    if (rr_parse(&doc, (const char *)data, size, tokens, DEVICE_TOKENS) != RR_OK)
        return 0;
    for (size_t i = 0; i < sizeof fuzz_devices / sizeof *fuzz_devices; i++) {
        rr_status status = rr_decide_answer(&doc, &fuzz_devices[i], &rr_crypto_sodium, &decision);
        if (status == RR_OK && decision.update && (decision.artifact < 0 || decision.release < 0))
            abort();
    }
    return 0;
}
