/* Unit tests of relreg_client (built with ASan+UBSan): test vectors, every signature refusal, images,
 * the rules on small hand-written channels, and the device's fixed token budget. The differential tests
 * (tests/test_c_*.py) compare the library with the Python reference on generated registries. */
#include "../relreg_client.h"
#include "../relreg_crypto_sodium.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks;

#define CHECK(cond)                                                                                              \
    do {                                                                                                         \
        checks++;                                                                                                \
        if (!(cond)) {                                                                                           \
            failures++;                                                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                            \
        }                                                                                                        \
    } while (0)

#define CHECK_STATUS(expr, expected)                                                                             \
    do {                                                                                                         \
        rr_status got_ = (expr);                                                                                 \
        checks++;                                                                                                \
        if (got_ != (expected)) {                                                                                \
            failures++;                                                                                          \
            fprintf(stderr, "%s:%d: %s: got %s, expected %s\n", __FILE__, __LINE__, #expr, rr_status_name(got_), \
                    rr_status_name(expected));                                                                   \
        }                                                                                                        \
    } while (0)

static const rr_crypto *C = &rr_crypto_sodium;

static void test_bucket_vectors(void)
{
    /* docs/devices.md */
    CHECK(rr_bucket(C, "AT100-000123", "beta", "2.1.1", 5) == 7594);
    CHECK(rr_bucket(C, "AT100-000123", "production", "2.1.0", 5) == 4201);
    CHECK(rr_bucket(C, "SN-1", "stable", "1.2.0", 5) == 9377);
}

static int cmp(rr_scheme scheme, const char *a, const char *b)
{
    int order = 99;
    if (rr_version_compare(scheme, a, strlen(a), b, strlen(b), &order) != RR_OK)
        return 99;
    return order;
}

static void test_versions(void)
{
    rr_scheme S = RR_SCHEME_SEMVER, N = RR_SCHEME_NATURAL;
    CHECK(cmp(S, "1.0.0", "1.0.1") == -1);
    CHECK(cmp(S, "1.10.0", "1.9.0") == 1);
    CHECK(cmp(S, "2.0.0-rc.1", "2.0.0") == -1);
    CHECK(cmp(S, "2.0.0-rc.2", "2.0.0-rc.10") == -1);
    CHECK(cmp(S, "2.0.0-alpha", "2.0.0-alpha.1") == -1);
    CHECK(cmp(S, "2.0.0-1", "2.0.0-alpha") == -1);
    CHECK(cmp(S, "2.0.0-beta", "2.0.0-alpha.5") == 1);
    CHECK(cmp(S, "2.0.0+local", "2.0.0") == 0);
    CHECK(cmp(S, "10000000000000000000000.0.0", "9.0.0") == 1);
    CHECK(cmp(S, "01.0.0", "1.0.0") == 99);
    CHECK(cmp(S, "1.0", "1.0.0") == 99);
    CHECK(cmp(S, "1.0.0-01", "1.0.0") == 99);
    CHECK(cmp(S, "1.0.0-", "1.0.0") == 99);
    CHECK(cmp(S, "1.0.0+", "1.0.0") == 99);
    CHECK(cmp(S, "1.0.0-a..b", "1.0.0") == 99);
    CHECK(cmp(N, "1.2", "1.2.0") == 0);
    CHECK(cmp(N, "1.02", "1.2") == 0);
    CHECK(cmp(N, "1.2.0rc1", "1.2") == -1);
    CHECK(cmp(N, "1.2.0rc2", "1.2.0rc10") == -1);
    CHECK(cmp(N, "1.2.0-RC1", "1.2.0rc1") == 0);
    CHECK(cmp(N, "11.0.0.6", "11.0.0.10") == -1);
    CHECK(cmp(N, "2022.01.3", "2022.1.10") == -1);
    CHECK(cmp(N, "0.0", "0") == 0);
    CHECK(cmp(N, "1.2.", "1.2") == 99);
    CHECK(cmp(N, "1.2-", "1.2") == 99);
    CHECK(cmp(N, "v1", "1") == 99);
    CHECK(cmp(N, "1.2.rc1", "1.2rc1") == 0);
    CHECK_STATUS(rr_version_check((rr_scheme)7, "1", 1), RR_ERR_UNKNOWN_SCHEME);
}

/* ---- signatures ---------------------------------------------------------------------------- */

typedef struct {
    unsigned char pk[32], sk[64];
    char keyid[65];
} key;

static void make_key(key *k, int seed_byte)
{
    unsigned char seed[32];
    memset(seed, seed_byte, 32);
    crypto_sign_seed_keypair(k->pk, k->sk, seed);
    unsigned char digest[32];
    crypto_hash_sha256(digest, k->pk, 32);
    for (int i = 0; i < 32; i++)
        sprintf(k->keyid + 2 * i, "%02x", digest[i]);
}

static void hex(char *out, const unsigned char *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", bytes[i]);
}

/* A .sig file in relreg's format, signed by `signers` (NULL-terminated). */
static size_t make_sig(char *out, size_t cap, const char *path, const char *doc, long long version,
                       long long expires, const key *const *signers, const char *type)
{
    char signed_part[1024], digest_hex[65];
    unsigned char digest[32];
    crypto_hash_sha256(digest, (const unsigned char *)doc, strlen(doc));
    hex(digest_hex, digest, 32);
    snprintf(signed_part, sizeof signed_part,
             "{\"_type\":\"%s\",\"expires\":%lld,\"length\":%zu,\"path\":\"%s\",\"sha256\":\"%s\","
             "\"spec_version\":1,\"version\":%lld}",
             type, expires, strlen(doc), path, digest_hex, version);
    size_t n = (size_t)snprintf(out, cap, "{\"signatures\":[");
    for (int i = 0; signers[i]; i++) {
        unsigned char sig[64];
        char sig_hex[129];
        crypto_sign_detached(sig, NULL, (const unsigned char *)signed_part, strlen(signed_part), signers[i]->sk);
        hex(sig_hex, sig, 64);
        n += (size_t)snprintf(out + n, cap - n, "%s{\"keyid\":\"%s\",\"sig\":\"%s\"}", i ? "," : "",
                              signers[i]->keyid, sig_hex);
    }
    n += (size_t)snprintf(out + n, cap - n, "],\"signed\":%s}\n", signed_part);
    return n;
}

static rr_status verify(const char *sig, const rr_trusted_key *keys, size_t nkeys, unsigned threshold,
                        const char *path, long long now, long long min_version, rr_verified *v)
{
    jsmntok_t tokens[32];
    return rr_verify_signature(sig, strlen(sig), tokens, 32, keys, nkeys, threshold, path, now, min_version, C, v);
}

static void test_signatures(void)
{
    key ci, second, attacker;
    make_key(&ci, 1);
    make_key(&second, 2);
    make_key(&attacker, 3);
    rr_trusted_key pinned[2];
    pinned[0].keyid = ci.keyid;
    memcpy(pinned[0].public_key, ci.pk, 32);
    pinned[1].keyid = second.keyid;
    memcpy(pinned[1].public_key, second.pk, 32);
    const char *doc = "{\"data\":{}}";
    const char *path = "api/v1/devices/beta/pvt/_/from/1.0.0.json";
    const key *by_ci[] = {&ci, NULL}, *by_both[] = {&ci, &second, NULL}, *by_attacker[] = {&attacker, NULL};
    char sig[2048];
    rr_verified v;

    make_sig(sig, sizeof sig, path, doc, 7, 2000, by_ci, "relreg-document");
    CHECK_STATUS(verify(sig, pinned, 1, 1, path, 1000, 7, &v), RR_OK);
    CHECK(v.version == 7 && v.expires == 2000 && v.length == (int64_t)strlen(doc) && v.keys_verified == 1);
    CHECK_STATUS(rr_verified_check(&v, (const uint8_t *)doc, strlen(doc), C), RR_OK);
    CHECK_STATUS(rr_verified_check(&v, (const uint8_t *)"{\"data\":[]}", strlen(doc), C), RR_ERR_DIGEST_MISMATCH);
    CHECK_STATUS(rr_verified_check(&v, (const uint8_t *)doc, strlen(doc) - 1, C), RR_ERR_DIGEST_MISMATCH);
    /* the clock: expiry is exclusive; no clock skips it; the version is the rollback guard */
    CHECK_STATUS(verify(sig, pinned, 1, 1, path, 2000, 0, &v), RR_ERR_EXPIRED);
    CHECK_STATUS(verify(sig, pinned, 1, 1, path, 1999, 0, &v), RR_OK);
    CHECK_STATUS(verify(sig, pinned, 1, 1, path, RR_NO_CLOCK, 0, &v), RR_OK);
    CHECK_STATUS(verify(sig, pinned, 1, 1, path, RR_NO_CLOCK, 8, &v), RR_ERR_ROLLBACK);
    CHECK_STATUS(verify(sig, pinned, 1, 1, "api/v1/index.json", 1000, 0, &v), RR_ERR_WRONG_PATH);
    CHECK_STATUS(verify(sig, pinned, 1, 1, NULL, 1000, 0, &v), RR_OK);
    CHECK_STATUS(verify(sig, pinned + 1, 1, 1, path, 1000, 0, &v), RR_ERR_UNKNOWN_KEY);
    CHECK_STATUS(verify(sig, pinned, 2, 2, path, 1000, 0, &v), RR_ERR_THRESHOLD_NOT_MET);
    /* a trailing newline is optional; anything else after the object is not */
    sig[strlen(sig) - 1] = 0;
    CHECK_STATUS(verify(sig, pinned, 1, 1, path, 1000, 0, &v), RR_OK);
    strcat(sig, " ");
    CHECK_STATUS(verify(sig, pinned, 1, 1, path, 1000, 0, &v), RR_ERR_MALFORMED_SIGNATURE);

    make_sig(sig, sizeof sig, path, doc, 7, 2000, by_both, "relreg-document");
    CHECK_STATUS(verify(sig, pinned, 2, 2, path, 1000, 0, &v), RR_OK);
    CHECK(v.keys_verified == 2);

    /* tampered signed fields: the signature no longer matches */
    make_sig(sig, sizeof sig, path, doc, 7, 2000, by_ci, "relreg-document");
    char *version = strstr(sig, "\"version\":7");
    version[10] = '9';
    CHECK_STATUS(verify(sig, pinned, 1, 1, path, 1000, 0, &v), RR_ERR_BAD_SIGNATURE);
    /* the attacker's signature under the pinned key id */
    make_sig(sig, sizeof sig, path, doc, 7, 2000, by_attacker, "relreg-document");
    char *id = strstr(sig, attacker.keyid);
    memcpy(id, ci.keyid, 64);
    CHECK_STATUS(verify(sig, pinned, 1, 1, path, 1000, 0, &v), RR_ERR_BAD_SIGNATURE);
    /* a signature that is not 128 lowercase hex digits is bad, not malformed (as the reference) */
    make_sig(sig, sizeof sig, path, doc, 7, 2000, by_ci, "relreg-document");
    char *s = strstr(sig, "\"sig\":\"") + 7;
    s[0] = (char)(s[0] == 'a' ? 'A' : (s[0] >= '0' && s[0] <= '9') ? 'A' : 'B');
    CHECK_STATUS(verify(sig, pinned, 1, 1, path, 1000, 0, &v), RR_ERR_BAD_SIGNATURE);
    make_sig(sig, sizeof sig, path, doc, 7, 2000, by_ci, "tuf-targets");
    CHECK_STATUS(verify(sig, pinned, 1, 1, path, 1000, 0, &v), RR_ERR_WRONG_TYPE);
    CHECK_STATUS(verify("{\"signatures\":{},\"signed\":{}}", pinned, 1, 1, path, 1000, 0, &v),
                 RR_ERR_MALFORMED_SIGNATURE);
    CHECK_STATUS(verify("{\"signatures\":[{\"keyid\":1,\"sig\":\"\"}],\"signed\":{}}", pinned, 1, 1, path, 1000, 0, &v),
                 RR_ERR_MALFORMED_SIGNATURE);
    CHECK_STATUS(verify("{\"signed\":{}}", pinned, 1, 1, path, 1000, 0, &v), RR_ERR_MALFORMED_SIGNATURE);
    CHECK_STATUS(verify("{\"signatures\":[]}", pinned, 1, 1, path, 1000, 0, &v), RR_ERR_MALFORMED_SIGNATURE);
    CHECK_STATUS(verify("{\"signatures\":[],\"signed\":{}}", pinned, 1, 1, path, 1000, 0, &v), RR_ERR_UNKNOWN_KEY);
    /* the token budget of the caller */
    jsmntok_t few[4];
    make_sig(sig, sizeof sig, path, doc, 7, 2000, by_ci, "relreg-document");
    CHECK_STATUS(rr_verify_signature(sig, strlen(sig), few, 4, pinned, 1, 1, path, 1000, 0, C, &v),
                 RR_ERR_TOO_MANY_TOKENS);
}

static void test_images(void)
{
    const char *image = "firmware bytes";
    uint8_t digest[32];
    crypto_hash_sha256(digest, (const unsigned char *)image, strlen(image));
    rr_image im;
    rr_image_begin(&im, C, strlen(image), digest);
    CHECK_STATUS(rr_image_update(&im, image, 3), RR_OK);
    CHECK_STATUS(rr_image_update(&im, image + 3, strlen(image) - 3), RR_OK);
    CHECK_STATUS(rr_image_finish(&im), RR_OK);
    rr_image_begin(&im, C, strlen(image), digest);
    CHECK_STATUS(rr_image_update(&im, image, 5), RR_OK);
    CHECK_STATUS(rr_image_finish(&im), RR_ERR_SIZE_MISMATCH);
    rr_image_begin(&im, C, strlen(image), digest);
    CHECK_STATUS(rr_image_update(&im, image, strlen(image)), RR_OK);
    CHECK_STATUS(rr_image_update(&im, "x", 1), RR_ERR_IMAGE_TOO_LARGE);
    CHECK_STATUS(rr_image_finish(&im), RR_ERR_IMAGE_TOO_LARGE);
    rr_image_begin(&im, C, strlen(image), digest);
    CHECK_STATUS(rr_image_update(&im, "firmware bytez", strlen(image)), RR_OK);
    CHECK_STATUS(rr_image_finish(&im), RR_ERR_IMAGE_DIGEST_MISMATCH);
}

/* ---- decisions on small channels ----------------------------------------------------------- */

#define SHA "\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\""
#define ART(from) "{\"filename\":\"f\",\"url\":\"u\",\"file_size\":1," SHA ",\"delta_from\":" from "}"
#define CAND(v, min, threshold, arts)                                                                            \
    "{\"version\":\"" v "\",\"min_version\":\"" min "\",\"rollout_threshold\":" #threshold                      \
    ",\"future_field\":{\"x\":[1,2]},\"artifacts\":[" arts "]}"

static const char *channel(const char *barriers, const char *candidates, char *out, size_t cap)
{
    snprintf(out, cap,
             "{\"data\":{\"cohort\":\"c\",\"hardware_version\":\"hw\",\"software_type\":null,"
             "\"version_scheme\":\"semver\",\"must_pass_through\":[%s],\"candidates\":[%s]}}",
             barriers, candidates);
    return out;
}

static rr_status decide(const char *doc_text, const char *current, const char *serial, rr_decision *d)
{
    jsmntok_t tokens[256];
    rr_doc doc;
    rr_status status = rr_parse(&doc, doc_text, strlen(doc_text), tokens, 256);
    if (status != RR_OK)
        return status;
    rr_identity device = {"c", "hw", NULL, current, serial};
    return rr_decide_candidates(&doc, &device, C, d);
}

static int decided(const char *doc, const char *current, const char *expected_version, rr_reason reason)
{
    rr_decision d;
    if (decide(doc, current, "SN-1", &d) != RR_OK)
        return 0;
    if (!expected_version)
        return !d.update && d.reason == reason;
    return d.update && d.version.len == strlen(expected_version) &&
           !memcmp(d.version.ptr, expected_version, d.version.len) && d.reason == reason;
}

static void test_rules(void)
{
    char buf[4096];
    const char *doc;
    doc = channel("", CAND("1.0.0", "", 10000, ART("null")) "," CAND("2.0.0", "1.5.0", 10000, ART("null")), buf,
                  sizeof buf);
    CHECK(decided(doc, "0.9.0", "1.0.0", RR_REASON_MIN_VERSION)); /* a hop below the gate */
    CHECK(decided(doc, "1.0.0", NULL, RR_REASON_BLOCKED));
    CHECK(decided(doc, "1.5.0", "2.0.0", RR_REASON_LATEST));
    CHECK(decided(doc, "2.0.0", NULL, RR_REASON_LATEST));
    CHECK(decided(doc, "3.0.0", NULL, RR_REASON_LATEST)); /* never a downgrade */
    /* a barrier the cohort does not deploy holds devices below it */
    doc = channel("\"1.5.0\"", CAND("1.0.0", "", 10000, ART("null")) "," CAND("2.0.0", "", 10000, ART("null")), buf,
                  sizeof buf);
    CHECK(decided(doc, "0.9.0", "1.0.0", RR_REASON_MUST_PASS_THROUGH));
    CHECK(decided(doc, "1.0.0", NULL, RR_REASON_BLOCKED));
    CHECK(decided(doc, "1.5.0", "2.0.0", RR_REASON_LATEST));
    /* rollout 0 pauses; the previous release is offered */
    doc = channel("", CAND("1.0.0", "", 10000, ART("null")) "," CAND("2.0.0", "", 0, ART("null")), buf, sizeof buf);
    CHECK(decided(doc, "0.9.0", "1.0.0", RR_REASON_OUTSIDE_ROLLOUT));
    CHECK(decided(doc, "1.0.0", NULL, RR_REASON_OUTSIDE_ROLLOUT));
    /* deltas only from exactly the running version; a delta-only release is not installable otherwise */
    doc = channel("", CAND("2.0.0", "", 10000, ART("\"1.0.0\"")), buf, sizeof buf);
    rr_decision d;
    CHECK_STATUS(decide(doc, "1.0.0", "SN-1", &d), RR_OK);
    CHECK(d.update && d.is_delta && d.delta_from.len == 5);
    CHECK(decided(doc, "1.0.0+dev", NULL, RR_REASON_BLOCKED));
    /* malformed channels are refused whoever asks */
    doc = channel("", CAND("2.0.0", "", 10000, ART("null")) "," CAND("1.0.0", "", 10000, ART("null")), buf, sizeof buf);
    CHECK_STATUS(decide(doc, "0.1.0", "SN-1", &d), RR_ERR_MALFORMED);
    doc = channel("", CAND("2.0.0", "", 10000, ART("null") "," ART("null")), buf, sizeof buf);
    CHECK_STATUS(decide(doc, "0.1.0", "SN-1", &d), RR_ERR_MALFORMED);
    doc = channel("", CAND("2.0.0", "", 10000, ART("null")), buf, sizeof buf);
    CHECK_STATUS(decide(doc, "not-a-version", "SN-1", &d), RR_ERR_BAD_VERSION);
    /* bad JSON of several kinds */
    CHECK_STATUS(decide("{\"data\":{}", "1.0.0", "S", &d), RR_ERR_BAD_JSON);
    CHECK_STATUS(decide("{\"data\":{},}", "1.0.0", "S", &d), RR_ERR_BAD_JSON);
    CHECK_STATUS(decide("{\"data\" {}}", "1.0.0", "S", &d), RR_ERR_BAD_JSON);
    CHECK_STATUS(decide("{\"data\":[1 2]}", "1.0.0", "S", &d), RR_ERR_BAD_JSON);
    CHECK_STATUS(decide("{\"data\":tru}", "1.0.0", "S", &d), RR_ERR_BAD_JSON);
    CHECK_STATUS(decide("{\"data\":01}", "1.0.0", "S", &d), RR_ERR_BAD_JSON);
    CHECK_STATUS(decide("{\"data\":\"\x01\"}", "1.0.0", "S", &d), RR_ERR_BAD_JSON);
    CHECK_STATUS(decide("{\"data\":\"\xff\"}", "1.0.0", "S", &d), RR_ERR_BAD_JSON);
    CHECK_STATUS(decide("{} {}", "1.0.0", "S", &d), RR_ERR_BAD_JSON);
    CHECK_STATUS(decide("[]", "1.0.0", "S", &d), RR_ERR_BAD_JSON);
    CHECK_STATUS(decide("{\"data\":[]}", "1.0.0", "S", &d), RR_ERR_NOT_RELREG);
    /* the wrong channel */
    jsmntok_t tokens[256];
    rr_doc parsed;
    doc = channel("", "", buf, sizeof buf);
    rr_parse(&parsed, doc, strlen(doc), tokens, 256);
    rr_identity other = {"c", "hw", "main", "1.0.0", "S"};
    CHECK_STATUS(rr_decide_candidates(&parsed, &other, C, &d), RR_ERR_WRONG_CHANNEL);
    /* the token budget */
    doc = channel("", CAND("1.0.0", "", 10000, ART("null")) "," CAND("2.0.0", "", 10000, ART("null")), buf, sizeof buf);
    CHECK_STATUS(rr_parse(&parsed, doc, strlen(doc), tokens, 16), RR_ERR_TOO_MANY_TOKENS);
    /* escapes are read as JSON */
    const char *escaped = "{\"data\":{\"c\\u006fhort\":\"\\u0063\",\"hardware_version\":\"hw\",\"software_type\":null,"
                          "\"version_scheme\":\"semver\",\"must_pass_through\":[],\"candidates\":[]}}";
    CHECK(decided(escaped, "1.0.0", NULL, RR_REASON_LATEST));
    char out[8];
    rr_parse(&parsed, "{\"k\":\"a\\u00e9\\ud83d\\ude00\"}", strlen("{\"k\":\"a\\u00e9\\ud83d\\ude00\"}"), tokens, 256);
    CHECK_STATUS(rr_string_copy(&parsed, 2, out, sizeof out), RR_OK);
    CHECK(!strcmp(out, "a\xc3\xa9\xf0\x9f\x98\x80"));
    CHECK_STATUS(rr_string_copy(&parsed, 2, out, 4), RR_ERR_BUFFER_TOO_SMALL);
}

static void test_answer(void)
{
    const char *doc = "{\"data\":{\"cohort\":\"c\",\"hardware_version\":\"hw\",\"software_type\":\"main\","
                      "\"version_scheme\":\"semver\",\"current_version\":\"1.0.0\","
                      "\"offers\":[{\"staged\":true,\"release\":{\"version\":\"3.0.0\",\"artifacts\":[" ART("null") "]}},{\"staged\":false,\"release\":"
                      "{\"version\":\"2.0.0\",\"artifacts\":[" ART("\"1.0.0\"") "]}}],\"up_to_date\":null}}";
    static char buffer[4096]; /* the answer, then the rollouts document in the rest of the same buffer */
    jsmntok_t tokens[256];
    rr_doc parsed, rollouts;
    rr_decision d;
    size_t len = strlen(doc);
    memcpy(buffer, doc, len);
    CHECK_STATUS(rr_parse(&parsed, buffer, len, tokens, 256), RR_OK);
    rr_identity device = {"c", "hw", "main", "1.0.0", "SN-1"};
    CHECK_STATUS(rr_decide_answer(&parsed, NULL, &device, C, &d), RR_NEED_ROLLOUTS);
    /* (rollouts document, what SN-1 gets): the staged 3.0.0 at 0.01 %, at 100 %, unlisted, paused */
    static const struct { const char *rollouts; const char *version; int delta; } cases[] = {
        {"[{\"version\":\"3.0.0\",\"rollout_percent\":0.01,\"rollout_threshold\":1}]", "2.0.0", 1},
        {"[{\"version\":\"3.0.0\",\"rollout_percent\":100,\"rollout_threshold\":10000}]", "3.0.0", 0},
        {"[{\"version\":\"2.9.0\",\"rollout_percent\":100,\"rollout_threshold\":10000}]", "2.0.0", 1},
        {"[{\"version\":\"3.0.0\",\"rollout_percent\":0,\"rollout_threshold\":0}]", "2.0.0", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int n = snprintf(buffer + len, sizeof buffer - len, "{\"data\":{\"cohort\":\"c\",\"hardware_version\":\"hw\","
                         "\"software_type\":\"main\",\"rollouts\":%s}}", cases[i].rollouts);
        CHECK_STATUS(rr_parse(&rollouts, buffer + len, (size_t)n, tokens + parsed.count,
                              256 - (unsigned)parsed.count), RR_OK);
        CHECK_STATUS(rr_decide_answer(&parsed, &rollouts, &device, C, &d), RR_OK);
        CHECK(d.update && d.is_delta == cases[i].delta && d.version.len == 5 &&
              !memcmp(d.version.ptr, cases[i].version, 5));
    }
    /* a rollouts document refused as rollback: the staged 3.0.0 at 0 % for everybody, 2.0.0 taken */
    static const char *const serials[] = {"SN-1", "SN-2", "SN-3", "AT100-000123", "x"};
    for (size_t i = 0; i < sizeof serials / sizeof *serials; i++) {
        rr_identity someone = {"c", "hw", "main", "1.0.0", serials[i]};
        CHECK_STATUS(rr_decide_answer(&parsed, &rr_stale_rollouts, &someone, C, &d), RR_OK);
        CHECK(d.update && d.is_delta && d.version.len == 5 && !memcmp(d.version.ptr, "2.0.0", 5));
    }
    int n = snprintf(buffer + len, sizeof buffer - len, "{\"data\":{\"cohort\":\"d\",\"hardware_version\":\"hw\","
                     "\"software_type\":\"main\",\"rollouts\":[]}}");
    CHECK_STATUS(rr_parse(&rollouts, buffer + len, (size_t)n, tokens + parsed.count, 256 - (unsigned)parsed.count),
                 RR_OK);
    CHECK_STATUS(rr_decide_answer(&parsed, &rollouts, &device, C, &d), RR_ERR_WRONG_CHANNEL);
    n = snprintf(buffer + len, sizeof buffer - len, "{\"data\":{\"cohort\":\"c\",\"hardware_version\":\"hw\","
                 "\"software_type\":\"main\",\"rollouts\":[{\"version\":\"3.0.0\"}]}}");
    CHECK_STATUS(rr_parse(&rollouts, buffer + len, (size_t)n, tokens + parsed.count, 256 - (unsigned)parsed.count),
                 RR_OK);
    CHECK_STATUS(rr_decide_answer(&parsed, &rollouts, &device, C, &d), RR_ERR_MALFORMED);
    rr_identity wrong = {"c", "hw", "main", "1.0.1", "SN-1"};
    CHECK_STATUS(rr_decide_answer(&parsed, NULL, &wrong, C, &d), RR_ERR_WRONG_VERSION);
    rr_identity other = {"c", "hw", NULL, "1.0.0", "SN-1"};
    CHECK_STATUS(rr_decide_answer(&parsed, NULL, &other, C, &d), RR_ERR_WRONG_CHANNEL);
    /* an answer without staged offers is decided alone */
    const char *full = "{\"data\":{\"cohort\":\"c\",\"hardware_version\":\"hw\",\"software_type\":\"main\","
                       "\"version_scheme\":\"semver\",\"current_version\":\"1.0.0\",\"offers\":[{\"staged\":false,"
                       "\"release\":{\"version\":\"2.0.0\",\"artifacts\":[" ART("null") "]}}],\"up_to_date\":null}}";
    CHECK_STATUS(rr_parse(&parsed, full, strlen(full), tokens, 256), RR_OK);
    CHECK_STATUS(rr_decide_answer(&parsed, NULL, &device, C, &d), RR_OK);
    CHECK(d.update && !d.is_delta);
    /* (scheme, the offers' versions, the device's version, status, the offer it names): every offer must be
     * above the device's version in the answer's scheme; relreg never offers a downgrade or a reinstall */
    static const struct { const char *scheme; const char *first; const char *second; const char *current;
                          rr_status status; const char *named; } gates[] = {
        {"\"semver\"", "2.0.0", "1.5.0", "1.0.0", RR_OK, NULL},
        {"\"semver\"", "2.0.0", "1.0.0", "1.0.0", RR_ERR_DOWNGRADE, "1.0.0"},      /* a reinstall */
        {"\"semver\"", "2.0.0", "0.9.0", "1.0.0", RR_ERR_DOWNGRADE, "0.9.0"},      /* a downgrade, second offer */
        {"\"semver\"", "1.0.0", "0.9.0", "2.0.1", RR_ERR_DOWNGRADE, "1.0.0"},      /* the trial's tampered answer */
        {"\"semver\"", "2.0.0", "1.0.0+b7", "1.0.0", RR_ERR_DOWNGRADE, "1.0.0+b7"}, /* build metadata: the same */
        {"\"semver\"", "2.0.0", "1.0.1-rc.1", "1.0.0", RR_OK, NULL},
        {"\"semver\"", "2.0.0", "1.0.0-rc.1", "1.0.0", RR_ERR_DOWNGRADE, "1.0.0-rc.1"}, /* a prerelease sorts below */
        {"\"natural\"", "1.10", "1.9", "1.2", RR_OK, NULL},
        {"\"natural\"", "1.10", "1.9", "1.10.0", RR_ERR_DOWNGRADE, "1.10"},
        {"\"semver\"", "2.0.0", "x", "1.0.0", RR_ERR_MALFORMED, NULL},             /* not a version */
        {"\"calver\"", "2.0.0", "1.5.0", "1.0.0", RR_ERR_UNKNOWN_SCHEME, NULL},
        {"null", "2.0.0", "1.5.0", "1.0.0", RR_ERR_MALFORMED, NULL},                 /* no scheme */
    };
    for (size_t i = 0; i < sizeof gates / sizeof *gates; i++) {
        int m = snprintf(buffer, sizeof buffer, "{\"data\":{\"cohort\":\"c\",\"hardware_version\":\"hw\","
                         "\"software_type\":\"main\",\"version_scheme\":%s,\"current_version\":\"%s\",\"offers\":["
                         "{\"staged\":false,\"release\":{\"version\":\"%s\",\"artifacts\":[" ART("null") "]}},"
                         "{\"staged\":false,\"release\":{\"version\":\"%s\",\"artifacts\":[" ART("null") "]}}],"
                         "\"up_to_date\":null}}", gates[i].scheme, gates[i].current, gates[i].first, gates[i].second);
        rr_identity on = {"c", "hw", "main", gates[i].current, "SN-1"};
        CHECK_STATUS(rr_parse(&parsed, buffer, (size_t)m, tokens, 256), RR_OK);
        CHECK_STATUS(rr_decide_answer(&parsed, NULL, &on, C, &d), gates[i].status);
        if (gates[i].named)
            CHECK(d.release > 0 && d.version.len == strlen(gates[i].named) &&
                  !memcmp(d.version.ptr, gates[i].named, d.version.len));
    }
}

static void test_names(void)
{
    for (int s = 0; s < RR_STATUS_COUNT; s++)
        for (int t = s + 1; t < RR_STATUS_COUNT; t++)
            CHECK(strcmp(rr_status_name((rr_status)s), rr_status_name((rr_status)t)) != 0);
    CHECK(!strcmp(rr_status_name(RR_ERR_ROLLBACK), "rollback"));
    CHECK(!strcmp(rr_status_name(RR_STATUS_COUNT), "unknown-status"));
}

int main(void)
{
    if (rr_crypto_sodium_init() != 0)
        return 2;
    test_bucket_vectors();
    test_versions();
    test_signatures();
    test_images();
    test_rules();
    test_answer();
    test_names();
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
