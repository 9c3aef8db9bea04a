/* rr_verify_signature on arbitrary .sig files (pinned test key; the key of the seeds). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rr_trusted_key keys[2] = {
        {"5d9e3b8e4c5b4a6f6e1d2c3b4a5968776655443322110099aabbccddeeff0011", {0}},
        {"0000000000000000000000000000000000000000000000000000000000000000", {1}},
    };
    jsmntok_t tokens[32];
    rr_verified verified;
    fuzz_init();
    const char *sig = (const char *)data;
    rr_status status = rr_verify_signature(sig, size, tokens, 32, keys, 2, 1, "api/v1/index.json", 1700000000,
                                           0, &rr_crypto_sodium, &verified);
    if (status == RR_OK)
        rr_verified_check(&verified, data, size, &rr_crypto_sodium);
    rr_verify_signature(sig, size, tokens, 32, keys, 2, 2, NULL, RR_NO_CLOCK, 5, &rr_crypto_sodium, &verified);
    return 0;
}
