/*
 * relreg-device-c: `relreg device check` in C, over the relreg_client library.
 *
 * A host program (it allocates, reads files, speaks HTTP through libcurl); the library it drives
 * does neither. It prints the same JSON as the Python command, byte for byte, and the same
 * messages for the errors a device meets (unknown channel, invalid version, refused signature),
 * so the two can be compared.
 *
 *   relreg-device-c --site URL|DIR --cohort C --hardware-version H [--software-type S]
 *                   --current-version V --serial N [--download DIR] [--exit-code]
 *                   [--timeout SECONDS] [--trust KEYID=PUBLIC]... [--min-signed-version N]
 *   relreg-device-c --site DIR --batch < queries
 *
 * --batch reads one device per line, "cohort<TAB>hardware<TAB>software type or _<TAB>version<TAB>serial",
 * and prints for each what the command would print (the JSON, or "Error: message"), then a line "%%".
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* mkstemps */
#include "../relreg_client.h"
#include "../relreg_crypto_sodium.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_UPDATE_AVAILABLE 10

/* ---- growable text ----------------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static void buf_add(buffer *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            fputs("out of memory\n", stderr);
            exit(1);
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
}

static void buf_str(buffer *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_fmt(buffer *b, const char *format, ...)
{
    char small[1024];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(small, sizeof small, format, args);
    va_end(args);
    if (n < (int)sizeof small) {
        buf_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    va_start(args, format);
    vsnprintf(big, (size_t)n + 1, format, args);
    va_end(args);
    buf_add(b, big, (size_t)n);
    free(big);
}

static void buf_free(buffer *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- errors: what `click.ClickException` prints ------------------------------------------ */

typedef struct {
    int failed;
    buffer message;
    rr_status refused; /* the signature's verdict when a document was refused, else RR_OK */
} error;

static void fail(error *e, const char *format, ...)
{
    char text[4096];
    va_list args;
    va_start(args, format);
    vsnprintf(text, sizeof text, format, args);
    va_end(args);
    e->failed = 1;
    e->message.len = 0;
    buf_str(&e->message, text);
}

/* ---- JSON output as Python's json.dumps(indent=2, ensure_ascii=False) -------------------- */

static void put_escaped_bytes(buffer *out, const char *s, size_t len)
{
    buf_add(out, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': buf_str(out, "\\\""); break;
        case '\\': buf_str(out, "\\\\"); break;
        case '\n': buf_str(out, "\\n"); break;
        case '\r': buf_str(out, "\\r"); break;
        case '\t': buf_str(out, "\\t"); break;
        case '\b': buf_str(out, "\\b"); break;
        case '\f': buf_str(out, "\\f"); break;
        default:
            if (c < 0x20)
                buf_fmt(out, "\\u%04x", c);
            else
                buf_add(out, &s[i], 1);
        }
    }
    buf_add(out, "\"", 1);
}

static void put_string_token(buffer *out, const rr_doc *doc, int token)
{
    rr_str raw = rr_raw(doc, token);
    char *text = malloc(raw.len * 3 + 8);
    if (rr_string_copy(doc, token, text, raw.len * 3 + 8) != RR_OK) {
        free(text);
        put_escaped_bytes(out, raw.ptr, raw.len);
        return;
    }
    put_escaped_bytes(out, text, strlen(text));
    free(text);
}

static void indent(buffer *out, int level)
{
    buf_add(out, "\n", 1);
    for (int i = 0; i < level; i++)
        buf_add(out, "  ", 2);
}

/* Python prints integers in their shortest form ("-0" is 0) and floats as repr. */
static void put_primitive(buffer *out, rr_str raw)
{
    if (raw.len == 2 && !memcmp(raw.ptr, "-0", 2)) {
        buf_str(out, "0");
        return;
    }
    int is_float = 0;
    for (size_t i = 0; i < raw.len && (raw.ptr[0] == '-' || (raw.ptr[0] >= '0' && raw.ptr[0] <= '9')); i++)
        if (raw.ptr[i] == '.' || raw.ptr[i] == 'e' || raw.ptr[i] == 'E')
            is_float = 1;
    if (is_float) {
        char text[64];
        size_t n = raw.len < sizeof text - 1 ? raw.len : sizeof text - 1;
        memcpy(text, raw.ptr, n);
        text[n] = 0;
        double value = strtod(text, NULL);
        char shortest[64];
        for (int precision = 1; precision <= 17; precision++) { /* repr: the shortest that round-trips */
            snprintf(shortest, sizeof shortest, "%.*g", precision, value);
            if (strtod(shortest, NULL) == value)
                break;
        }
        if (!strchr(shortest, '.') && !strchr(shortest, 'e') && !strchr(shortest, 'n') && !strchr(shortest, 'i'))
            strcat(shortest, ".0");
        buf_str(out, shortest);
        return;
    }
    buf_add(out, raw.ptr, raw.len);
}

/* The subtree at `token`; returns the token after it. */
static int put_value(buffer *out, const rr_doc *doc, int token, int level)
{
    const jsmntok_t *t = &doc->tokens[token];
    if (t->type == JSMN_STRING) {
        put_string_token(out, doc, token);
        return token + 1;
    }
    if (t->type == JSMN_PRIMITIVE) {
        put_primitive(out, rr_raw(doc, token));
        return token + 1;
    }
    int object = t->type == JSMN_OBJECT;
    if (t->size == 0) {
        buf_str(out, object ? "{}" : "[]");
        return token + 1;
    }
    buf_str(out, object ? "{" : "[");
    int child = token + 1;
    for (int k = 0; k < t->size; k++) {
        if (k)
            buf_str(out, ",");
        indent(out, level + 1);
        if (object) {
            put_string_token(out, doc, child);
            buf_str(out, ": ");
            child++;
        }
        child = put_value(out, doc, child, level + 1);
    }
    indent(out, level);
    buf_str(out, object ? "}" : "]");
    return child;
}

/* ---- fetching: a site folder or HTTP(S) --------------------------------------------------- */

typedef struct {
    int http;
    char *root;     /* folder */
    char *base;     /* the site URL, ending in / */
    long timeout;
    CURL *curl;
    rr_trusted_key *keys;
    size_t num_keys;
    int64_t min_version;
} site;

typedef struct {
    long status; /* 200 or 404 */
    buffer body;
} fetched;

static size_t curl_sink(char *data, size_t size, size_t count, void *user)
{
    buf_add((buffer *)user, data, size * count);
    return size * count;
}

/* urllib.parse.unquote (for the byte values relreg's paths use) */
static void unquote(buffer *out, const char *s)
{
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '%' && isxdigit((unsigned char)s[i + 1]) && isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            char c = (char)strtol(hex, NULL, 16);
            buf_add(out, &c, 1);
            i += 2;
        } else {
            buf_add(out, &s[i], 1);
        }
    }
}

/* urllib.parse.quote: letters, digits, _.-~ and the `safe` characters stay */
static void quote(buffer *out, const char *s, const char *safe)
{
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_.-~", c) ||
            (c && strchr(safe, c)))
            buf_add(out, &s[i], 1);
        else
            buf_fmt(out, "%%%02X", c);
    }
}

/* The file of a site URL, or NULL (outside the site). Lexical: "." and ".." segments resolved. */
static char *file_of(const site *s, const char *url)
{
    size_t base_len = strlen(s->base);
    if (strncmp(url, s->base, base_len))
        return NULL;
    buffer relative = {0}, path = {0};
    unquote(&relative, url + base_len);
    buf_str(&path, s->root);
    size_t root_len = path.len;
    const char *p = relative.data ? relative.data : "";
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.')) {
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (path.len == root_len) {
                buf_free(&relative);
                buf_free(&path);
                return NULL;
            }
            while (path.len > root_len && path.data[path.len - 1] != '/')
                path.len--;
            path.len--;
            path.data[path.len] = 0;
        } else {
            buf_add(&path, "/", 1);
            buf_add(&path, p, n);
        }
        p += n + (slash ? 1 : 0);
    }
    buf_free(&relative);
    return path.data;
}

static int read_file(const char *path, buffer *out, int *missing)
{
    FILE *f = fopen(path, "rb");
    *missing = 0;
    if (!f) {
        *missing = errno == ENOENT;
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        errno = EISDIR;
        return -1;
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(out, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (!out->data)
        buf_add(out, "", 0);
    return bad ? -1 : 0;
}

static int http_get(site *s, const char *url, fetched *result, error *e)
{
    curl_easy_reset(s->curl);
    curl_easy_setopt(s->curl, CURLOPT_URL, url);
    curl_easy_setopt(s->curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT, s->timeout);
    curl_easy_setopt(s->curl, CURLOPT_USERAGENT, "relreg-device-c/1");
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, curl_sink);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &result->body);
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, headers);
    CURLcode code = curl_easy_perform(s->curl);
    curl_slist_free_all(headers);
    if (code != CURLE_OK) {
        fail(e, "GET %s: %s", url, curl_easy_strerror(code));
        return -1;
    }
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &result->status);
    if (result->status != 200 && result->status != 404) {
        fail(e, "GET %s: HTTP %ld", url, result->status);
        return -1;
    }
    if (!result->body.data)
        buf_add(&result->body, "", 0);
    return 0;
}

static int get(site *s, const char *url, fetched *result, error *e)
{
    memset(result, 0, sizeof *result);
    if (s->http)
        return http_get(s, url, result, e);
    char *path = file_of(s, url);
    if (!path) {
        fail(e, "%s is outside the site folder %s", url, s->root);
        return -1;
    }
    int missing;
    if (read_file(path, &result->body, &missing) != 0) {
        if (missing) {
            result->status = 404;
            buf_free(&result->body);
            buf_add(&result->body, "", 0);
            free(path);
            return 0;
        }
        fail(e, "%s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    free(path);
    result->status = 200;
    return 0;
}

/* ---- signatures: the reference client's _verified ------------------------------------------ */

static const char *detail_of(rr_status status)
{
    switch (status) {
    case RR_ERR_MALFORMED_SIGNATURE: return "not a well-formed relreg signature file";
    case RR_ERR_UNKNOWN_KEY: return "no signature by a trusted key";
    case RR_ERR_BAD_SIGNATURE: return "a signature by a trusted key does not match the signed content";
    case RR_ERR_THRESHOLD_NOT_MET: return "not enough trusted keys signed it";
    case RR_ERR_WRONG_TYPE: return "signed content is not a relreg-document";
    case RR_ERR_WRONG_PATH: return "the signature is for another document";
    case RR_ERR_EXPIRED: return "the signature expired";
    case RR_ERR_ROLLBACK: return "the signed version is older than the one accepted before";
    case RR_ERR_DIGEST_MISMATCH: return "the document's bytes are not the signed ones";
    default: return rr_status_name(status);
    }
}

/* Replace `body` with the verified bytes of the document at site path `path`, or fail. */
static int verified(site *s, const char *path, fetched *document, error *e)
{
    buffer url = {0}, sig_url = {0}, signed_path = {0};
    buf_str(&url, s->base);
    buf_str(&url, path);
    buf_str(&sig_url, url.data);
    buf_str(&sig_url, ".sig");
    unquote(&signed_path, path);
    fetched sig = {0};
    int result = -1;
    if (get(s, sig_url.data, &sig, e) != 0)
        goto done_sig;
    if (sig.status != 200) {
        fail(e, "%s: refused (missing-signature): GET %s: HTTP %ld", url.data, sig_url.data, sig.status);
        goto done_sig;
    }
    jsmntok_t tokens[256];
    rr_verified v;
    rr_status status = rr_verify_signature(sig.body.data, sig.body.len, tokens, 256, s->keys, s->num_keys, 1,
                                           signed_path.data, (int64_t)time(NULL), s->min_version,
                                           &rr_crypto_sodium, &v);
    if (status == RR_OK) {
        status = rr_verified_check(&v, (const uint8_t *)document->body.data, document->body.len, &rr_crypto_sodium);
        if (status == RR_ERR_DIGEST_MISMATCH) { /* a CDN edge between two builds: the copy named by its hash */
            buffer copy_path = {0}, copy_url = {0};
            const char *name = strrchr(signed_path.data, '/');
            buf_str(&copy_path, "tuf/targets/");
            if (name)
                buf_add(&copy_path, signed_path.data, (size_t)(name - signed_path.data) + 1);
            for (int i = 0; i < 32; i++)
                buf_fmt(&copy_path, "%02x", v.sha256[i]);
            buf_str(&copy_path, ".");
            buf_str(&copy_path, name ? name + 1 : signed_path.data);
            buf_str(&copy_url, s->base);
            quote(&copy_url, copy_path.data, "/");
            fetched copy = {0};
            if (get(s, copy_url.data, &copy, e) == 0) {
                if (copy.status != 200)
                    copy.body.len = 0;
                status = rr_verified_check(&v, (const uint8_t *)copy.body.data, copy.body.len, &rr_crypto_sodium);
                if (status == RR_OK) {
                    buf_free(&document->body);
                    document->body = copy.body;
                    copy.body.data = NULL;
                }
                buf_free(&copy.body);
            } else {
                buf_free(&copy.body);
                status = RR_ERR_DIGEST_MISMATCH;
            }
            buf_free(&copy_path);
            buf_free(&copy_url);
            if (e->failed && status != RR_OK) {
                e->failed = 0;
            }
        }
    }
    if (status != RR_OK) {
        fail(e, "%s: refused (%s): %s", url.data, rr_status_name(status), detail_of(status));
        e->refused = status;
        goto done_sig;
    }
    if (v.version > s->min_version)
        s->min_version = v.version;
    result = 0;
done_sig:
    buf_free(&sig.body);
    buf_free(&url);
    buf_free(&sig_url);
    buf_free(&signed_path);
    return result;
}

/* A site path's document: 1 found (tokens in *doc), 0 not found, -1 error. */
static int get_json(site *s, const char *path, fetched *document, rr_doc *doc, jsmntok_t **tokens, error *e)
{
    buffer url = {0};
    buf_str(&url, s->base);
    buf_str(&url, path);
    int result = -1;
    if (get(s, url.data, document, e) != 0)
        goto done;
    if (document->status == 404) {
        result = 0;
        goto done;
    }
    if (s->num_keys && verified(s, path, document, e) != 0)
        goto done;
    unsigned count = (unsigned)(document->body.len / 2 + 8);
    *tokens = realloc(*tokens, count * sizeof **tokens);
    rr_status status = rr_parse(doc, document->body.data, document->body.len, *tokens, count);
    if (status != RR_OK) {
        fail(e, "GET %s: not JSON (%s)", url.data, rr_status_name(status));
        goto done;
    }
    int data = rr_object_get(doc, 0, "data");
    if (data < 0 || doc->tokens[data].type != JSMN_OBJECT) {
        fail(e, "GET %s: not a relreg document (no data object)", url.data);
        goto done;
    }
    result = 1;
done:
    buf_free(&url);
    return result;
}

/* ---- the check ---------------------------------------------------------------------------- */

typedef struct {
    int update;
    buffer json; /* what is printed */
    /* the image, when update */
    char *url, *filename;
    uint64_t file_size;
    uint8_t sha256[32];
} outcome;

/* `^(?!.*\.\.)[0-9][0-9A-Za-z.+-]{0,63}$` */
static int path_safe_version(const char *v)
{
    size_t n = strlen(v);
    if (n < 1 || n > 64 || v[0] < '0' || v[0] > '9' || strstr(v, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '+' ||
              c == '-'))
            return 0;
    }
    return 1;
}

static void put_key(buffer *out, int level, const char *key, int first)
{
    if (!first)
        buf_str(out, ",");
    indent(out, level);
    put_escaped_bytes(out, key, strlen(key));
    buf_str(out, ": ");
}

static void put_up_to_date(buffer *out, const char *current, const char *reason)
{
    buf_str(out, "{");
    put_key(out, 1, "up_to_date", 1);
    buf_str(out, "true");
    put_key(out, 1, "current_version", 0);
    put_escaped_bytes(out, current, strlen(current));
    put_key(out, 1, "reason", 0);
    put_escaped_bytes(out, reason, strlen(reason));
    buf_str(out, "\n}");
}

static void put_field(buffer *out, const rr_doc *doc, int object, const char *key, int level, int first)
{
    put_key(out, level, key, first);
    put_value(out, doc, rr_object_get(doc, object, key), level);
}

/* The reference client's Offer.response(): the seed's device response, from a candidate. */
static void put_offer(buffer *out, const rr_doc *doc, const rr_decision *d)
{
    int c = d->release, a = d->artifact;
    buf_str(out, "{");
    put_field(out, doc, c, "id", 1, 1);
    put_field(out, doc, c, "version", 1, 0);
    put_field(out, doc, c, "revision", 1, 0);
    put_key(out, 1, "min_version", 0);
    int min = rr_object_get(doc, c, "min_version");
    if (doc->tokens[min].type == JSMN_STRING)
        put_string_token(out, doc, min);
    else
        buf_str(out, "\"\"");
    put_key(out, 1, "is_delta", 0);
    buf_str(out, d->is_delta ? "true" : "false");
    put_field(out, doc, c, "must_pass_through", 1, 0);
    put_key(out, 1, "reason", 0);
    put_escaped_bytes(out, rr_reason_name(d->reason), strlen(rr_reason_name(d->reason)));
    put_field(out, doc, c, "created_date", 1, 0);
    put_field(out, doc, c, "release_url", 1, 0);
    put_key(out, 1, "artifacts", 0);
    buf_str(out, "[");
    indent(out, 2);
    buf_str(out, "{");
    static const char *const fields[] = {"hardware_version", "software_type", "filename", "file_size",
                                         "build_id", "sha256", "url", "delta_from"};
    for (int i = 0; i < 8; i++)
        put_field(out, doc, a, fields[i], 3, i == 0);
    indent(out, 2);
    buf_str(out, "}");
    indent(out, 1);
    buf_str(out, "]\n}");
}

static int has_fields(const rr_doc *doc, int object, const char *const *keys, int n)
{
    for (int i = 0; i < n; i++)
        if (rr_object_get(doc, object, keys[i]) < 0)
            return 0;
    return 1;
}

static char *copy_string(const rr_doc *doc, int token)
{
    rr_str raw = rr_raw(doc, token);
    size_t cap = raw.len * 3 + 8;
    char *text = malloc(cap);
    if (rr_string_copy(doc, token, text, cap) != RR_OK)
        text[0] = 0;
    return text;
}

static void take_payload(outcome *o, const rr_doc *doc, const rr_decision *d)
{
    o->update = 1;
    o->url = copy_string(doc, rr_object_get(doc, d->artifact, "url"));
    o->filename = copy_string(doc, rr_object_get(doc, d->artifact, "filename"));
    o->file_size = d->file_size;
    memcpy(o->sha256, d->sha256, 32);
}

/* Python's repr of the (cohort, hardware version, software type) a document names. */
static void put_repr(buffer *out, const rr_doc *doc, int token)
{
    if (token < 0 || doc->tokens[token].type != JSMN_STRING) {
        rr_str raw = rr_raw(doc, token);
        if (token >= 0 && raw.len == 4 && !memcmp(raw.ptr, "null", 4))
            buf_str(out, "None");
        else if (token >= 0)
            buf_add(out, raw.ptr, raw.len);
        else
            buf_str(out, "None");
        return;
    }
    char *text = copy_string(doc, token);
    buf_fmt(out, "'%s'", text);
    free(text);
}

static void identity_error(error *e, const rr_doc *doc, const rr_identity *device, const char *what)
{
    int data = rr_object_get(doc, 0, "data");
    buffer found = {0};
    buf_str(&found, "(");
    put_repr(&found, doc, rr_object_get(doc, data, "cohort"));
    buf_str(&found, ", ");
    put_repr(&found, doc, rr_object_get(doc, data, "hardware_version"));
    buf_str(&found, ", ");
    put_repr(&found, doc, rr_object_get(doc, data, "software_type"));
    buf_str(&found, ")");
    if (device->software_type)
        fail(e, "the %s document is for %s, not ('%s', '%s', '%s')", what, found.data, device->cohort,
             device->hardware_version, device->software_type);
    else
        fail(e, "the %s document is for %s, not ('%s', '%s', None)", what, found.data, device->cohort,
             device->hardware_version);
    buf_free(&found);
}

/* The answer's decision; when it has staged offers, with the channel's rollouts document (a second GET). */
static int from_answer(site *s, const char *folder, const rr_doc *doc, const rr_identity *device, outcome *o,
                       error *e)
{
    rr_decision d;
    rr_status status = rr_decide_answer(doc, NULL, device, &rr_crypto_sodium, &d);
    if (status == RR_NEED_ROLLOUTS) {
        buffer path = {0};
        fetched document = {0};
        jsmntok_t *tokens = NULL;
        rr_doc rollouts;
        buf_fmt(&path, "%s/rollouts.json", folder);
        e->refused = RR_OK;
        int found = get_json(s, path.data, &document, &rollouts, &tokens, e);
        if (found == -1 && e->refused == RR_ERR_ROLLBACK) {
            /* older than a document accepted before (a cache between two builds): not read, every
             * staged offer counts as 0 %, as the reference client does */
            e->failed = 0;
            status = rr_decide_answer(doc, &rr_stale_rollouts, device, &rr_crypto_sodium, &d);
            found = 1;
        } else if (found == 0) {
            fail(e, "the site has an answer with staged offers but no rollouts document for this channel");
        } else if (found == 1) {
            status = rr_decide_answer(doc, &rollouts, device, &rr_crypto_sodium, &d);
            if (status == RR_ERR_WRONG_CHANNEL)
                identity_error(e, &rollouts, device, "rollouts");
        }
        buf_free(&path);
        buf_free(&document.body);
        free(tokens);
        if (found != 1 || status == RR_ERR_WRONG_CHANNEL)
            return -1;
        if (status != RR_OK) {
            fail(e, "malformed answer or rollouts document (%s)", rr_status_name(status));
            return -1;
        }
    }
    if (status == RR_ERR_WRONG_CHANNEL) {
        identity_error(e, doc, device, "answer");
        return -1;
    }
    if (status == RR_ERR_DOWNGRADE) {
        char *text = copy_string(doc, rr_object_get(doc, d.release, "version"));
        fail(e, "the answer offers version %s, which is not above the current version %s: refused (downgrade-offer)",
             text ? text : "None", device->current_version);
        free(text);
        return -1;
    }
    if (status == RR_ERR_WRONG_VERSION) {
        int data = rr_object_get(doc, 0, "data");
        int found = rr_object_get(doc, data, "current_version");
        char *text = found >= 0 && doc->tokens[found].type == JSMN_STRING ? copy_string(doc, found) : NULL;
        fail(e, "the answer is for version %s, not %s", text ? text : "None", device->current_version);
        free(text);
        return -1;
    }
    if (status != RR_OK) {
        fail(e, "malformed answer document (%s)", rr_status_name(status));
        return -1;
    }
    if (d.update) {
        put_value(&o->json, doc, d.release, 0);
        take_payload(o, doc, &d);
    } else if (d.up_to_date >= 0) {
        put_value(&o->json, doc, d.up_to_date, 0);
    } else {
        put_up_to_date(&o->json, device->current_version, "latest");
    }
    return 0;
}

static int from_candidates(const rr_doc *doc, const rr_identity *device, outcome *o, error *e)
{
    rr_decision d;
    rr_status status = rr_decide_candidates(doc, device, &rr_crypto_sodium, &d);
    int data = rr_object_get(doc, 0, "data");
    int scheme = rr_object_get(doc, data, "version_scheme");
    switch (status) {
    case RR_OK:
        break;
    case RR_ERR_UNKNOWN_SCHEME: {
        char *name = copy_string(doc, scheme);
        fail(e, "current version: unknown version scheme '%s' (known: semver, natural)", name);
        free(name);
        return -1;
    }
    case RR_ERR_BAD_VERSION:
        if (rr_raw(doc, scheme).len == 6 && !memcmp(rr_raw(doc, scheme).ptr, "semver", 6))
            fail(e, "current version: '%s' is not a SemVer 2.0 version (MAJOR.MINOR.PATCH, e.g. 1.4.2 or "
                    "2.0.0-rc.1), the version scheme of this registry",
                 device->current_version);
        else
            fail(e, "current version: '%s' is not a natural version (dot-separated numbers with an optional "
                    "suffix, e.g. 11.0.0.6, 2022.01.3 or 1.2.0rc1), the version scheme of this registry",
                 device->current_version);
        return -1;
    case RR_ERR_WRONG_CHANNEL:
        identity_error(e, doc, device, "candidates");
        return -1;
    default:
        fail(e, "malformed candidates document (%s)", rr_status_name(status));
        return -1;
    }
    if (d.update) {
        static const char *const candidate_fields[] = {"id", "revision", "must_pass_through", "created_date",
                                                        "release_url"};
        static const char *const artifact_fields[] = {"hardware_version", "software_type", "filename",
                                                       "file_size", "build_id", "sha256", "url"};
        if (!has_fields(doc, d.release, candidate_fields, 5) || !has_fields(doc, d.artifact, artifact_fields, 7)) {
            fail(e, "malformed candidates document (%s)", rr_status_name(RR_ERR_MALFORMED));
            return -1;
        }
        put_offer(&o->json, doc, &d);
        take_payload(o, doc, &d);
    } else {
        put_up_to_date(&o->json, device->current_version, rr_reason_name(d.reason));
    }
    return 0;
}

static int check(site *s, const rr_identity *device, outcome *o, error *e)
{
    buffer folder = {0}, path = {0};
    fetched document = {0};
    jsmntok_t *tokens = NULL;
    rr_doc doc;
    int result = -1;
    memset(o, 0, sizeof *o);
    buf_fmt(&folder, "api/v1/devices/%s/%s/%s", device->cohort, device->hardware_version,
            device->software_type ? device->software_type : "_");
    if (path_safe_version(device->current_version)) {
        buf_fmt(&path, "%s/from/", folder.data);
        quote(&path, device->current_version, "");
        buf_str(&path, ".json");
        int found = get_json(s, path.data, &document, &doc, &tokens, e);
        if (found < 0)
            goto done;
        if (found) {
            result = from_answer(s, folder.data, &doc, device, o, e);
            goto done;
        }
        buf_free(&document.body);
    }
    path.len = 0;
    buf_fmt(&path, "%s/candidates.json", folder.data);
    int found = get_json(s, path.data, &document, &doc, &tokens, e);
    if (found < 0)
        goto done;
    if (!found) {
        if (device->software_type && *device->software_type)
            fail(e, "the site has no update channel for cohort %s, hardware version %s, software type %s",
                 device->cohort, device->hardware_version, device->software_type);
        else
            fail(e, "the site has no update channel for cohort %s, hardware version %s, no software type",
                 device->cohort, device->hardware_version);
        goto done;
    }
    result = from_candidates(&doc, device, o, e);
done:
    buf_free(&folder);
    buf_free(&path);
    buf_free(&document.body);
    free(tokens);
    return result;
}

static void outcome_free(outcome *o)
{
    buf_free(&o->json);
    free(o->url);
    free(o->filename);
    o->url = o->filename = NULL;
}

/* ---- the download ----------------------------------------------------------------------------- */

typedef struct {
    rr_image image;
    FILE *file;
    int too_large;
} sink;

static size_t image_sink(char *data, size_t size, size_t count, void *user)
{
    sink *k = user;
    size_t n = size * count;
    if (rr_image_update(&k->image, data, n) != RR_OK) {
        k->too_large = 1;
        return 0; /* stop the transfer */
    }
    return fwrite(data, 1, n, k->file) == n ? n : 0;
}

static int safe_filename(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > 255 || strstr(name, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || !strchr("._+-", c)))
            return 0;
    }
    return 1;
}

static int make_dirs(const char *folder)
{
    char *path = strdup(folder);
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0777);
            *p = '/';
        }
    }
    int ok = mkdir(path, 0777) == 0 || errno == EEXIST;
    free(path);
    return ok ? 0 : -1;
}

static int download(site *s, const outcome *o, const char *folder_arg, error *e)
{
    if (!safe_filename(o->filename)) {
        fail(e, "refusing to write the file name '%s'", o->filename);
        return -1;
    }
    buffer folder = {0}, temporary = {0}, target = {0};
    buf_str(&folder, folder_arg);
    while (folder.len > 1 && folder.data[folder.len - 1] == '/')
        folder.data[--folder.len] = 0;
    if (make_dirs(folder.data) != 0) {
        fail(e, "%s: %s", folder.data, strerror(errno));
        buf_free(&folder);
        return -1;
    }
    buf_fmt(&temporary, "%s/.relreg-XXXXXX.part", folder.data);
    int fd = mkstemps(temporary.data, 5);
    int result = -1;
    if (fd < 0) {
        fail(e, "%s: %s", folder.data, strerror(errno));
        goto done;
    }
    sink k = {0};
    k.file = fdopen(fd, "wb");
    rr_image_begin(&k.image, &rr_crypto_sodium, o->file_size, o->sha256);
    char *local = s->http ? NULL : file_of(s, o->url);
    struct stat st;
    if (local && stat(local, &st) == 0 && S_ISREG(st.st_mode)) {
        FILE *source = fopen(local, "rb");
        char chunk[65536];
        size_t n;
        while (source && (n = fread(chunk, 1, sizeof chunk, source)) > 0)
            if (image_sink(chunk, 1, n, &k) != n)
                break;
        if (source)
            fclose(source);
    } else {
        if (!s->curl)
            s->curl = curl_easy_init();
        curl_easy_reset(s->curl);
        curl_easy_setopt(s->curl, CURLOPT_URL, o->url);
        curl_easy_setopt(s->curl, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(s->curl, CURLOPT_TIMEOUT, s->timeout);
        curl_easy_setopt(s->curl, CURLOPT_USERAGENT, "relreg-device-c/1");
        curl_easy_setopt(s->curl, CURLOPT_FAILONERROR, 1L);
        curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, image_sink);
        curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &k);
        CURLcode code = curl_easy_perform(s->curl);
        long status = 0;
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
        if (code != CURLE_OK && !k.too_large) {
            if (status && status != 200)
                fail(e, "GET %s: HTTP %ld", o->url, status);
            else
                fail(e, "GET %s: %s", o->url, curl_easy_strerror(code));
        }
    }
    free(local);
    fclose(k.file);
    if (!e->failed) {
        rr_status verdict = rr_image_finish(&k.image);
        char published[65], received[65];
        for (int i = 0; i < 32; i++) {
            sprintf(published + 2 * i, "%02x", o->sha256[i]);
            sprintf(received + 2 * i, "%02x", k.image.digest[i]);
        }
        if (verdict == RR_ERR_IMAGE_TOO_LARGE)
            fail(e, "%s: more than the published %llu bytes", o->url, (unsigned long long)o->file_size);
        else if (verdict == RR_ERR_SIZE_MISMATCH)
            fail(e, "%s: received %llu bytes, the registry says %llu", o->url,
                 (unsigned long long)k.image.received, (unsigned long long)o->file_size);
        else if (verdict == RR_ERR_IMAGE_DIGEST_MISMATCH)
            fail(e, "%s: sha256 %s does not match the published %s", o->url, received, published);
        else if (verdict != RR_OK)
            fail(e, "%s: %s", o->url, rr_status_name(verdict));
    }
    if (e->failed) {
        unlink(temporary.data);
        goto done;
    }
    buf_fmt(&target, "%s/%s", folder.data, o->filename);
    if (rename(temporary.data, target.data) != 0) {
        fail(e, "%s: %s", target.data, strerror(errno));
        unlink(temporary.data);
        goto done;
    }
    fprintf(stderr, "downloaded %s (%llu bytes, sha256 verified)\n", target.data, (unsigned long long)o->file_size);
    result = 0;
done:
    buf_free(&folder);
    buf_free(&temporary);
    buf_free(&target);
    return result;
}

/* ---- the command line ------------------------------------------------------------------------- */

static void usage(const char *message)
{
    fprintf(stderr,
            "Usage: relreg-device-c --site URL|DIR --cohort C --hardware-version H [--software-type S]\n"
            "                       --current-version V --serial N [--download DIR] [--exit-code]\n"
            "                       [--timeout S] [--trust KEYID=PUBLIC]... [--min-signed-version N]\n"
            "       relreg-device-c --site DIR|URL --batch   (devices on stdin, tab-separated)\n\n"
            "Error: %s\n",
            message);
    exit(2);
}

static int open_site(site *s, const char *where, error *e)
{
    if (!strncmp(where, "http://", 7) || !strncmp(where, "https://", 8)) {
        s->http = 1;
        buffer base = {0};
        buf_str(&base, where);
        if (base.data[base.len - 1] != '/')
            buf_str(&base, "/");
        s->base = base.data;
        s->curl = curl_easy_init();
        return 0;
    }
    buffer root = {0}, api = {0}, index = {0};
    buf_str(&root, where);
    while (root.len > 1 && root.data[root.len - 1] == '/')
        root.data[--root.len] = 0;
    s->root = root.data;
    buf_fmt(&api, "%s/api/v1", root.data);
    struct stat st;
    int result = -1;
    if (stat(api.data, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fail(e, "%s: not a URL and not a built site folder (no api/v1/ in it)", where);
        goto done;
    }
    buf_str(&api, "/index.json");
    int missing;
    rr_doc doc;
    jsmntok_t *tokens = NULL;
    if (read_file(api.data, &index, &missing) == 0) {
        unsigned count = (unsigned)(index.len / 2 + 8);
        tokens = malloc(count * sizeof *tokens);
        if (rr_parse(&doc, index.data, index.len, tokens, count) == RR_OK) {
            int url = rr_object_get(&doc, rr_object_get(&doc, 0, "data"), "site_url");
            if (url >= 0 && doc.tokens[url].type == JSMN_STRING) {
                buffer base = {0};
                char *text = copy_string(&doc, url);
                buf_str(&base, text);
                free(text);
                if (!base.len || base.data[base.len - 1] != '/')
                    buf_str(&base, "/");
                s->base = base.data;
                result = 0;
            }
        }
        free(tokens);
    }
    if (result != 0)
        fail(e, "%s: no readable api/v1/index.json to learn the site URL from", root.data);
done:
    buf_free(&api);
    buf_free(&index);
    return result;
}

static void trim_newline(char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
}

static int batch(site *s)
{
    char *line = NULL;
    size_t cap = 0;
    buffer out = {0};
    while (getline(&line, &cap, stdin) > 0) {
        trim_newline(line);
        char *fields[5] = {0};
        char *p = line;
        int n = 0;
        for (; n < 5 && p; n++) {
            fields[n] = p;
            p = strchr(p, '\t');
            if (p)
                *p++ = 0;
        }
        if (n != 5) {
            fprintf(stderr, "--batch: expected 5 tab-separated fields: %s\n", line);
            return 2;
        }
        rr_identity device = {fields[0], fields[1], strcmp(fields[2], "_") ? fields[2] : NULL, fields[3], fields[4]};
        outcome o;
        error e = {0};
        out.len = 0;
        if (check(s, &device, &o, &e) == 0)
            buf_fmt(&out, "%s\n", o.json.data);
        else
            buf_fmt(&out, "Error: %s\n", e.message.data);
        buf_str(&out, "%%\n");
        fwrite(out.data, 1, out.len, stdout);
        outcome_free(&o);
        buf_free(&e.message);
    }
    free(line);
    buf_free(&out);
    return 0;
}

/* --compare-versions SCHEME: "a<TAB>b" per line on stdin; prints -1, 0, 1 or "invalid" per line. */
static int compare_versions(const char *name)
{
    rr_scheme scheme;
    if (!strcmp(name, "semver"))
        scheme = RR_SCHEME_SEMVER;
    else if (!strcmp(name, "natural"))
        scheme = RR_SCHEME_NATURAL;
    else
        usage("--compare-versions: semver or natural");
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) > 0) {
        trim_newline(line);
        char *tab = strchr(line, '\t');
        if (!tab) {
            fprintf(stderr, "--compare-versions: expected two tab-separated versions: %s\n", line);
            free(line);
            return 2;
        }
        *tab = 0;
        int order;
        if (rr_version_compare(scheme, line, strlen(line), tab + 1, strlen(tab + 1), &order) == RR_OK)
            printf("%d\n", order);
        else
            puts("invalid");
    }
    free(line);
    return 0;
}

/* --measure: a file path per line on stdin; prints "<bytes> <jsmn tokens> <rr_parse status>" per file. */
static int measure(void)
{
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) > 0) {
        trim_newline(line);
        buffer body = {0};
        int missing;
        if (read_file(line, &body, &missing) != 0) {
            fprintf(stderr, "%s: %s\n", line, strerror(errno));
            free(line);
            return 1;
        }
        unsigned count = (unsigned)(body.len / 2 + 8);
        jsmntok_t *tokens = malloc(count * sizeof *tokens);
        rr_doc doc;
        rr_status status = rr_parse(&doc, body.data, body.len, tokens, count);
        printf("%zu %d %s\n", body.len, doc.count, rr_status_name(status));
        free(tokens);
        buf_free(&body);
    }
    free(line);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--compare-versions"))
        return compare_versions(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "--measure"))
        return measure();
    const char *where = NULL, *download_dir = NULL;
    rr_identity device = {NULL, NULL, NULL, NULL, NULL};
    int exit_code = 0, batch_mode = 0;
    site s;
    memset(&s, 0, sizeof s);
    s.timeout = 30;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        char *value = NULL;
        char *equals = strncmp(arg, "--", 2) ? NULL : strchr(arg, '=');
        if (equals) {
            *equals = 0;
            value = equals + 1;
        }
        if (!strcmp(arg, "--exit-code") || !strcmp(arg, "--batch")) {
            if (value)
                usage("option does not take a value");
            *(arg[2] == 'e' ? &exit_code : &batch_mode) = 1;
            continue;
        }
        if (!strcmp(arg, "--help")) {
            usage("see above");
        }
        if (!value) {
            if (i + 1 >= argc)
                usage("option requires an argument");
            value = argv[++i];
        }
        if (!strcmp(arg, "--site"))
            where = value;
        else if (!strcmp(arg, "--cohort"))
            device.cohort = value;
        else if (!strcmp(arg, "--hardware-version"))
            device.hardware_version = value;
        else if (!strcmp(arg, "--software-type"))
            device.software_type = value;
        else if (!strcmp(arg, "--current-version"))
            device.current_version = value;
        else if (!strcmp(arg, "--serial"))
            device.serial = value;
        else if (!strcmp(arg, "--download"))
            download_dir = value;
        else if (!strcmp(arg, "--timeout"))
            s.timeout = (long)(strtod(value, NULL) + 0.999);
        else if (!strcmp(arg, "--min-signed-version"))
            s.min_version = strtoll(value, NULL, 10);
        else if (!strcmp(arg, "--trust")) {
            char *sep = strchr(value, '=');
            if (!sep || sep == value || strlen(sep + 1) != 64)
                usage("--trust: expected KEYID=PUBLIC with a 64-hex public key");
            *sep = 0;
            s.keys = realloc(s.keys, (s.num_keys + 1) * sizeof *s.keys);
            rr_trusted_key *key = &s.keys[s.num_keys++];
            key->keyid = value;
            if (rr_hex_decode(sep + 1, 64, key->public_key, 32) != RR_OK)
                memset(key->public_key, 0, 32); /* never verifies: refused as a bad signature */
        } else {
            usage("no such option");
        }
    }
    if (!where)
        usage("Missing option '--site'.");
    if (!batch_mode && (!device.cohort || !device.hardware_version || !device.current_version || !device.serial))
        usage("Missing option: --cohort, --hardware-version, --current-version and --serial are required.");
    if (rr_crypto_sodium_init() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fputs("Error: cannot initialise libsodium or libcurl\n", stderr);
        return 1;
    }
    error e = {0};
    int status = 1;
    if (open_site(&s, where, &e) != 0) {
        fprintf(stderr, "Error: %s\n", e.message.data);
        status = 1;
    } else if (batch_mode) {
        status = batch(&s);
    } else {
        outcome o;
        if (check(&s, &device, &o, &e) != 0) {
            fprintf(stderr, "Error: %s\n", e.message.data);
            status = 1;
        } else {
            printf("%s\n", o.json.data);
            fflush(stdout);
            status = 0;
            if (o.update && download_dir && download(&s, &o, download_dir, &e) != 0) {
                fprintf(stderr, "Error: %s\n", e.message.data);
                status = 1;
            } else if (exit_code) {
                status = o.update ? EXIT_UPDATE_AVAILABLE : 0;
            }
        }
        outcome_free(&o);
    }
    if (s.curl)
        curl_easy_cleanup(s.curl);
    curl_global_cleanup();
    buf_free(&e.message);
    free(s.keys);
    free(s.root);
    free(s.base);
    return status;
}
