/* rr_crypto over libsodium: call rr_crypto_sodium_init() once (it calls sodium_init). */
#ifndef RELREG_CRYPTO_SODIUM_H
#define RELREG_CRYPTO_SODIUM_H

#include "relreg_client.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const rr_crypto rr_crypto_sodium;
int rr_crypto_sodium_init(void);

#ifdef __cplusplus
}
#endif

#endif
