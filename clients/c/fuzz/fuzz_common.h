/* Shared by the libFuzzer targets: the crypto backend and a device's fixed-size token array. */
#include "../relreg_client.h"
#include "../relreg_crypto_sodium.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DEVICE_TOKENS 256

static const rr_identity fuzz_devices[] = {
    {"beta", "pvt", "main", "2.1.0", "AT100-000123"},
    {"beta", "pvt", "main", "2.1.1-dev.3", "SN-1"},
    {"production", "pvt", NULL, "1.0.0", "X"},
    {"stable", "h1", NULL, "1.2", "FLEET-00001"},
};

static void fuzz_init(void)
{
    static int done;
    if (!done) {
        if (rr_crypto_sodium_init() != 0)
            abort();
        done = 1;
    }
}

typedef rr_status (*fuzz_decider)(const rr_doc *doc, const rr_identity *device, const rr_crypto *crypto,
                                  rr_decision *out);

/* One decision entry point on an arbitrary document, for each of fuzz_devices: an update always names
   its release and artifact. */
static int fuzz_decide(const uint8_t *data, size_t size, fuzz_decider decide)
{
    jsmntok_t tokens[DEVICE_TOKENS];
    rr_doc doc;
    rr_decision decision;
    fuzz_init();
    if (rr_parse(&doc, (const char *)data, size, tokens, DEVICE_TOKENS) != RR_OK)
        return 0;
    for (size_t i = 0; i < sizeof fuzz_devices / sizeof *fuzz_devices; i++) {
        rr_status status = decide(&doc, &fuzz_devices[i], &rr_crypto_sodium, &decision);
        if (status == RR_OK && decision.update && (decision.artifact < 0 || decision.release < 0))
            abort();
    }
    return 0;
}
