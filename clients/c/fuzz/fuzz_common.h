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
