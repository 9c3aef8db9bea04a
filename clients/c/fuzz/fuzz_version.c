/* Version parsing and ordering: two versions separated by a newline; the order must be a total order. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *split = memchr(text, '\n', size);
    size_t alen = split ? (size_t)(split - text) : size;
    const char *b = split ? split + 1 : text;
    size_t blen = split ? size - alen - 1 : size;
    for (int scheme = RR_SCHEME_SEMVER; scheme <= RR_SCHEME_NATURAL; scheme++) {
        int ab, ba, aa;
        rr_version_check((rr_scheme)scheme, text, alen);
        if (rr_version_compare((rr_scheme)scheme, text, alen, b, blen, &ab) != RR_OK)
            continue;
        if (rr_version_compare((rr_scheme)scheme, b, blen, text, alen, &ba) != RR_OK ||
            rr_version_compare((rr_scheme)scheme, text, alen, text, alen, &aa) != RR_OK)
            abort();
        if (ab != -ba || aa != 0 || ab < -1 || ab > 1)
            abort();
    }
    return 0;
}
