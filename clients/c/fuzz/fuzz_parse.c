/* rr_parse and the token readers on arbitrary bytes. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jsmntok_t tokens[DEVICE_TOKENS];
    rr_doc doc;
    char out[64];
    if (rr_parse(&doc, (const char *)data, size, tokens, DEVICE_TOKENS) != RR_OK)
        return 0;
    for (int i = 0; i < doc.count; i++) {
        rr_skip(&doc, i);
        rr_raw(&doc, i);
        if (tokens[i].type == JSMN_STRING)
            rr_string_copy(&doc, i, out, sizeof out);
        if (tokens[i].type == JSMN_OBJECT)
            rr_object_get(&doc, i, "data");
    }
    return 0;
}
