/*
 * relreg_client: the device side of a relreg site, for microcontrollers.
 *
 * C99. No heap: the caller owns every buffer, including jsmn's token array.
 * No I/O: the platform fetches documents and images (esp_http_client,
 * Zephyr's http_client, libcurl in the host harness) and hands the bytes in.
 * Crypto goes through `rr_crypto` (SHA-256 and Ed25519 verification); a
 * libsodium backend is in relreg_crypto_sodium.c.
 *
 * The rules are those of docs/devices.md and generator/relreg's update
 * module (the reference client); tests/test_c_differential.py compares the
 * two on generated registries.
 *
 * Strings handed out (`rr_str`) point into the caller's document buffer and
 * are the raw JSON string contents, still escaped (relreg never writes
 * escapes into versions, URLs or digests); rr_string_copy unescapes.
 */
#ifndef RELREG_CLIENT_H
#define RELREG_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifndef JSMN_STRICT
#define JSMN_STRICT
#endif
#define JSMN_HEADER
#include <jsmn.h>
#undef JSMN_HEADER

#ifdef __cplusplus
extern "C" {
#endif

/* Every failure has its own code; rr_status_name gives its stable name. The
 * signature codes carry the names of the reference client's `reason`s. */
typedef enum {
    RR_OK = 0,
    RR_ERR_ARGUMENT,             /* "bad-argument": a NULL or out-of-range argument */
    RR_ERR_BAD_JSON,             /* "bad-json": not well-formed JSON */
    RR_ERR_TOO_MANY_TOKENS,      /* "too-many-tokens": more JSON tokens than the caller's array holds */
    RR_ERR_TOO_LARGE,            /* "document-too-large": for the platform: the body outgrew its buffer */
    RR_ERR_NOT_RELREG,           /* "not-a-relreg-document": no {"data": {...}} envelope */
    RR_ERR_MALFORMED,            /* "malformed-document": a field the rules need is missing or mistyped */
    RR_ERR_WRONG_CHANNEL,        /* "wrong-channel": the document is for another cohort/hardware/software type */
    RR_ERR_WRONG_VERSION,        /* "wrong-current-version": the answer is for another current version */
    RR_ERR_UNKNOWN_SCHEME,       /* "unknown-version-scheme" */
    RR_ERR_BAD_VERSION,          /* "invalid-version": the device's version is not one of the scheme */
    RR_ERR_MISSING_SIGNATURE,    /* "missing-signature": for the platform: no <document>.sig */
    RR_ERR_MALFORMED_SIGNATURE,  /* "malformed-signature" */
    RR_ERR_UNKNOWN_KEY,          /* "unknown-key": no signature by a pinned key */
    RR_ERR_BAD_SIGNATURE,        /* "bad-signature" */
    RR_ERR_THRESHOLD_NOT_MET,    /* "threshold-not-met" */
    RR_ERR_WRONG_TYPE,           /* "wrong-type": signed content is not a relreg-document */
    RR_ERR_WRONG_PATH,           /* "wrong-path": signed for another document */
    RR_ERR_EXPIRED,              /* "expired" */
    RR_ERR_ROLLBACK,             /* "rollback": older than the version accepted before */
    RR_ERR_DIGEST_MISMATCH,      /* "digest-mismatch": the document's bytes are not the signed ones */
    RR_ERR_IMAGE_TOO_LARGE,      /* "image-too-large": more bytes than the published file_size */
    RR_ERR_SIZE_MISMATCH,        /* "size-mismatch": fewer bytes than the published file_size */
    RR_ERR_IMAGE_DIGEST_MISMATCH,/* "image-digest-mismatch": the image's sha256 is not the published one */
    RR_ERR_BUFFER_TOO_SMALL,     /* "buffer-too-small": an output buffer of the caller */
    RR_ERR_DOWNGRADE,            /* "downgrade-offer": an answer offers a release not above the device's version */
    RR_NEED_ROLLOUTS,            /* "rollouts-needed": not a failure: the answer has staged offers, fetch the
                                    channel's rollouts.json and call rr_decide_answer again with it */
    RR_STATUS_COUNT
} rr_status;

const char *rr_status_name(rr_status status);

/* ---- crypto --------------------------------------------------------------------------- */

#ifndef RR_SHA256_CTX_SIZE
#define RR_SHA256_CTX_SIZE 128 /* libsodium needs 104, mbedTLS 108: raise it for a larger backend */
#endif

typedef struct {
    union {
        uint64_t align;
        void *align_pointer;
        unsigned char bytes[RR_SHA256_CTX_SIZE];
    } u;
} rr_sha256_ctx;

typedef struct rr_crypto {
    void (*sha256_init)(rr_sha256_ctx *ctx);
    void (*sha256_update)(rr_sha256_ctx *ctx, const uint8_t *data, size_t len);
    void (*sha256_final)(rr_sha256_ctx *ctx, uint8_t digest[32]);
    /* 0 when `sig` is a valid Ed25519 signature of msg by public_key, nonzero otherwise */
    int (*ed25519_verify)(const uint8_t sig[64], const uint8_t *msg, size_t len, const uint8_t public_key[32]);
} rr_crypto;

/* ---- documents ------------------------------------------------------------------------ */

typedef struct {
    const char *ptr;
    size_t len;
} rr_str;

typedef struct {
    const char *json;
    size_t len;
    jsmntok_t *tokens;
    int count; /* tokens used */
} rr_doc;

/* Tokenize and check a document (well-formed JSON, one object). `tokens` is the caller's array. */
rr_status rr_parse(rr_doc *doc, const char *json, size_t len, jsmntok_t *tokens, unsigned num_tokens);

/* Token helpers, for reading fields of the chosen release (e.g. notes the platform shows). */
int rr_object_get(const rr_doc *doc, int object, const char *key); /* value token, or -1 */
int rr_skip(const rr_doc *doc, int token);                           /* the token after the subtree */
rr_str rr_raw(const rr_doc *doc, int token);                          /* raw bytes of a token */
/* Unescape a string token into out (NUL-terminated); RR_ERR_BUFFER_TOO_SMALL if it does not fit. */
rr_status rr_string_copy(const rr_doc *doc, int token, char *out, size_t cap);

/* ---- versions ------------------------------------------------------------------------- */

typedef enum { RR_SCHEME_SEMVER = 0, RR_SCHEME_NATURAL = 1 } rr_scheme;

/* RR_OK when `text` is a version of the scheme. */
rr_status rr_version_check(rr_scheme scheme, const char *text, size_t len);
/* *order < 0, 0, > 0 as a sorts before, the same as, or after b (the registry's ordering). */
rr_status rr_version_compare(rr_scheme scheme, const char *a, size_t alen, const char *b, size_t blen, int *order);

/* ---- the update decision -------------------------------------------------------------- */

typedef struct {
    const char *cohort;
    const char *hardware_version;
    const char *software_type; /* NULL: the device has none */
    const char *current_version;
    const char *serial;
} rr_identity;

#define RR_BUCKETS 10000u

/* The device's place 0..9999 in the rollout of `version` to `cohort`:
 * first 8 bytes of sha256(serial \0 cohort \0 version), big-endian, mod 10000. */
unsigned rr_bucket(const rr_crypto *crypto, const char *serial, const char *cohort, const char *version,
                   size_t version_len);

typedef enum {
    RR_REASON_LATEST = 0,
    RR_REASON_OUTSIDE_ROLLOUT,
    RR_REASON_MIN_VERSION,
    RR_REASON_MUST_PASS_THROUGH,
    RR_REASON_BLOCKED
} rr_reason;

const char *rr_reason_name(rr_reason reason);

typedef struct {
    int update;          /* 1: install `artifact` of `release`; 0: up to date */
    int from_candidates; /* 0: read from an answer document; 1: decided locally from candidates */
    /* answer: the `release` object of the chosen offer (the seed's device response), or -1;
     * candidates: the chosen candidate object, or -1 */
    int release;
    int artifact;   /* the artifact object to fetch, or -1 */
    int up_to_date; /* answer: the `up_to_date` object when up to date (-1: null, meaning "latest") */
    rr_reason reason; /* candidates: why (an offer's or the up-to-date reason); answer: read `reason` */
    /* of the artifact to fetch (update == 1) */
    rr_str version;    /* the release's version */
    rr_str url;
    rr_str filename;
    rr_str delta_from; /* ptr NULL for a full image */
    int is_delta;
    uint64_t file_size;
    uint8_t sha256[32];
} rr_decision;

/* From `api/v1/devices/<cohort>/<hw>/<sw or _>/from/<version>.json`: the first offer whose rollout the
 * device is in, else up to date. An offer with "staged": true takes its rollout_threshold from the
 * channel's `.../rollouts.json` (0 when not listed there). Call it first with rollouts NULL: it returns
 * RR_NEED_ROLLOUTS when the answer has a staged offer; then fetch rollouts.json (it fits in the rest of
 * the answer's buffer and token array), rr_parse it and call again with it.
 * Every offer must be above the device's version in the answer's `version_scheme` (relreg never offers
 * a downgrade or a reinstall): otherwise RR_ERR_DOWNGRADE, with `release` and `version` of `out` naming
 * the first such offer. */
rr_status rr_decide_answer(const rr_doc *doc, const rr_doc *rollouts, const rr_identity *device,
                           const rr_crypto *crypto, rr_decision *out);

/* Pass it to rr_decide_answer as `rollouts` when the channel's rollouts.json was refused as `rollback`
 * (signed before a document accepted since: a cache between two builds): it is not read, and every staged
 * offer counts as 0 %, as an unlisted one does. Its percents may be ones since lowered or paused, so it
 * never pushes a device into a rollout, and the device is not stopped either. */
extern const rr_doc rr_stale_rollouts;

/* From `.../candidates.json` (a version the registry does not know): the rules of relreg's update
 * module, in one pass over the candidates. Reads only per-candidate data and the channel's
 * must_pass_through list; unknown fields are ignored. */
rr_status rr_decide_candidates(const rr_doc *doc, const rr_identity *device, const rr_crypto *crypto,
                               rr_decision *out);

/* ---- detached signatures (<document>.sig) -------------------------------------------- */

typedef struct {
    const char *keyid;      /* 64 lowercase hex digits, as in api/v1/keys.json and keys.yaml */
    uint8_t public_key[32]; /* Ed25519 */
} rr_trusted_key;

/* `now` for a device without a clock: the expiry is not checked (see docs/devices.md: pass the
 * newest time the device knows instead, e.g. its firmware's build time, when it has one). */
#define RR_NO_CLOCK INT64_MIN

typedef struct {
    int64_t version; /* persist it: pass it as min_version next time (rollback protection) */
    int64_t expires;
    int64_t length;
    uint8_t sha256[32];
    unsigned keys_verified;
} rr_verified;

/* Check a .sig file: a signature by `threshold` distinct pinned keys over the exact signed bytes,
 * then the signed fields: type, path (NULL: not checked), expiry against `now`, version >= min_version.
 * The tokens are only used during the call (at least 16 for a .sig with a few signatures). */
rr_status rr_verify_signature(const char *sig, size_t sig_len, jsmntok_t *tokens, unsigned num_tokens,
                              const rr_trusted_key *keys, size_t num_keys, unsigned threshold, const char *path,
                              int64_t now, int64_t min_version, const rr_crypto *crypto, rr_verified *out);

/* Then: the document's length and sha256 against the verified signature. */
rr_status rr_verified_check(const rr_verified *verified, const uint8_t *document, size_t len,
                            const rr_crypto *crypto);

/* ---- images --------------------------------------------------------------------------- */

typedef struct {
    const rr_crypto *crypto;
    rr_sha256_ctx sha;
    uint64_t expected_size;
    uint64_t received;
    uint8_t expected_sha256[32];
    uint8_t digest[32]; /* after rr_image_finish with the right size: the sha256 received */
    int failed;
} rr_image;

rr_status rr_image_begin(rr_image *image, const rr_crypto *crypto, uint64_t file_size, const uint8_t sha256[32]);
/* RR_ERR_IMAGE_TOO_LARGE as soon as more than file_size bytes arrived: stop writing. */
rr_status rr_image_update(rr_image *image, const void *chunk, size_t len);
/* The verdict: RR_OK only for exactly file_size bytes with the published sha256. */
rr_status rr_image_finish(rr_image *image);

/* Hex helpers. */
rr_status rr_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t out_len);

#ifdef __cplusplus
}
#endif

#endif /* RELREG_CLIENT_H */
