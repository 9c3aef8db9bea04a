/* The libsodium backend of rr_crypto (ESP-IDF ships libsodium as a component). */
#include "relreg_crypto_sodium.h"

#include <sodium.h>

typedef char rr_sha256_ctx_fits[sizeof(crypto_hash_sha256_state) <= RR_SHA256_CTX_SIZE ? 1 : -1];

static void sha256_init(rr_sha256_ctx *ctx)
{
    crypto_hash_sha256_init((crypto_hash_sha256_state *)(void *)ctx->u.bytes);
}

static void sha256_update(rr_sha256_ctx *ctx, const uint8_t *data, size_t len)
{
    crypto_hash_sha256_update((crypto_hash_sha256_state *)(void *)ctx->u.bytes, data, len);
}

static void sha256_final(rr_sha256_ctx *ctx, uint8_t digest[32])
{
    crypto_hash_sha256_final((crypto_hash_sha256_state *)(void *)ctx->u.bytes, digest);
}

static int ed25519_verify(const uint8_t sig[64], const uint8_t *msg, size_t len, const uint8_t public_key[32])
{
    return crypto_sign_verify_detached(sig, msg, len, public_key) == 0 ? 0 : 1;
}

const rr_crypto rr_crypto_sodium = {sha256_init, sha256_update, sha256_final, ed25519_verify};

int rr_crypto_sodium_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}
