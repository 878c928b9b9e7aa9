/*
 * pyevent-envoy: the HTTP/1.1 codec's fast head scanner.
 *
 * pe_http1_scan_head() reads one complete head (start line through the
 * empty line) in one pass and writes what the codec needs as NUL-separated
 * pieces, so that Python turns a whole head into lists with one decode and
 * one split instead of one llhttp callback per field.
 *
 * It accepts only a conservative subset of valid heads: a known method, an
 * origin-form target of plain characters, HTTP/1.0 or 1.1, fields of token
 * names and printable ASCII values, at most one all-digit Content-Length.
 * Anything else -- including everything that is invalid -- returns
 * PE_SCAN_DECLINE and the codec parses the head with llhttp as before, so
 * the verdict on every unusual head is llhttp's and the codec's, never this
 * scanner's.  The scanner only has to be right about what it accepts.
 */
#include <stddef.h>
#include <string.h>

#define PE_SCAN_DECLINE (-1)
#define PE_SCAN_NO_ROOM (-2)

/* info[] slots. */
#define PE_SCAN_FIELDS 0     /* number of fields */
#define PE_SCAN_OUT_LEN 1    /* bytes written to out, without the last NUL */
#define PE_SCAN_VERSION 2    /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
#define PE_SCAN_STATUS 3     /* response: the status code */
#define PE_SCAN_FIELD_BYTES 4 /* name and (stripped) value bytes, as Envoy counts them */
#define PE_SCAN_SPECIAL 5    /* PE_SPECIAL_* bits: the fields the codec handles itself */

/* Special fields seen (the codec skips its special-field pass when only
 * the common ones are there).  A second Host or Connection sets its bit
 * twice over: PE_SPECIAL_REPEATED. */
#define PE_SPECIAL_HOST 0x1
#define PE_SPECIAL_CONTENT_LENGTH 0x2
#define PE_SPECIAL_TRANSFER_ENCODING 0x4
#define PE_SPECIAL_CONNECTION 0x8
#define PE_SPECIAL_OTHER 0x10 /* expect, keep-alive, proxy-connection, te, trailer, http2-settings */
#define PE_SPECIAL_REPEATED 0x20

static long special_bit(const char *name, size_t len)
{
    switch (len) {
    case 2:
        return memcmp(name, "te", 2) == 0 ? PE_SPECIAL_OTHER : 0;
    case 4:
        return memcmp(name, "host", 4) == 0 ? PE_SPECIAL_HOST : 0;
    case 6:
        return memcmp(name, "expect", 6) == 0 ? PE_SPECIAL_OTHER : 0;
    case 7:
        return memcmp(name, "trailer", 7) == 0 ? PE_SPECIAL_OTHER : 0;
    case 10:
        if (memcmp(name, "connection", 10) == 0)
            return PE_SPECIAL_CONNECTION;
        return memcmp(name, "keep-alive", 10) == 0 ? PE_SPECIAL_OTHER : 0;
    case 14:
        if (memcmp(name, "content-length", 14) == 0)
            return PE_SPECIAL_CONTENT_LENGTH;
        return memcmp(name, "http2-settings", 14) == 0 ? PE_SPECIAL_OTHER : 0;
    case 16:
        return memcmp(name, "proxy-connection", 16) == 0 ? PE_SPECIAL_OTHER : 0;
    case 17:
        return memcmp(name, "transfer-encoding", 17) == 0 ? PE_SPECIAL_TRANSFER_ENCODING : 0;
    default:
        return 0;
    }
}

/* RFC 9110 tchar. */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
    ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* Target characters accepted here: RFC 3986 unreserved, sub-delims, ':',
 * '@', '/', '?' and '%'.  Others ('#', '"', '<', '\\', '{', bytes >= 0x80,
 * ...) are left to llhttp and the codec's own target checks. */
static int target_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("-._~!$&'()*+,;=:@/?%", c) != NULL;
}

static const char *const methods[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", NULL,
};

/* Length of the known method at p followed by a space, or 0. */
static size_t scan_method(const char *p, size_t len)
{
    for (const char *const *m = methods; *m != NULL; m++) {
        size_t n = strlen(*m);
        if (n < len && memcmp(p, *m, n) == 0 && p[n] == ' ')
            return n;
    }
    return 0;
}

static int scan_version(const char *p, size_t len, long *version)
{
    if (len < 8 || memcmp(p, "HTTP/1.", 7) != 0)
        return 0;
    if (p[7] == '1')
        *version = 1;
    else if (p[7] == '0')
        *version = 0;
    else
        return 0;
    return 1;
}

int pe_http1_scan_head(const char *head, size_t len, int response, char *out, size_t cap, long *info)
{
    const unsigned char *p = (const unsigned char *)head;
    const unsigned char *end = p + len;
    char *o = out;
    char *oend = out + cap;
    long fields = 0, field_bytes = 0, content_lengths = 0, chunked = 0, special = 0;

    /* The start line. */
    if (response) {
        if (!scan_version(head, len, &info[PE_SCAN_VERSION]) || len < 13 || p[8] != ' ')
            return PE_SCAN_DECLINE;
        if (p[9] < '1' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' || p[12] != ' ')
            return PE_SCAN_DECLINE;
        info[PE_SCAN_STATUS] = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        if (info[PE_SCAN_STATUS] == 101)
            return PE_SCAN_DECLINE; /* Switching Protocols: llhttp's upgrade handling decides */
        p += 13;
        while (p < end && ((*p >= 0x20 && *p < 0x7f) || *p == '\t'))
            p++; /* the reason phrase, which nobody reads */
    } else {
        size_t n = scan_method(head, len);
        if (n == 0 || (size_t)(oend - o) < len)
            return n == 0 ? PE_SCAN_DECLINE : PE_SCAN_NO_ROOM;
        memcpy(o, head, n);
        o += n;
        *o++ = '\0';
        p += n + 1;
        if (p >= end || *p != '/')
            return PE_SCAN_DECLINE;
        const unsigned char *t = p;
        while (p < end && target_char(*p))
            p++;
        if (p >= end || *p != ' ')
            return PE_SCAN_DECLINE;
        memcpy(o, t, (size_t)(p - t));
        o += p - t;
        *o++ = '\0';
        field_bytes += p - t; /* Envoy counts the URL against the header limit */
        p++;
        if (!scan_version((const char *)p, (size_t)(end - p), &info[PE_SCAN_VERSION]))
            return PE_SCAN_DECLINE;
        p += 8;
    }
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
        return PE_SCAN_DECLINE;
    p += 2;

    /* The fields, up to the empty line. */
    for (;;) {
        if (end - p < 2)
            return PE_SCAN_DECLINE;
        if (p[0] == '\r' && p[1] == '\n') {
            p += 2;
            break;
        }
        const unsigned char *name = p;
        while (p < end && tchar[*p])
            p++;
        size_t name_len = (size_t)(p - name);
        if (name_len == 0 || p >= end || *p != ':')
            return PE_SCAN_DECLINE; /* includes obs-fold, a space before ':', bare CR/LF */
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const unsigned char *value = p;
        while (p < end && ((*p >= 0x20 && *p < 0x7f) || *p == '\t'))
            p++;
        const unsigned char *value_end = p;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return PE_SCAN_DECLINE;
        p += 2;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
            value_end--;
        size_t value_len = (size_t)(value_end - value);

        if ((size_t)(oend - o) < name_len + value_len + 2)
            return PE_SCAN_NO_ROOM;
        for (size_t i = 0; i < name_len; i++) {
            unsigned char c = name[i];
            *o++ = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        long bit = special_bit(o - name_len, name_len);
        if (bit & special & (PE_SPECIAL_HOST | PE_SPECIAL_CONNECTION))
            special |= PE_SPECIAL_REPEATED;
        special |= bit;
        if (name_len == 14 && memcmp(o - 14, "content-length", 14) == 0) {
            /* llhttp's rules: digits only, no overflow, never twice. */
            if (++content_lengths > 1 || value_len == 0 || value_len > 18)
                return PE_SCAN_DECLINE;
            for (size_t i = 0; i < value_len; i++)
                if (value[i] < '0' || value[i] > '9')
                    return PE_SCAN_DECLINE;
        }
        else if (name_len == 17 && memcmp(o - 17, "transfer-encoding", 17) == 0) {
            /* Only the plain case: one "chunked" (llhttp and the codec agree on it). */
            if (++chunked > 1 || value_len != 7 || memcmp(value, "chunked", 7) != 0)
                return PE_SCAN_DECLINE;
        }
        else if (name_len == 7 && memcmp(o - 7, "upgrade", 7) == 0)
            return PE_SCAN_DECLINE; /* llhttp's upgrade handling decides */
        *o++ = '\0';
        memcpy(o, value, value_len);
        o += value_len;
        *o++ = '\0';
        fields++;
        field_bytes += (long)(name_len + value_len);
    }
    if (p != end)
        return PE_SCAN_DECLINE; /* the caller passes exactly one head */
    if (chunked && (content_lengths || info[PE_SCAN_VERSION] == 0))
        return PE_SCAN_DECLINE; /* framing conflicts: the full parser's errors */
    info[PE_SCAN_FIELDS] = fields;
    info[PE_SCAN_OUT_LEN] = o > out ? (long)(o - out - 1) : 0;
    info[PE_SCAN_FIELD_BYTES] = field_bytes;
    info[PE_SCAN_SPECIAL] = special;
    return 0;
}
