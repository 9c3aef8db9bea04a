/* relreg_client.c: see relreg_client.h. C99, no heap, no I/O, no recursion. */
#define JSMN_STRICT
#define JSMN_STATIC
#include <jsmn.h> /* the implementation, private to this file */

#include "relreg_client.h"

#include <string.h>

static const char *const status_names[RR_STATUS_COUNT] = {
    "ok",
    "bad-argument",
    "bad-json",
    "too-many-tokens",
    "document-too-large",
    "not-a-relreg-document",
    "malformed-document",
    "wrong-channel",
    "wrong-current-version",
    "unknown-version-scheme",
    "invalid-version",
    "missing-signature",
    "malformed-signature",
    "unknown-key",
    "bad-signature",
    "threshold-not-met",
    "wrong-type",
    "wrong-path",
    "expired",
    "rollback",
    "digest-mismatch",
    "image-too-large",
    "size-mismatch",
    "image-digest-mismatch",
    "buffer-too-small",
    "downgrade-offer",
    "rollouts-needed",
};

const char *rr_status_name(rr_status status)
{
    return (unsigned)status < RR_STATUS_COUNT ? status_names[status] : "unknown-status";
}

static const char *const reason_names[] = {"latest", "outside_rollout", "min_version", "must_pass_through",
                                           "blocked"};

const char *rr_reason_name(rr_reason reason)
{
    return (unsigned)reason <= RR_REASON_BLOCKED ? reason_names[reason] : "unknown";
}

/* ---- JSON ----------------------------------------------------------------------------- */

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Where a token's bytes begin and end, quotes included for strings. */
static int tok_begin(const jsmntok_t *t) { return t->type == JSMN_STRING ? t->start - 1 : t->start; }
static int tok_end(const jsmntok_t *t) { return t->type == JSMN_STRING ? t->end + 1 : t->end; }

/* Only whitespace and exactly one `sep` (0: none) between from and to. */
static int gap_ok(const char *js, int from, int to, char sep)
{
    int seen = 0;
    for (int i = from; i < to; i++) {
        if (is_ws(js[i]))
            continue;
        if (sep && js[i] == sep && !seen) {
            seen = 1;
            continue;
        }
        return 0;
    }
    return sep ? seen : 1;
}

static int primitive_ok(const char *p, int len)
{
    if ((len == 4 && !memcmp(p, "true", 4)) || (len == 5 && !memcmp(p, "false", 5)) ||
        (len == 4 && !memcmp(p, "null", 4)))
        return 1;
    int i = 0;
    if (i < len && p[i] == '-')
        i++;
    if (i >= len || !is_digit(p[i]))
        return 0;
    if (p[i] == '0')
        i++;
    else
        while (i < len && is_digit(p[i]))
            i++;
    if (i < len && p[i] == '.') {
        i++;
        if (i >= len || !is_digit(p[i]))
            return 0;
        while (i < len && is_digit(p[i]))
            i++;
    }
    if (i < len && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < len && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= len || !is_digit(p[i]))
            return 0;
        while (i < len && is_digit(p[i]))
            i++;
    }
    return i == len;
}

/* Strings: no raw control characters, valid UTF-8 (escapes were checked by jsmn). */
static int string_ok(const unsigned char *p, int len)
{
    int i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x20)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        int extra;
        unsigned min;
        if (c >= 0xc2 && c <= 0xdf) {
            extra = 1;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            extra = 2;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            extra = 3;
            min = 0x10000;
        } else {
            return 0;
        }
        if (i + extra >= len)
            return 0;
        unsigned cp = c & (0x3fu >> extra);
        for (int k = 1; k <= extra; k++) {
            unsigned d = p[i + k];
            if ((d & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (d & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += extra + 1;
    }
    return 1;
}

int rr_skip(const rr_doc *doc, int token)
{
    int pending = 1;
    int i = token;
    while (pending > 0 && i < doc->count) {
        pending += doc->tokens[i].size;
        pending--;
        i++;
    }
    return i;
}

/* Tokenize json into doc and check it is well-formed JSON with a root of `root_type` (-1: any). */
static rr_status parse_into(rr_doc *doc, const char *json, size_t len, jsmntok_t *tokens, unsigned num_tokens,
                            int root_type)
{
    doc->json = json;
    doc->len = len;
    doc->tokens = tokens;
    doc->count = 0;
    jsmn_parser parser;
    jsmn_init(&parser);
    int n = jsmn_parse(&parser, json, len, tokens, num_tokens);
    if (n == JSMN_ERROR_NOMEM)
        return RR_ERR_TOO_MANY_TOKENS;
    if (n < 1)
        return RR_ERR_BAD_JSON;
    doc->count = n;
    if ((root_type >= 0 && (int)tokens[0].type != root_type) || !gap_ok(json, 0, tok_begin(&tokens[0]), 0) ||
        !gap_ok(json, tok_end(&tokens[0]), (int)len, 0) || rr_skip(doc, 0) != n)
        return RR_ERR_BAD_JSON;
    /* jsmn is lenient about separators: check every gap between tokens, and every primitive */
    for (int i = 0; i < n; i++) {
        const jsmntok_t *t = &tokens[i];
        if (t->start < 0 || t->end < t->start || t->end > (int)len)
            return RR_ERR_BAD_JSON;
        if (t->type == JSMN_PRIMITIVE && !primitive_ok(json + t->start, t->end - t->start))
            return RR_ERR_BAD_JSON;
        if (t->type == JSMN_STRING && !string_ok((const unsigned char *)json + t->start, t->end - t->start))
            return RR_ERR_BAD_JSON;
        if (t->type != JSMN_OBJECT && t->type != JSMN_ARRAY)
            continue;
        if (t->end - t->start < 2 || json[t->start] != (t->type == JSMN_OBJECT ? '{' : '[') ||
            json[t->end - 1] != (t->type == JSMN_OBJECT ? '}' : ']'))
            return RR_ERR_BAD_JSON;
        int position = t->start + 1;
        int child = i + 1;
        for (int k = 0; k < t->size; k++) {
            if (child >= n)
                return RR_ERR_BAD_JSON;
            const jsmntok_t *c = &tokens[child];
            if (!gap_ok(json, position, tok_begin(c), k ? ',' : 0))
                return RR_ERR_BAD_JSON;
            if (t->type == JSMN_OBJECT) {
                if (c->type != JSMN_STRING || c->size != 1 || child + 1 >= n)
                    return RR_ERR_BAD_JSON;
                const jsmntok_t *v = &tokens[child + 1];
                if (!gap_ok(json, tok_end(c), tok_begin(v), ':'))
                    return RR_ERR_BAD_JSON;
                position = tok_end(v);
                child = rr_skip(doc, child + 1);
            } else {
                if (c->type == JSMN_STRING && c->size != 0)
                    return RR_ERR_BAD_JSON;
                position = tok_end(c);
                child = rr_skip(doc, child);
            }
        }
        if (!gap_ok(json, position, t->end - 1, 0))
            return RR_ERR_BAD_JSON;
    }
    return RR_OK;
}

rr_status rr_parse(rr_doc *doc, const char *json, size_t len, jsmntok_t *tokens, unsigned num_tokens)
{
    if (!doc || !json || !tokens || num_tokens == 0 || len > 0x7fffffff)
        return RR_ERR_ARGUMENT;
    return parse_into(doc, json, len, tokens, num_tokens, JSMN_OBJECT);
}

rr_str rr_raw(const rr_doc *doc, int token)
{
    rr_str s = {NULL, 0};
    if (token >= 0 && token < doc->count) {
        s.ptr = doc->json + doc->tokens[token].start;
        s.len = (size_t)(doc->tokens[token].end - doc->tokens[token].start);
    }
    return s;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode the next character of a JSON string's raw contents into out (1..4 UTF-8 bytes). */
static size_t next_char(const char *p, size_t len, size_t *i, char out[4])
{
    char c = p[*i];
    if (c != '\\') {
        out[0] = c;
        (*i)++;
        return 1;
    }
    if (*i + 1 >= len) {
        (*i) = len;
        return 0;
    }
    char e = p[*i + 1];
    *i += 2;
    switch (e) {
    case 'b': out[0] = '\b'; return 1;
    case 'f': out[0] = '\f'; return 1;
    case 'n': out[0] = '\n'; return 1;
    case 'r': out[0] = '\r'; return 1;
    case 't': out[0] = '\t'; return 1;
    case 'u': break;
    default: out[0] = e; return 1;
    }
    unsigned cp = 0;
    for (int k = 0; k < 4; k++) {
        int v = *i < len ? hexval(p[*i]) : -1;
        if (v < 0)
            return 0;
        cp = (cp << 4) | (unsigned)v;
        (*i)++;
    }
    if (cp >= 0xd800 && cp <= 0xdbff && *i + 6 <= len && p[*i] == '\\' && p[*i + 1] == 'u') {
        unsigned lo = 0;
        int ok = 1;
        for (int k = 0; k < 4; k++) {
            int v = hexval(p[*i + 2 + k]);
            if (v < 0)
                ok = 0;
            lo = (lo << 4) | (unsigned)(v < 0 ? 0 : v);
        }
        if (ok && lo >= 0xdc00 && lo <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            *i += 6;
        }
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Does string token `token` decode to exactly s[0..len)? */
static int str_eq(const rr_doc *doc, int token, const char *s, size_t len)
{
    if (token < 0 || token >= doc->count || doc->tokens[token].type != JSMN_STRING)
        return 0;
    rr_str raw = rr_raw(doc, token);
    if (!memchr(raw.ptr, '\\', raw.len))
        return raw.len == len && !memcmp(raw.ptr, s, len);
    size_t i = 0, j = 0;
    char buf[4];
    while (i < raw.len) {
        size_t n = next_char(raw.ptr, raw.len, &i, buf);
        if (n == 0 || j + n > len || memcmp(s + j, buf, n))
            return 0;
        j += n;
    }
    return j == len;
}

static int str_eqz(const rr_doc *doc, int token, const char *s) { return str_eq(doc, token, s, strlen(s)); }

rr_status rr_string_copy(const rr_doc *doc, int token, char *out, size_t cap)
{
    if (!doc || !out || cap == 0 || token < 0 || token >= doc->count || doc->tokens[token].type != JSMN_STRING)
        return RR_ERR_ARGUMENT;
    rr_str raw = rr_raw(doc, token);
    size_t i = 0, j = 0;
    char buf[4];
    while (i < raw.len) {
        size_t n = next_char(raw.ptr, raw.len, &i, buf);
        if (j + n + 1 > cap)
            return RR_ERR_BUFFER_TOO_SMALL;
        memcpy(out + j, buf, n);
        j += n;
    }
    out[j] = 0;
    return RR_OK;
}

int rr_object_get(const rr_doc *doc, int object, const char *key)
{
    if (!doc || object < 0 || object >= doc->count || doc->tokens[object].type != JSMN_OBJECT)
        return -1;
    size_t key_len = strlen(key);
    int found = -1;
    int i = object + 1;
    for (int k = 0; k < doc->tokens[object].size && i + 1 < doc->count; k++) {
        if (str_eq(doc, i, key, key_len))
            found = i + 1; /* the last one wins, as in Python's json */
        i = rr_skip(doc, i + 1);
    }
    return found;
}

static int tok_type(const rr_doc *doc, int token) { return token >= 0 ? (int)doc->tokens[token].type : -1; }

static int is_literal(const rr_doc *doc, int token, const char *literal)
{
    if (tok_type(doc, token) != JSMN_PRIMITIVE)
        return 0;
    rr_str raw = rr_raw(doc, token);
    return raw.len == strlen(literal) && !memcmp(raw.ptr, literal, raw.len);
}

static int is_null(const rr_doc *doc, int token) { return is_literal(doc, token, "null"); }

/* An integer primitive (no fraction, no exponent) that fits in int64. */
static int get_int(const rr_doc *doc, int token, int64_t *out)
{
    if (tok_type(doc, token) != JSMN_PRIMITIVE)
        return 0;
    rr_str raw = rr_raw(doc, token);
    size_t i = 0;
    int negative = 0;
    if (i < raw.len && raw.ptr[i] == '-') {
        negative = 1;
        i++;
    }
    if (i >= raw.len)
        return 0;
    uint64_t value = 0;
    for (; i < raw.len; i++) {
        if (!is_digit(raw.ptr[i]))
            return 0;
        unsigned d = (unsigned)(raw.ptr[i] - '0');
        if (value > UINT64_C(922337203685477580) || (value == UINT64_C(922337203685477580) && d > 7))
            return 0; /* beyond INT64_MAX */
        value = value * 10 + d;
    }
    *out = negative ? -(int64_t)value : (int64_t)value;
    return 1;
}

static rr_str str_of(const rr_doc *doc, int token)
{
    rr_str none = {NULL, 0};
    return tok_type(doc, token) == JSMN_STRING ? rr_raw(doc, token) : none;
}

/* The text of string token `token`: its raw contents, or when they hold escapes, the decoded text
 * written into buf (cap bytes). {NULL, 0} when the token is not a string, or its escapes do not
 * decode or do not fit. Versions are compared and hashed as text, as the reference client does. */
static rr_str text_of(const rr_doc *doc, int token, char *buf, size_t cap)
{
    rr_str none = {NULL, 0};
    rr_str raw = str_of(doc, token);
    if (!raw.ptr || !memchr(raw.ptr, '\\', raw.len))
        return raw;
    size_t i = 0, j = 0;
    char c[4];
    while (i < raw.len) {
        size_t n = next_char(raw.ptr, raw.len, &i, c);
        if (n == 0 || j + n > cap)
            return none;
        memcpy(buf + j, c, n);
        j += n;
    }
    rr_str text = {buf, j};
    return text;
}

rr_status rr_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t out_len)
{
    if (hex_len != 2 * out_len)
        return RR_ERR_MALFORMED;
    for (size_t i = 0; i < out_len; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        /* lowercase only, as relreg writes them */
        if (hi < 0 || lo < 0 || (hex[2 * i] >= 'A' && hex[2 * i] <= 'F') ||
            (hex[2 * i + 1] >= 'A' && hex[2 * i + 1] <= 'F'))
            return RR_ERR_MALFORMED;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return RR_OK;
}

/* ---- versions ------------------------------------------------------------------------- */

/* Compare two runs of ASCII digits as numbers (leading zeros allowed). */
static int numcmp(const char *a, size_t alen, const char *b, size_t blen)
{
    while (alen > 1 && *a == '0') {
        a++;
        alen--;
    }
    while (blen > 1 && *b == '0') {
        b++;
        blen--;
    }
    if (alen != blen)
        return alen < blen ? -1 : 1;
    int c = memcmp(a, b, alen);
    return c < 0 ? -1 : c > 0;
}

static int bytecmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = memcmp(a, b, n);
    if (c)
        return c < 0 ? -1 : 1;
    return alen == blen ? 0 : (alen < blen ? -1 : 1);
}

static int is_ident_char(char c) { return is_digit(c) || is_alpha(c) || c == '-'; }

typedef struct {
    const char *major, *minor, *patch, *pre;
    size_t major_len, minor_len, patch_len, pre_len; /* pre_len 0: no prerelease */
} semver_parts;

/* `0|[1-9][0-9]*` starting at s[*i] */
static int semver_number(const char *s, size_t len, size_t *i, const char **out, size_t *out_len)
{
    size_t start = *i;
    if (start >= len || !is_digit(s[start]))
        return 0;
    size_t j = start + 1;
    if (s[start] != '0')
        while (j < len && is_digit(s[j]))
            j++;
    *out = s + start;
    *out_len = j - start;
    *i = j;
    return 1;
}

static int semver_parse(const char *s, size_t len, semver_parts *p)
{
    size_t i = 0;
    if (!semver_number(s, len, &i, &p->major, &p->major_len) || i >= len || s[i++] != '.' ||
        !semver_number(s, len, &i, &p->minor, &p->minor_len) || i >= len || s[i++] != '.' ||
        !semver_number(s, len, &i, &p->patch, &p->patch_len))
        return 0;
    p->pre = NULL;
    p->pre_len = 0;
    if (i < len && s[i] == '-') {
        i++;
        size_t start = i;
        for (;;) { /* identifiers: non-empty [0-9A-Za-z-]+, numeric ones without leading zeros */
            size_t id = i;
            int numeric = 1;
            while (i < len && is_ident_char(s[i])) {
                if (!is_digit(s[i]))
                    numeric = 0;
                i++;
            }
            if (i == id || (numeric && i - id > 1 && s[id] == '0'))
                return 0;
            if (i < len && s[i] == '.') {
                i++;
                continue;
            }
            break;
        }
        p->pre = s + start;
        p->pre_len = i - start;
    }
    if (i < len && s[i] == '+') {
        i++;
        for (;;) {
            size_t id = i;
            while (i < len && is_ident_char(s[i]))
                i++;
            if (i == id)
                return 0;
            if (i < len && s[i] == '.') {
                i++;
                continue;
            }
            break;
        }
    }
    return i == len;
}

/* Next dot-separated part from *i (a prerelease identifier, or a natural version's number). */
static int next_part(const char *s, size_t len, size_t *i, const char **part, size_t *part_len)
{
    if (*i >= len)
        return 0;
    size_t start = *i, j = start;
    while (j < len && s[j] != '.')
        j++;
    *part = s + start;
    *part_len = j - start;
    *i = j < len ? j + 1 : j;
    return 1;
}

static int all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_digit(s[i]))
            return 0;
    return len > 0;
}

/* Python's key part order: (0, int) before (1, str); ints numerically, strs by code point. */
static int part_cmp(const char *a, size_t alen, int anum, const char *b, size_t blen, int bnum)
{
    if (anum != bnum)
        return anum ? -1 : 1;
    return anum ? numcmp(a, alen, b, blen) : bytecmp(a, alen, b, blen);
}

static int semver_cmp(const semver_parts *a, const semver_parts *b)
{
    int c = numcmp(a->major, a->major_len, b->major, b->major_len);
    if (!c)
        c = numcmp(a->minor, a->minor_len, b->minor, b->minor_len);
    if (!c)
        c = numcmp(a->patch, a->patch_len, b->patch, b->patch_len);
    if (c)
        return c;
    if (!a->pre_len || !b->pre_len) /* a release sorts after its prereleases */
        return a->pre_len ? -1 : (b->pre_len ? 1 : 0);
    size_t i = 0, j = 0;
    const char *x, *y;
    size_t xl, yl;
    for (;;) {
        int hx = next_part(a->pre, a->pre_len, &i, &x, &xl);
        int hy = next_part(b->pre, b->pre_len, &j, &y, &yl);
        if (!hx || !hy)
            return hx ? 1 : (hy ? -1 : 0);
        c = part_cmp(x, xl, all_digits(x, xl), y, yl, all_digits(y, yl));
        if (c)
            return c;
    }
}

typedef struct {
    const char *numbers;
    size_t numbers_len; /* with trailing ".0" parts dropped (at least one part stays) */
    const char *suffix;
    size_t suffix_len; /* 0: none */
} natural_parts;

static int natural_parse(const char *s, size_t len, natural_parts *p)
{
    size_t i = 0;
    if (i >= len || !is_digit(s[i]))
        return 0;
    while (i < len && is_digit(s[i]))
        i++;
    while (i + 1 < len && s[i] == '.' && is_digit(s[i + 1])) {
        i++;
        while (i < len && is_digit(s[i]))
            i++;
    }
    p->numbers = s;
    p->numbers_len = i;
    p->suffix = NULL;
    p->suffix_len = 0;
    if (i < len) {
        if (s[i] == '-' || s[i] == '.' || s[i] == '+' || s[i] == '~' || s[i] == '_')
            i++;
        if (i >= len || !is_alpha(s[i]))
            return 0;
        size_t start = i;
        while (i < len && (is_digit(s[i]) || is_alpha(s[i]) || s[i] == '.' || s[i] == '+' || s[i] == '-'))
            i++;
        if (i != len)
            return 0;
        p->suffix = s + start;
        p->suffix_len = len - start;
    }
    /* drop trailing zero parts: "1.2.0" is "1.2", "0.0" is "0" */
    for (;;) {
        size_t end = p->numbers_len, k = end;
        while (k > 0 && p->numbers[k - 1] != '.')
            k--;
        if (k == 0)
            break; /* one part left */
        int zero = 1;
        for (size_t m = k; m < end; m++)
            if (p->numbers[m] != '0')
                zero = 0;
        if (!zero)
            break;
        p->numbers_len = k - 1;
    }
    return 1;
}

/* Next run of digits or of letters in a natural suffix (other characters separate). */
static int next_run(const char *s, size_t len, size_t *i, const char **run, size_t *run_len, int *numeric)
{
    while (*i < len && !is_digit(s[*i]) && !is_alpha(s[*i]))
        (*i)++;
    if (*i >= len)
        return 0;
    size_t start = *i;
    *numeric = is_digit(s[start]);
    while (*i < len && (*numeric ? is_digit(s[*i]) : is_alpha(s[*i])))
        (*i)++;
    *run = s + start;
    *run_len = *i - start;
    return 1;
}

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static int lower_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    for (size_t k = 0; k < n; k++) {
        char x = lower(a[k]), y = lower(b[k]);
        if (x != y)
            return (unsigned char)x < (unsigned char)y ? -1 : 1;
    }
    return alen == blen ? 0 : (alen < blen ? -1 : 1);
}

static int natural_cmp(const natural_parts *a, const natural_parts *b)
{
    size_t i = 0, j = 0;
    const char *x, *y;
    size_t xl, yl;
    for (;;) {
        int hx = next_part(a->numbers, a->numbers_len, &i, &x, &xl);
        int hy = next_part(b->numbers, b->numbers_len, &j, &y, &yl);
        if (!hx || !hy) {
            if (hx != hy)
                return hx ? 1 : -1;
            break;
        }
        int c = numcmp(x, xl, y, yl);
        if (c)
            return c;
    }
    if (!a->suffix_len || !b->suffix_len) /* a suffixed version sorts before the plain numbers */
        return a->suffix_len ? -1 : (b->suffix_len ? 1 : 0);
    i = j = 0;
    for (;;) {
        int xn = 0, yn = 0;
        int hx = next_run(a->suffix, a->suffix_len, &i, &x, &xl, &xn);
        int hy = next_run(b->suffix, b->suffix_len, &j, &y, &yl, &yn);
        if (!hx || !hy)
            return hx ? 1 : (hy ? -1 : 0);
        int c = xn != yn ? (xn ? -1 : 1) : (xn ? numcmp(x, xl, y, yl) : lower_cmp(x, xl, y, yl));
        if (c)
            return c;
    }
}

rr_status rr_version_check(rr_scheme scheme, const char *text, size_t len)
{
    if (!text)
        return RR_ERR_ARGUMENT;
    if (scheme == RR_SCHEME_SEMVER) {
        semver_parts p;
        return semver_parse(text, len, &p) ? RR_OK : RR_ERR_BAD_VERSION;
    }
    if (scheme == RR_SCHEME_NATURAL) {
        natural_parts p;
        return natural_parse(text, len, &p) ? RR_OK : RR_ERR_BAD_VERSION;
    }
    return RR_ERR_UNKNOWN_SCHEME;
}

rr_status rr_version_compare(rr_scheme scheme, const char *a, size_t alen, const char *b, size_t blen, int *order)
{
    if (!a || !b || !order)
        return RR_ERR_ARGUMENT;
    if (scheme == RR_SCHEME_SEMVER) {
        semver_parts x, y;
        if (!semver_parse(a, alen, &x) || !semver_parse(b, blen, &y))
            return RR_ERR_BAD_VERSION;
        *order = semver_cmp(&x, &y);
        return RR_OK;
    }
    if (scheme == RR_SCHEME_NATURAL) {
        natural_parts x, y;
        if (!natural_parse(a, alen, &x) || !natural_parse(b, blen, &y))
            return RR_ERR_BAD_VERSION;
        *order = natural_cmp(&x, &y);
        return RR_OK;
    }
    return RR_ERR_UNKNOWN_SCHEME;
}

/* ---- rollout -------------------------------------------------------------------------- */

unsigned rr_bucket(const rr_crypto *crypto, const char *serial, const char *cohort, const char *version,
                   size_t version_len)
{
    rr_sha256_ctx ctx;
    uint8_t digest[32];
    static const uint8_t zero = 0;
    crypto->sha256_init(&ctx);
    crypto->sha256_update(&ctx, (const uint8_t *)serial, strlen(serial));
    crypto->sha256_update(&ctx, &zero, 1);
    crypto->sha256_update(&ctx, (const uint8_t *)cohort, strlen(cohort));
    crypto->sha256_update(&ctx, &zero, 1);
    crypto->sha256_update(&ctx, (const uint8_t *)version, version_len);
    crypto->sha256_final(&ctx, digest);
    /* the first 8 bytes as a big-endian number, mod 10000, byte by byte (no 64-bit division) */
    uint32_t remainder = 0;
    for (int i = 0; i < 8; i++)
        remainder = ((remainder << 8) | digest[i]) % RR_BUCKETS;
    return (unsigned)remainder;
}

static int in_rollout(const rr_crypto *crypto, int64_t threshold, const rr_identity *device, rr_str version)
{
    if (threshold >= (int64_t)RR_BUCKETS)
        return 1;
    return threshold > 0 && (int64_t)rr_bucket(crypto, device->serial, device->cohort, version.ptr, version.len) <
                                threshold;
}

/* ---- decisions ------------------------------------------------------------------------ */

static void decision_init(rr_decision *out)
{
    memset(out, 0, sizeof *out);
    out->release = out->artifact = out->up_to_date = -1;
}

/* The `data` object of a relreg document. */
static int data_of(const rr_doc *doc)
{
    int data = rr_object_get(doc, 0, "data");
    return tok_type(doc, data) == JSMN_OBJECT ? data : -1;
}

static int channel_matches(const rr_doc *doc, int data, const rr_identity *device)
{
    int software = rr_object_get(doc, data, "software_type");
    if (software < 0)
        return 0;
    if (device->software_type ? !str_eqz(doc, software, device->software_type) : !is_null(doc, software))
        return 0;
    return str_eqz(doc, rr_object_get(doc, data, "cohort"), device->cohort) &&
           str_eqz(doc, rr_object_get(doc, data, "hardware_version"), device->hardware_version);
}

/* Fill the payload fields of `out` from artifact object `artifact`. */
static rr_status read_artifact(const rr_doc *doc, int artifact, rr_decision *out)
{
    if (tok_type(doc, artifact) != JSMN_OBJECT)
        return RR_ERR_MALFORMED;
    int64_t size;
    int delta_from = rr_object_get(doc, artifact, "delta_from");
    int sha = rr_object_get(doc, artifact, "sha256");
    out->url = str_of(doc, rr_object_get(doc, artifact, "url"));
    out->filename = str_of(doc, rr_object_get(doc, artifact, "filename"));
    if (!out->url.ptr || !out->filename.ptr || tok_type(doc, sha) != JSMN_STRING ||
        !get_int(doc, rr_object_get(doc, artifact, "file_size"), &size) || size < 0 || delta_from < 0 ||
        (!is_null(doc, delta_from) && tok_type(doc, delta_from) != JSMN_STRING))
        return RR_ERR_MALFORMED;
    rr_str digest = rr_raw(doc, sha);
    if (rr_hex_decode(digest.ptr, digest.len, out->sha256, 32) != RR_OK)
        return RR_ERR_MALFORMED;
    out->file_size = (uint64_t)size;
    out->is_delta = !is_null(doc, delta_from);
    if (out->is_delta)
        out->delta_from = rr_raw(doc, delta_from);
    out->artifact = artifact;
    out->update = 1;
    return RR_OK;
}

static int device_ok(const rr_identity *device)
{
    return device && device->cohort && device->hardware_version && device->current_version && device->serial;
}

/* The threshold of `version` in a channel's rollouts document (0 when it is not listed: a rollouts
 * document older than the answer holds the device back), or -1 when the document is malformed. */
static int64_t rollout_of(const rr_doc *rollouts, int list, rr_str version)
{
    int64_t found = 0;
    int entry = list + 1;
    for (int k = 0; k < rollouts->tokens[list].size; k++) {
        int64_t threshold;
        int v = rr_object_get(rollouts, entry, "version");
        if (tok_type(rollouts, entry) != JSMN_OBJECT || tok_type(rollouts, v) != JSMN_STRING ||
            !get_int(rollouts, rr_object_get(rollouts, entry, "rollout_threshold"), &threshold))
            return -1;
        if (str_eq(rollouts, v, version.ptr, version.len))
            found = threshold; /* the last entry of a version counts, as in the reference client */
        entry = rr_skip(rollouts, entry);
    }
    return found;
}

/* The `version_scheme` of a document's data object: RR_OK, RR_ERR_UNKNOWN_SCHEME (a name this client does
 * not know) or RR_ERR_MALFORMED (none). */
static rr_status scheme_of(const rr_doc *doc, int data, rr_scheme *scheme)
{
    int token = rr_object_get(doc, data, "version_scheme");
    if (str_eqz(doc, token, "semver"))
        *scheme = RR_SCHEME_SEMVER;
    else if (str_eqz(doc, token, "natural"))
        *scheme = RR_SCHEME_NATURAL;
    else
        return tok_type(doc, token) == JSMN_STRING ? RR_ERR_UNKNOWN_SCHEME : RR_ERR_MALFORMED;
    return RR_OK;
}

const rr_doc rr_stale_rollouts = {NULL, 0, NULL, 0};

rr_status rr_decide_answer(const rr_doc *doc, const rr_doc *rollouts, const rr_identity *device,
                           const rr_crypto *crypto, rr_decision *out)
{
    int stale = rollouts == &rr_stale_rollouts; /* every staged offer at 0 % */
    if (!doc || !out || !crypto || !device_ok(device) || doc->count < 1 || (rollouts && !stale && rollouts->count < 1))
        return RR_ERR_ARGUMENT;
    decision_init(out);
    int data = data_of(doc);
    if (data < 0)
        return RR_ERR_NOT_RELREG;
    if (!channel_matches(doc, data, device))
        return RR_ERR_WRONG_CHANNEL;
    if (!str_eqz(doc, rr_object_get(doc, data, "current_version"), device->current_version))
        return RR_ERR_WRONG_VERSION;
    rr_scheme scheme;
    rr_status status = scheme_of(doc, data, &scheme);
    if (status != RR_OK)
        return status;
    const char *current = device->current_version;
    if (rr_version_check(scheme, current, strlen(current)) != RR_OK)
        return RR_ERR_MALFORMED;
    int offers = rr_object_get(doc, data, "offers");
    if (tok_type(doc, offers) != JSMN_ARRAY)
        return RR_ERR_MALFORMED;
    /* every offer is read before one is taken: a malformed list, or an offer that is not above the
     * device's version (never a downgrade, never a reinstall), is refused whoever the device is */
    int staged = 0;
    int offer = offers + 1;
    for (int k = 0; k < doc->tokens[offers].size; k++) {
        int release = rr_object_get(doc, offer, "release");
        int flag = rr_object_get(doc, offer, "staged");
        char text[256];
        rr_str version = text_of(doc, rr_object_get(doc, release, "version"), text, sizeof text);
        int order = 0;
        if (tok_type(doc, release) != JSMN_OBJECT || !version.ptr ||
            !(is_literal(doc, flag, "true") || is_literal(doc, flag, "false")) ||
            rr_version_compare(scheme, version.ptr, version.len, current, strlen(current), &order) != RR_OK)
            return RR_ERR_MALFORMED;
        if (order <= 0) {
            out->release = release;
            out->version = rr_raw(doc, rr_object_get(doc, release, "version"));
            return RR_ERR_DOWNGRADE;
        }
        staged |= is_literal(doc, flag, "true");
        offer = rr_skip(doc, offer);
    }
    int list = -1;
    if (staged && !stale) {
        if (!rollouts)
            return RR_NEED_ROLLOUTS;
        int rdata = data_of(rollouts);
        if (rdata < 0)
            return RR_ERR_NOT_RELREG;
        if (!channel_matches(rollouts, rdata, device))
            return RR_ERR_WRONG_CHANNEL;
        list = rr_object_get(rollouts, rdata, "rollouts");
        if (tok_type(rollouts, list) != JSMN_ARRAY)
            return RR_ERR_MALFORMED;
    }
    int chosen = -1;
    offer = offers + 1;
    for (int k = 0; k < doc->tokens[offers].size && chosen < 0; k++) {
        int release = rr_object_get(doc, offer, "release");
        char text[256];
        rr_str version = text_of(doc, rr_object_get(doc, release, "version"), text, sizeof text);
        if (!version.ptr)
            return RR_ERR_MALFORMED;
        int64_t threshold = (int64_t)RR_BUCKETS;
        if (is_literal(doc, rr_object_get(doc, offer, "staged"), "true"))
            threshold = stale ? 0 : rollout_of(rollouts, list, version);
        if (threshold < 0)
            return RR_ERR_MALFORMED;
        if (in_rollout(crypto, threshold, device, version))
            chosen = release;
        offer = rr_skip(doc, offer);
    }
    if (chosen < 0) {
        int up = rr_object_get(doc, data, "up_to_date");
        if (up < 0 || (!is_null(doc, up) && tok_type(doc, up) != JSMN_OBJECT))
            return RR_ERR_MALFORMED;
        out->up_to_date = is_null(doc, up) ? -1 : up;
        out->reason = RR_REASON_LATEST;
        return RR_OK;
    }
    int artifacts = rr_object_get(doc, chosen, "artifacts");
    if (tok_type(doc, artifacts) != JSMN_ARRAY || doc->tokens[artifacts].size < 1)
        return RR_ERR_MALFORMED;
    out->release = chosen;
    out->version = rr_raw(doc, rr_object_get(doc, chosen, "version"));
    return read_artifact(doc, artifacts + 1, out);
}

/* A candidate, with what the rules need. */
typedef struct {
    int object;
    rr_str version;
    rr_str min_version; /* len 0: none */
    int64_t threshold;
    int full;  /* full image artifact, or -1 */
    int delta; /* delta from exactly the device's version, or -1 */
} candidate;

static rr_status read_candidate(const rr_doc *doc, int object, const rr_identity *device, rr_scheme scheme,
                                candidate *c)
{
    if (tok_type(doc, object) != JSMN_OBJECT)
        return RR_ERR_MALFORMED;
    c->object = object;
    c->version = str_of(doc, rr_object_get(doc, object, "version"));
    if (!c->version.ptr || rr_version_check(scheme, c->version.ptr, c->version.len) != RR_OK)
        return RR_ERR_MALFORMED;
    int min = rr_object_get(doc, object, "min_version");
    if (min < 0 || (!is_null(doc, min) && tok_type(doc, min) != JSMN_STRING))
        return RR_ERR_MALFORMED;
    c->min_version = str_of(doc, min); /* null and "" both mean none */
    if (c->min_version.len && rr_version_check(scheme, c->min_version.ptr, c->min_version.len) != RR_OK)
        return RR_ERR_MALFORMED;
    if (!get_int(doc, rr_object_get(doc, object, "rollout_threshold"), &c->threshold))
        return RR_ERR_MALFORMED;
    int artifacts = rr_object_get(doc, object, "artifacts");
    if (tok_type(doc, artifacts) != JSMN_ARRAY)
        return RR_ERR_MALFORMED;
    c->full = c->delta = -1;
    int artifact = artifacts + 1;
    for (int k = 0; k < doc->tokens[artifacts].size; k++) {
        int from = rr_object_get(doc, artifact, "delta_from");
        if (tok_type(doc, artifact) != JSMN_OBJECT || from < 0)
            return RR_ERR_MALFORMED;
        if (is_null(doc, from)) {
            if (c->full >= 0)
                return RR_ERR_MALFORMED; /* more than one full image */
            c->full = artifact;
        } else if (tok_type(doc, from) != JSMN_STRING) {
            return RR_ERR_MALFORMED;
        } else if (c->delta < 0 && str_eqz(doc, from, device->current_version)) {
            c->delta = artifact;
        }
        artifact = rr_skip(doc, artifact);
    }
    return RR_OK;
}

rr_status rr_decide_candidates(const rr_doc *doc, const rr_identity *device, const rr_crypto *crypto,
                               rr_decision *out)
{
    if (!doc || !out || !crypto || !device_ok(device) || doc->count < 1)
        return RR_ERR_ARGUMENT;
    decision_init(out);
    out->from_candidates = 1;
    int data = data_of(doc);
    if (data < 0)
        return RR_ERR_NOT_RELREG;
    rr_scheme scheme;
    rr_status scheme_status = scheme_of(doc, data, &scheme);
    if (scheme_status != RR_OK)
        return scheme_status;
    int barriers = rr_object_get(doc, data, "must_pass_through");
    int candidates = rr_object_get(doc, data, "candidates");
    if (tok_type(doc, barriers) != JSMN_ARRAY || tok_type(doc, candidates) != JSMN_ARRAY)
        return RR_ERR_MALFORMED;
    const char *current = device->current_version;
    size_t current_len = strlen(current);

    /* The channel is checked whole before the device's version is looked at (as the reference does). */
    rr_str previous = {NULL, 0};
    int item = barriers + 1;
    for (int k = 0; k < doc->tokens[barriers].size; k++, item = rr_skip(doc, item)) {
        rr_str version = str_of(doc, item);
        int order = 0;
        if (!version.ptr || rr_version_check(scheme, version.ptr, version.len) != RR_OK)
            return RR_ERR_MALFORMED;
        if (previous.ptr && (rr_version_compare(scheme, previous.ptr, previous.len, version.ptr, version.len,
                                                &order) != RR_OK || order > 0))
            return RR_ERR_MALFORMED; /* ascending */
        previous = version;
    }
    previous.ptr = NULL;
    item = candidates + 1;
    for (int k = 0; k < doc->tokens[candidates].size; k++, item = rr_skip(doc, item)) {
        candidate c;
        int order = 0;
        rr_status status = read_candidate(doc, item, device, scheme, &c);
        if (status != RR_OK)
            return status;
        if (previous.ptr &&
            (rr_version_compare(scheme, previous.ptr, previous.len, c.version.ptr, c.version.len, &order) != RR_OK ||
             order >= 0))
            return RR_ERR_MALFORMED; /* distinct, ascending */
        previous = c.version;
    }
    if (rr_version_check(scheme, current, current_len) != RR_OK)
        return RR_ERR_BAD_VERSION;
    if (!channel_matches(doc, data, device))
        return RR_ERR_WRONG_CHANNEL;

    /* The barrier: the lowest must-pass-through release above the current version. */
    rr_str barrier = {NULL, 0};
    item = barriers + 1;
    for (int k = 0; k < doc->tokens[barriers].size; k++, item = rr_skip(doc, item)) {
        rr_str version = rr_raw(doc, item);
        int order;
        rr_version_compare(scheme, version.ptr, version.len, current, current_len, &order);
        if (order > 0) {
            barrier = version;
            break; /* ascending: the first above is the lowest */
        }
    }

    /* One ascending pass. The target is the highest installable candidate in (current, barrier] whose
     * rollout the device is in; the flags say what lies above the target (they restart at each new
     * target), which is what the reference's descending walk knows when it reaches it. */
    int declined = 0; /* an installable candidate above the target (the device is outside it) */
    int gated = 0;    /* a candidate in range that is not installable */
    int held = 0;     /* a candidate above the barrier */
    candidate target;
    target.object = -1;
    item = candidates + 1;
    for (int k = 0; k < doc->tokens[candidates].size; k++, item = rr_skip(doc, item)) {
        candidate c;
        int order;
        read_candidate(doc, item, device, scheme, &c); /* checked above */
        rr_version_compare(scheme, c.version.ptr, c.version.len, current, current_len, &order);
        if (order <= 0)
            continue; /* never a downgrade, never a reinstall */
        if (barrier.ptr) {
            rr_version_compare(scheme, c.version.ptr, c.version.len, barrier.ptr, barrier.len, &order);
            if (order > 0) {
                held = 1;
                continue;
            }
        }
        int installable = c.full >= 0 || c.delta >= 0;
        if (installable && c.min_version.len) {
            rr_version_compare(scheme, current, current_len, c.min_version.ptr, c.min_version.len, &order);
            installable = order >= 0;
        }
        if (!installable) {
            gated = 1;
            continue;
        }
        if (in_rollout(crypto, c.threshold, device, c.version)) {
            target = c;
            declined = gated = 0;
        } else {
            declined = 1;
        }
    }
    if (target.object < 0) {
        out->reason = declined ? RR_REASON_OUTSIDE_ROLLOUT : (gated || held) ? RR_REASON_BLOCKED : RR_REASON_LATEST;
        return RR_OK;
    }
    out->reason = declined ? RR_REASON_OUTSIDE_ROLLOUT
                           : gated ? RR_REASON_MIN_VERSION : held ? RR_REASON_MUST_PASS_THROUGH : RR_REASON_LATEST;
    out->release = target.object;
    out->version = target.version;
    return read_artifact(doc, target.delta >= 0 ? target.delta : target.full, out);
}

/* ---- detached signatures -------------------------------------------------------------- */

static const char SIG_PREFIX[] = "{\"signatures\":";
static const char SIGNED_MARK[] = ",\"signed\":";

static int is_lower_hex(rr_str s, size_t len)
{
    if (s.len != len)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_digit(s.ptr[i]) && !(s.ptr[i] >= 'a' && s.ptr[i] <= 'f'))
            return 0;
    return 1;
}

rr_status rr_verify_signature(const char *sig, size_t sig_len, jsmntok_t *tokens, unsigned num_tokens,
                              const rr_trusted_key *keys, size_t num_keys, unsigned threshold, const char *path,
                              int64_t now, int64_t min_version, const rr_crypto *crypto, rr_verified *out)
{
    if (!sig || !tokens || !out || !crypto || (num_keys && !keys) || threshold < 1)
        return RR_ERR_ARGUMENT;
    memset(out, 0, sizeof *out);
    /* 0. the parts: the file is {"signatures":[...],"signed":{...}} and a newline */
    size_t len = sig_len;
    if (len && sig[len - 1] == '\n')
        len--;
    size_t prefix = sizeof SIG_PREFIX - 1, mark = sizeof SIGNED_MARK - 1;
    if (len < prefix + 2 || memcmp(sig, SIG_PREFIX, prefix) || sig[len - 2] != '}' || sig[len - 1] != '}')
        return RR_ERR_MALFORMED_SIGNATURE;
    size_t index = len; /* the last ,"signed": */
    for (size_t i = len - mark + 1; i-- > 0;) {
        if (!memcmp(sig + i, SIGNED_MARK, mark)) {
            index = i;
            break;
        }
    }
    if (index == len || index < prefix || index + mark + 1 > len)
        return RR_ERR_MALFORMED_SIGNATURE;
    const char *signed_bytes = sig + index + mark;
    size_t signed_len = len - 1 - (index + mark);

    /* 1. signatures first: nothing in `signed` is read before a pinned key vouches for it */
    rr_doc list;
    rr_status status = parse_into(&list, sig + prefix, index - prefix, tokens, num_tokens, -1);
    if (status == RR_ERR_TOO_MANY_TOKENS)
        return status;
    if (status != RR_OK || tokens[0].type != JSMN_ARRAY)
        return RR_ERR_MALFORMED_SIGNATURE;
    /* a list of {keyid: str, sig: str} */
    int entry = 1;
    for (int k = 0; k < tokens[0].size; k++, entry = rr_skip(&list, entry)) {
        if (tok_type(&list, entry) != JSMN_OBJECT || tok_type(&list, rr_object_get(&list, entry, "keyid")) != JSMN_STRING ||
            tok_type(&list, rr_object_get(&list, entry, "sig")) != JSMN_STRING)
            return RR_ERR_MALFORMED_SIGNATURE;
    }
    /* verified keys are remembered by their index in `keys` (a bit set: at most 64 pinned keys count) */
    uint64_t verified = 0;
    unsigned verified_count = 0, bad = 0;
    entry = 1;
    for (int k = 0; k < tokens[0].size; k++, entry = rr_skip(&list, entry)) {
        int keyid = rr_object_get(&list, entry, "keyid");
        size_t which = num_keys;
        for (size_t j = 0; j < num_keys; j++) {
            if (keys[j].keyid && str_eqz(&list, keyid, keys[j].keyid)) {
                which = j;
                break;
            }
        }
        if (which == num_keys)
            continue; /* unknown */
        if (which < 64 && (verified >> which & 1))
            continue;
        rr_str hex = rr_raw(&list, rr_object_get(&list, entry, "sig"));
        uint8_t signature[64];
        if (!is_lower_hex(hex, 128) || rr_hex_decode(hex.ptr, hex.len, signature, 64) != RR_OK ||
            crypto->ed25519_verify(signature, (const uint8_t *)signed_bytes, signed_len, keys[which].public_key)) {
            bad++;
            continue;
        }
        if (which < 64)
            verified |= UINT64_C(1) << which;
        verified_count++;
    }
    if (verified_count < threshold) {
        if (!verified_count)
            return bad ? RR_ERR_BAD_SIGNATURE : RR_ERR_UNKNOWN_KEY;
        return RR_ERR_THRESHOLD_NOT_MET;
    }
    out->keys_verified = verified_count;

    /* 2. the signed fields */
    rr_doc doc;
    status = parse_into(&doc, signed_bytes, signed_len, tokens, num_tokens, -1);
    if (status == RR_ERR_TOO_MANY_TOKENS)
        return status;
    if (status != RR_OK)
        return RR_ERR_MALFORMED_SIGNATURE;
    if (tokens[0].type != JSMN_OBJECT || !str_eqz(&doc, rr_object_get(&doc, 0, "_type"), "relreg-document"))
        return RR_ERR_WRONG_TYPE;
    int path_tok = rr_object_get(&doc, 0, "path");
    int sha_tok = rr_object_get(&doc, 0, "sha256");
    if (tok_type(&doc, path_tok) != JSMN_STRING || tok_type(&doc, sha_tok) != JSMN_STRING ||
        !get_int(&doc, rr_object_get(&doc, 0, "length"), &out->length) ||
        !get_int(&doc, rr_object_get(&doc, 0, "version"), &out->version) ||
        !get_int(&doc, rr_object_get(&doc, 0, "expires"), &out->expires))
        return RR_ERR_MALFORMED_SIGNATURE;
    rr_str sha = rr_raw(&doc, sha_tok);
    if (!is_lower_hex(sha, 64) || rr_hex_decode(sha.ptr, sha.len, out->sha256, 32) != RR_OK)
        return RR_ERR_MALFORMED_SIGNATURE;
    if (path && !str_eqz(&doc, path_tok, path))
        return RR_ERR_WRONG_PATH;
    if (now != RR_NO_CLOCK && now >= out->expires)
        return RR_ERR_EXPIRED;
    if (out->version < min_version)
        return RR_ERR_ROLLBACK;
    return RR_OK;
}

rr_status rr_verified_check(const rr_verified *verified, const uint8_t *document, size_t len,
                            const rr_crypto *crypto)
{
    if (!verified || (!document && len) || !crypto)
        return RR_ERR_ARGUMENT;
    if (verified->length < 0 || (uint64_t)verified->length != (uint64_t)len)
        return RR_ERR_DIGEST_MISMATCH;
    rr_sha256_ctx ctx;
    uint8_t digest[32];
    crypto->sha256_init(&ctx);
    if (len)
        crypto->sha256_update(&ctx, document, len);
    crypto->sha256_final(&ctx, digest);
    unsigned diff = 0;
    for (int i = 0; i < 32; i++)
        diff |= (unsigned)(digest[i] ^ verified->sha256[i]);
    return diff ? RR_ERR_DIGEST_MISMATCH : RR_OK;
}

/* ---- images --------------------------------------------------------------------------- */

rr_status rr_image_begin(rr_image *image, const rr_crypto *crypto, uint64_t file_size, const uint8_t sha256[32])
{
    if (!image || !crypto || !sha256)
        return RR_ERR_ARGUMENT;
    memset(image, 0, sizeof *image);
    image->crypto = crypto;
    image->expected_size = file_size;
    memcpy(image->expected_sha256, sha256, 32);
    crypto->sha256_init(&image->sha);
    return RR_OK;
}

rr_status rr_image_update(rr_image *image, const void *chunk, size_t len)
{
    if (!image || !image->crypto || (!chunk && len))
        return RR_ERR_ARGUMENT;
    if (image->failed)
        return RR_ERR_IMAGE_TOO_LARGE;
    if (len > image->expected_size - image->received) {
        image->failed = 1;
        return RR_ERR_IMAGE_TOO_LARGE;
    }
    if (len)
        image->crypto->sha256_update(&image->sha, (const uint8_t *)chunk, len);
    image->received += len;
    return RR_OK;
}

rr_status rr_image_finish(rr_image *image)
{
    if (!image || !image->crypto)
        return RR_ERR_ARGUMENT;
    if (image->failed)
        return RR_ERR_IMAGE_TOO_LARGE;
    if (image->received != image->expected_size)
        return RR_ERR_SIZE_MISMATCH;
    image->crypto->sha256_final(&image->sha, image->digest);
    unsigned diff = 0;
    for (int i = 0; i < 32; i++)
        diff |= (unsigned)(image->digest[i] ^ image->expected_sha256[i]);
    return diff ? RR_ERR_IMAGE_DIGEST_MISMATCH : RR_OK;
}
