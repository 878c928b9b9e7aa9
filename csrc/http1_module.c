/*
 * pyevent-envoy: pyevent_envoy._http1, the HTTP/1.1 codec's heads in C.
 *
 * The codec (pyevent_envoy/http/codec/http1.py) spends most of a plain
 * proxied request on its two heads in and its two heads out.  This module
 * turns a whole head into the codec's lists of str, and a head's fields back
 * into bytes, in one call each.  It is a CPython extension rather than a
 * cffi module because its product is Python objects: cffi could only hand
 * back bytes for Python to decode, split and slice, which is the work being
 * removed.
 *
 * Every function handles the common case only and returns None for anything
 * else, including everything invalid; the codec then takes its general
 * path, which decides (with llhttp) and raises the codec's errors.  So the
 * verdict on every unusual head stays the codec's, and this module only has
 * to be right about what it accepts.  The scanner (http1_scan.c) defines
 * the accepted subset of heads.
 *
 * Functions (all pure: no state, safe from any thread):
 *   scan_head(head, response)
 *       -> (pieces, http11, special, status, fields, field_bytes) | None
 *   parse_request(head, max_count, max_bytes[, head_len])
 *       -> (names, values, keep_alive, length) | None
 *   parse_response(head, max_count, max_bytes[, head_len])
 *       -> (status, names, values, keep_alive, length, chunked) | None
 *   parse_response_start(data, max_count, max_bytes, raw_limit)
 *       -> (status, names, values, keep_alive, length, chunked, head_len) | None
 *       (the head found in data, up to its first empty line)
 *   encode_request(names, values, end_stream) -> (head, method, length) | None
 *   encode_response(line, names, values, end_stream, http11, close)
 *       -> (head, length, close) | None
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "http1_module.h"
#include "http1_scan.h"

/* The scanner's info[] slots (http1_scan.h). */
enum { INFO_FIELDS, INFO_OUT_LEN, INFO_VERSION, INFO_STATUS, INFO_FIELD_BYTES, INFO_SPECIAL, INFO_SIZE = 8 };

#define FAST_REQUEST_SPECIAL (PE_SPECIAL_HOST | PE_SPECIAL_CONTENT_LENGTH | PE_SPECIAL_CONNECTION)
#define FAST_RESPONSE_SPECIAL (PE_SPECIAL_CONTENT_LENGTH | PE_SPECIAL_TRANSFER_ENCODING | PE_SPECIAL_CONNECTION)

/* Heads up to this size are scanned into a stack buffer. */
#define STACK_OUT 4096
#define STACK_SPANS 128

typedef struct {
    const char *p;
    Py_ssize_t n;
} span;

/* Field names and values seen on almost every request or response: one
 * shared (interned) str each instead of a new one per head.  Interned names
 * also make the later dict and list lookups compare by identity. */
static const char *const common_strings[] = {
    ":method", ":path", ":authority", ":status",
    "host", "user-agent", "accept", "accept-encoding", "accept-language", "accept-ranges",
    "authorization", "cache-control", "connection", "content-encoding", "content-length",
    "content-type", "cookie", "date", "etag", "expires", "last-modified", "location",
    "origin", "pragma", "referer", "server", "set-cookie", "vary", "x-forwarded-for",
    "x-forwarded-proto", "x-request-id", "if-none-match", "if-modified-since",
    "x-envoy-upstream-service-time", "x-envoy-expected-rq-timeout-ms",
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "/",
    "keep-alive", "close", "text/plain", "text/html", "application/json",
    "application/octet-stream", "*/*", "gzip", "bytes", "nginx", "envoy",
    NULL,
};
#define N_COMMON (sizeof(common_strings) / sizeof(common_strings[0]) - 1)
static PyObject *common_objects[N_COMMON];
/* The table by length: common_first[n] is the first entry n bytes long,
 * common_next[i] the next entry as long as entry i (-1: none).  A piece is
 * compared only with the few entries of its own length: a head has about
 * twenty pieces, and most (dates, ids, paths) match none. */
#define COMMON_MAX_LEN 40
static int common_first[COMMON_MAX_LEN + 1];
static int common_next[N_COMMON];
enum { COMMON_METHOD, COMMON_PATH, COMMON_AUTHORITY, COMMON_STATUS };

/* "100" .. "599", made when the module loads (never written after). */
static PyObject *status_strings[600];

/* The bytes of str pieces: ASCII (the scanner accepts nothing else). */
static PyObject *make_str(const char *p, Py_ssize_t n)
{
    if (n > 0 && n <= COMMON_MAX_LEN) {
        for (int i = common_first[n]; i >= 0; i = common_next[i]) {
            if (common_strings[i][0] == p[0] && memcmp(common_strings[i], p, (size_t)n) == 0) {
                Py_INCREF(common_objects[i]);
                return common_objects[i];
            }
        }
    }
    return PyUnicode_DecodeLatin1(p, n, NULL);
}

static PyObject *status_string(long status)
{
    if (status < 100 || status > 599)
        return PyUnicode_FromFormat("%ld", status);
    Py_INCREF(status_strings[status]);
    return status_strings[status];
}

/* A scanned head: the scanner's output split into spans (start-line pieces,
 * then name and value per field).  Storage is on the caller's stack unless
 * the head is large. */
typedef struct {
    long info[INFO_SIZE];
    char stack_out[STACK_OUT];
    span stack_spans[STACK_SPANS];
    char *out;
    span *spans;
    Py_ssize_t n_spans;
} scanned_head;

static void scanned_release(scanned_head *s)
{
    if (s->out != s->stack_out)
        PyMem_Free(s->out);
    if (s->spans != s->stack_spans)
        PyMem_Free(s->spans);
}

/* 1 scanned, 0 declined, -1 error set. */
static int scan(const char *head, Py_ssize_t len, int response, scanned_head *s)
{
    s->out = s->stack_out;
    s->spans = s->stack_spans;
    s->n_spans = 0;
    /* The pieces are never longer than the head. */
    size_t cap = (size_t)len + 1;
    if (cap > STACK_OUT) {
        s->out = PyMem_Malloc(cap);
        if (s->out == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    memset(s->info, 0, sizeof(s->info));
    if (pe_http1_scan_head(head, (size_t)len, response, s->out, cap, s->info) != 0)
        return 0;
    Py_ssize_t want = 2 * s->info[INFO_FIELDS] + 2;
    if (want > STACK_SPANS) {
        s->spans = PyMem_Malloc((size_t)want * sizeof(span));
        if (s->spans == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    long out_len = s->info[INFO_OUT_LEN];
    if (out_len == 0 && s->info[INFO_FIELDS] == 0 && response)
        return 1; /* a response without fields: no pieces */
    const char *p = s->out;
    const char *end = s->out + out_len;
    for (;;) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (z == NULL)
            z = end;
        if (s->n_spans == want)
            return 0; /* cannot happen: the scanner counted them */
        s->spans[s->n_spans].p = p;
        s->spans[s->n_spans].n = z - p;
        s->n_spans++;
        if (z >= end)
            break;
        p = z + 1;
    }
    return 1;
}

static int span_is(const span *sp, const char *text, size_t n)
{
    return (size_t)sp->n == n && memcmp(sp->p, text, n) == 0;
}

/* A Connection value's effect on keep-alive: 1 keep, 0 close, -1 not one of
 * the simple values (the codec's token rules decide). */
static int simple_connection(const span *value, int http11, int keep_alive)
{
    char lower[16];
    if (value->n <= 0 || value->n >= (Py_ssize_t)sizeof(lower))
        return -1;
    for (Py_ssize_t i = 0; i < value->n; i++) {
        char c = value->p[i];
        lower[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    size_t n = (size_t)value->n;
    if (n == 5 && memcmp(lower, "close", 5) == 0)
        return 0;
    if (n == 10 && memcmp(lower, "keep-alive", 10) == 0)
        return http11 ? keep_alive : 1;
    if (n == 7 && memcmp(lower, "upgrade", 7) == 0)
        return keep_alive;
    return -1;
}

/* RFC 3986 authority characters, as the codec's _AUTHORITY_CHARS. */
static int valid_authority(const span *host)
{
    for (Py_ssize_t i = 0; i < host->n; i++) {
        unsigned char c = (unsigned char)host->p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (strchr("-._~!$&'()*+,;=:[]%@", c) == NULL || c == 0)
            return 0;
    }
    return 1;
}

/* A tuple of the n new references in items, which it steals; NULL (with
 * every item released) when an item is NULL or the tuple cannot be made.
 * The hot functions return through it rather than Py_BuildValue, which
 * parses its format string on every call. */
static PyObject *pack_stolen(Py_ssize_t n, PyObject **items)
{
    PyObject *tuple = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (items[i] == NULL)
            goto fail;
    tuple = PyTuple_New(n);
    if (tuple == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(tuple, i, items[i]);
    return tuple;
fail:
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(items[i]);
    return NULL;
}

/* Set list[i] = str(span), taking common strings from the table. */
static int put(PyObject *list, Py_ssize_t i, const span *sp)
{
    PyObject *s = make_str(sp->p, sp->n);
    if (s == NULL)
        return -1;
    PyList_SET_ITEM(list, i, s);
    return 0;
}

/* The scanned fields from span ``first`` on into names[k:] and values[k:],
 * but the two at spans ``skip`` and ``skip2`` (-1: none). */
static int put_fields(PyObject *names, PyObject *values, Py_ssize_t k, const scanned_head *s, Py_ssize_t first,
                      Py_ssize_t skip, Py_ssize_t skip2)
{
    for (Py_ssize_t i = first; i < s->n_spans; i += 2) {
        if (i == skip || i == skip2)
            continue;
        if (put(names, k, &s->spans[i]) < 0 || put(values, k, &s->spans[i + 1]) < 0)
            return -1;
        k++;
    }
    return 0;
}

static int put_common(PyObject *list, Py_ssize_t i, int which)
{
    Py_INCREF(common_objects[which]);
    PyList_SET_ITEM(list, i, common_objects[which]);
    return 0;
}

static PyObject *scan_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "scan_head(head: bytes, response: int)");
        return NULL;
    }
    int response = PyObject_IsTrue(args[1]);
    if (response < 0)
        return NULL;
    scanned_head s;
    int rc = scan(PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), response, &s);
    if (rc <= 0) {
        scanned_release(&s);
        if (rc < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *pieces = PyList_New(s.n_spans);
    if (pieces == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < s.n_spans; i++)
        if (put(pieces, i, &s.spans[i]) < 0)
            goto fail;
    PyObject *result = Py_BuildValue(
        "(NNllll)", pieces, PyBool_FromLong(s.info[INFO_VERSION] == 1), s.info[INFO_SPECIAL],
        s.info[INFO_STATUS], s.info[INFO_FIELDS], s.info[INFO_FIELD_BYTES]);
    scanned_release(&s);
    return result;
fail:
    Py_XDECREF(pieces);
    scanned_release(&s);
    return NULL;
}

/* The limits argument pair (max_count, max_bytes): 0, or -1 with an error set. */
static int limits(PyObject *const *args, long *max_count, long *max_bytes)
{
    *max_count = PyLong_AsLong(args[0]);
    if (*max_count == -1 && PyErr_Occurred())
        return -1;
    *max_bytes = PyLong_AsLong(args[1]);
    if (*max_bytes == -1 && PyErr_Occurred())
        return -1;
    return 0;
}

/* Scan the head that is the first len bytes of data: 1 scanned within the
 * limits, 0 declined, -1 error set. */
static int scan_within(const char *data, Py_ssize_t len, long max_count, long max_bytes, int response,
                       scanned_head *s)
{
    int rc = scan(data, len, response, s);
    if (rc > 0 && (s->info[INFO_FIELDS] > max_count || s->info[INFO_FIELD_BYTES] > max_bytes))
        return 0; /* over a limit: the general path's 431 or 502 */
    return rc;
}

/* parse_request's and parse_response's arguments, then the scan: 1 scanned
 * within the limits, 0 declined, -1 error set. */
static int scan_limited(PyObject *const *args, Py_ssize_t nargs, int response, scanned_head *s)
{
    s->out = s->stack_out;
    s->spans = s->stack_spans;
    if ((nargs != 3 && nargs != 4) || !PyBytes_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "%s(data: bytes, max_count: int, max_bytes: int[, head_len: int])",
                     response ? "parse_response" : "parse_request");
        return -1;
    }
    long max_count, max_bytes;
    if (limits(args + 1, &max_count, &max_bytes) < 0)
        return -1;
    /* The head is the first head_len bytes of data (all of it by default):
     * the caller can pass a whole read, head and body, without a copy. */
    Py_ssize_t len = PyBytes_GET_SIZE(args[0]);
    if (nargs == 4) {
        Py_ssize_t head_len = PyLong_AsSsize_t(args[3]);
        if (head_len == -1 && PyErr_Occurred())
            return -1;
        if (head_len < 0 || head_len > len) {
            PyErr_SetString(PyExc_ValueError, "head_len out of range");
            return -1;
        }
        len = head_len;
    }
    return scan_within(PyBytes_AS_STRING(args[0]), len, max_count, max_bytes, response, s);
}

/* A Content-Length value: digits only, at most 18 (the scanner checked). */
static long long span_digits(const span *v)
{
    long long n = 0;
    for (Py_ssize_t i = 0; i < v->n; i++)
        n = n * 10 + (v->p[i] - '0');
    return n;
}

/* What parse_request and parse_response return when they decline. */
static PyObject *declined(scanned_head *s, int rc)
{
    scanned_release(s);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *failed(scanned_head *s, PyObject *names, PyObject *values)
{
    Py_XDECREF(names);
    Py_XDECREF(values);
    scanned_release(s);
    return NULL;
}

/* The common request: HTTP/1.1, an origin-form target, one valid Host, at
 * most one Content-Length and one simple Connection, no other field the
 * codec handles itself.  names/values start with :method, :path and
 * :authority; Host and Connection are taken out. */
PyObject *pe_http1_parse_request(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    scanned_head s;
    PyObject *names = NULL, *values = NULL;
    int rc = scan_limited(args, nargs, 0, &s);
    if (rc <= 0)
        return declined(&s, rc);
    long special = s.info[INFO_SPECIAL];
    if (s.info[INFO_VERSION] != 1 || !(special & PE_SPECIAL_HOST) || (special & ~FAST_REQUEST_SPECIAL))
        return declined(&s, 0);
    /* Spans: method, target, then name/value pairs. */
    Py_ssize_t host = -1, connection = -1, content_length = -1;
    for (Py_ssize_t i = 2; i < s.n_spans; i += 2) {
        const span *name = &s.spans[i];
        if (span_is(name, "host", 4))
            host = i;
        else if (span_is(name, "connection", 10))
            connection = i;
        else if (span_is(name, "content-length", 14))
            content_length = i;
    }
    if (host < 0 || !valid_authority(&s.spans[host + 1]))
        return declined(&s, 0);
    int keep_alive = 1;
    if (connection >= 0 && (keep_alive = simple_connection(&s.spans[connection + 1], 1, 1)) < 0)
        return declined(&s, 0);
    long long length = content_length >= 0 ? span_digits(&s.spans[content_length + 1]) : 0;
    Py_ssize_t fields = (s.n_spans - 2) / 2 - 1 - (connection >= 0);
    names = PyList_New(3 + fields);
    values = PyList_New(3 + fields);
    if (names == NULL || values == NULL)
        return failed(&s, names, values);
    put_common(names, 0, COMMON_METHOD);
    put_common(names, 1, COMMON_PATH);
    put_common(names, 2, COMMON_AUTHORITY);
    if (put(values, 0, &s.spans[0]) < 0 || put(values, 1, &s.spans[1]) < 0 || put(values, 2, &s.spans[host + 1]) < 0)
        return failed(&s, names, values);
    if (put_fields(names, values, 3, &s, 2, host, connection) < 0)
        return failed(&s, names, values);
    scanned_release(&s);
    PyObject *items[] = {names, values, PyBool_FromLong(keep_alive), PyLong_FromLongLong(length)};
    return pack_stolen(4, items);
}

/* The common final response: status 200-599, at most one Content-Length or
 * one "chunked" Transfer-Encoding, at most one simple Connection, no other
 * field the codec handles itself.  names/values start with :status;
 * Connection and Transfer-Encoding are taken out.  length is -1 without a
 * Content-Length. */
/* parse_response's result for a scanned head, with head_len appended when
 * it is >= 0 (parse_response_start); declined and released like the rest. */
static PyObject *response_result(scanned_head *s, Py_ssize_t head_len)
{
    PyObject *names = NULL, *values = NULL;
    long special = s->info[INFO_SPECIAL];
    long status = s->info[INFO_STATUS];
    int http11 = s->info[INFO_VERSION] == 1;
    if (status < 200 || (special & ~FAST_RESPONSE_SPECIAL))
        return declined(s, 0);
    Py_ssize_t connection = -1, content_length = -1, transfer_encoding = -1;
    for (Py_ssize_t i = 0; i < s->n_spans; i += 2) {
        const span *name = &s->spans[i];
        if (span_is(name, "connection", 10)) {
            if (connection >= 0)
                return declined(s, 0); /* a second one: the token rules */
            connection = i;
        }
        else if (span_is(name, "content-length", 14))
            content_length = i;
        else if (span_is(name, "transfer-encoding", 17))
            transfer_encoding = i; /* exactly one "chunked", HTTP/1.1, no Content-Length: scanned */
    }
    int keep_alive = http11;
    if (connection >= 0 && (keep_alive = simple_connection(&s->spans[connection + 1], http11, keep_alive)) < 0)
        return declined(s, 0);
    long long length = content_length >= 0 ? span_digits(&s->spans[content_length + 1]) : -1;
    Py_ssize_t fields = s->n_spans / 2 - (connection >= 0) - (transfer_encoding >= 0);
    names = PyList_New(1 + fields);
    values = PyList_New(1 + fields);
    if (names == NULL || values == NULL)
        return failed(s, names, values);
    put_common(names, 0, COMMON_STATUS);
    PyObject *code = status_string(status);
    if (code == NULL)
        return failed(s, names, values);
    PyList_SET_ITEM(values, 0, code);
    if (put_fields(names, values, 1, s, 0, connection, transfer_encoding) < 0)
        return failed(s, names, values);
    scanned_release(s);
    PyObject *items[] = {PyLong_FromLong(status), names, values, PyBool_FromLong(keep_alive),
                         PyLong_FromLongLong(length), PyBool_FromLong(transfer_encoding >= 0),
                         head_len >= 0 ? PyLong_FromSsize_t(head_len) : NULL};
    return pack_stolen(head_len >= 0 ? 7 : 6, items);
}

static PyObject *parse_response(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    scanned_head s;
    int rc = scan_limited(args, nargs, 1, &s);
    if (rc <= 0)
        return declined(&s, rc);
    return response_result(&s, -1);
}

/* The first "\r\n\r\n" in data[0:len], or NULL.  memchr() to each CR:
 * a head has one per line, and glibc's memchr is vectorized where its
 * memmem is not (a third of the cost on a typical response head). */
static const char *find_blank_line(const char *data, Py_ssize_t len)
{
    if (len < 4)
        return NULL;
    const char *p = data, *last = data + len - 3; /* a match starts before last */
    while (p < last) {
        const char *cr = memchr(p, '\r', (size_t)(last - p));
        if (cr == NULL)
            return NULL;
        if (cr[1] == '\n' && cr[2] == '\r' && cr[3] == '\n')
            return cr;
        p = cr + 1;
    }
    return NULL;
}

/* parse_response_start(data, max_count, max_bytes, raw_limit)
 *
 * A read that starts with a response head, body bytes possibly after it:
 * the head is data up to its first empty line, which must end within
 * raw_limit bytes.  Returns parse_response's tuple plus the head's length,
 * or None (no empty line within the limit, or declined). */
PyObject *pe_http1_parse_response_start(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    scanned_head s;
    s.out = s.stack_out;
    s.spans = s.stack_spans;
    if (nargs != 4 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "parse_response_start(data: bytes, max_count: int, max_bytes: int, raw_limit: int)");
        return NULL;
    }
    long max_count, max_bytes;
    if (limits(args + 1, &max_count, &max_bytes) < 0)
        return NULL;
    Py_ssize_t raw_limit = PyLong_AsSsize_t(args[3]);
    if (raw_limit == -1 && PyErr_Occurred())
        return NULL;
    const char *data = PyBytes_AS_STRING(args[0]);
    Py_ssize_t len = PyBytes_GET_SIZE(args[0]);
    if (len > raw_limit)
        len = raw_limit;
    const char *blank = find_blank_line(data, len);
    if (blank == NULL)
        Py_RETURN_NONE;
    Py_ssize_t head_len = blank - data + 4;
    int rc = scan_within(data, head_len, max_count, max_bytes, 1, &s);
    if (rc <= 0)
        return declined(&s, rc);
    return response_result(&s, head_len);
}

/* Latin-1 bytes of a str: its own buffer when it is a one-byte string. */
static const char *latin1(PyObject *s, Py_ssize_t *n)
{
    if (!PyUnicode_Check(s))
        return NULL;
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) < 0) {
        PyErr_Clear(); /* declined: the general path meets the same error */
        return NULL;
    }
#endif
    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND)
        return NULL;
    *n = PyUnicode_GET_LENGTH(s);
    return (const char *)PyUnicode_1BYTE_DATA(s);
}

static void append(char **o, const char *p, Py_ssize_t n)
{
    memcpy(*o, p, (size_t)n);
    *o += n;
}

/* "name: value\r\n" for names[start:end], each already checked by latin1(). */
static void append_fields(char **o, PyObject *names, PyObject *values, Py_ssize_t start, Py_ssize_t end)
{
    for (Py_ssize_t i = start; i < end; i++) {
        Py_ssize_t a, b;
        const char *name = latin1(PyList_GET_ITEM(names, i), &a);
        const char *value = latin1(PyList_GET_ITEM(values, i), &b);
        append(o, name, a);
        append(o, ": ", 2);
        append(o, value, b);
        append(o, "\r\n", 2);
    }
}

/* RFC 9110 tchar, for a method. */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* The hop-by-hop fields (the codec's _HOP_BY_HOP), which an encoder writes
 * itself or drops. */
static int hop_by_hop(const char *name, Py_ssize_t n)
{
    switch (n) {
    case 2:
        return memcmp(name, "te", 2) == 0;
    case 7:
        return memcmp(name, "trailer", 7) == 0 || memcmp(name, "upgrade", 7) == 0;
    case 10:
        return memcmp(name, "connection", 10) == 0 || memcmp(name, "keep-alive", 10) == 0;
    case 16:
        return memcmp(name, "proxy-connection", 16) == 0;
    case 17:
        return memcmp(name, "transfer-encoding", 17) == 0;
    default:
        return 0;
    }
}

/* What a request head's encoder writes itself (the codec's
 * _REQUEST_ENCODE_SKIP: the hop-by-hop fields and Host). */
static int request_skips(const char *name, Py_ssize_t n)
{
    return hop_by_hop(name, n) || (n == 4 && memcmp(name, "host", 4) == 0);
}

/* A Content-Length value as the codec's encoders take it (decimal digits);
 * -1 for anything else, or more digits than C holds. */
static long long content_length(const char *v, Py_ssize_t n)
{
    if (n == 0 || n > 18)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return -1;
    span digits = {v, n};
    return span_digits(&digits);
}

/* Methods whose empty body goes without "content-length: 0" (the codec's
 * _BODILESS_METHODS; CONNECT never comes here). */
static int bodiless(const char *m, Py_ssize_t n)
{
    return (n == 3 && memcmp(m, "GET", 3) == 0) || (n == 4 && memcmp(m, "HEAD", 4) == 0)
        || (n == 6 && memcmp(m, "DELETE", 6) == 0) || (n == 7 && memcmp(m, "OPTIONS", 7) == 0)
        || (n == 5 && memcmp(m, "TRACE", 5) == 0);
}

/* Walk an outgoing head's fields (a HeaderMap's lists): every name and value
 * a latin-1 str, the pseudo-headers first (*start is where they end), no
 * field ``skips`` names, at most one Content-Length (digits: *length, else
 * -3).  *total gets the bytes "name: value\r\n" takes for the regular
 * fields.  0 when the head is not one C builds. */
static int walk_fields(PyObject *names, PyObject *values, int (*skips)(const char *, Py_ssize_t),
                       Py_ssize_t *start, Py_ssize_t *total, long long *length)
{
    Py_ssize_t n = PyList_GET_SIZE(names);
    if (PyList_GET_SIZE(values) != n)
        return 0;
    *start = 0;
    *total = 0;
    *length = -3;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t a, b;
        const char *name = latin1(PyList_GET_ITEM(names, i), &a);
        const char *value = latin1(PyList_GET_ITEM(values, i), &b);
        if (name == NULL || value == NULL || a == 0)
            return 0;
        if (name[0] == ':') {
            if (i != *start)
                return 0; /* pseudo-headers come first */
            *start = i + 1;
            continue;
        }
        if (skips(name, a))
            return 0;
        if (a == 14 && memcmp(name, "content-length", 14) == 0) {
            if (*length != -3 || (*length = content_length(value, b)) < 0)
                return 0;
        }
        *total += a + b + 4;
    }
    return 1;
}

/* The common request head, from a HeaderMap's lists: a valid :method other
 * than CONNECT, a visible-ASCII :path, a valid :authority, no hop-by-hop or
 * Host field, at most one Content-Length (digits).  Returns the head, the
 * method (the str given) and the body's length: the Content-Length, 0 for
 * a request that ends with its headers, -1 for a chunked body.  None for
 * anything else: the codec's general path then encodes it, or raises. */
PyObject *pe_http1_encode_request(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "encode_request(names: list, values: list, end_stream: bool)");
        return NULL;
    }
    PyObject *names = args[0], *values = args[1];
    int end_stream = PyObject_IsTrue(args[2]);
    if (end_stream < 0)
        return NULL;
    Py_ssize_t start, total;
    long long length;
    if (!walk_fields(names, values, request_skips, &start, &total, &length))
        Py_RETURN_NONE;
    PyObject *method_obj = NULL;
    const char *method = NULL, *path = NULL, *authority = NULL;
    Py_ssize_t method_n = 0, path_n = 0, authority_n = 0;
    for (Py_ssize_t i = 0; i < start; i++) {
        Py_ssize_t a, b;
        const char *name = latin1(PyList_GET_ITEM(names, i), &a);
        const char *value = latin1(PyList_GET_ITEM(values, i), &b);
        if (a == 7 && memcmp(name, ":method", 7) == 0 && method == NULL) {
            method = value, method_n = b;
            method_obj = PyList_GET_ITEM(values, i);
        }
        else if (a == 5 && memcmp(name, ":path", 5) == 0 && path == NULL)
            path = value, path_n = b;
        else if (a == 10 && memcmp(name, ":authority", 10) == 0 && authority == NULL)
            authority = value, authority_n = b;
    }
    if (method == NULL || method_n == 0 || path == NULL || path_n == 0 || authority == NULL)
        Py_RETURN_NONE;
    if (method_n == 7 && memcmp(method, "CONNECT", 7) == 0)
        Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < method_n; i++)
        if (!is_tchar((unsigned char)method[i]))
            Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < path_n; i++)
        if ((unsigned char)path[i] <= 0x20 || (unsigned char)path[i] >= 0x7f)
            Py_RETURN_NONE;
    span host = {authority, authority_n};
    if (!valid_authority(&host))
        Py_RETURN_NONE;
    const char *tail;
    if (length >= 0)
        tail = "\r\n";
    else if (end_stream) {
        length = 0;
        tail = bodiless(method, method_n) ? "\r\n" : "content-length: 0\r\n\r\n";
    }
    else {
        length = -1;
        tail = "transfer-encoding: chunked\r\n\r\n";
    }
    Py_ssize_t tail_n = (Py_ssize_t)strlen(tail);
    /* "M P HTTP/1.1\r\nhost: A\r\n" */
    total += method_n + 1 + path_n + 11 + 6 + authority_n + 2 + tail_n;
    PyObject *head = PyBytes_FromStringAndSize(NULL, total);
    if (head == NULL)
        return NULL;
    char *o = PyBytes_AS_STRING(head);
    append(&o, method, method_n);
    *o++ = ' ';
    append(&o, path, path_n);
    append(&o, " HTTP/1.1\r\nhost: ", 17);
    append(&o, authority, authority_n);
    append(&o, "\r\n", 2);
    append_fields(&o, names, values, start, PyList_GET_SIZE(names));
    append(&o, tail, tail_n);
    Py_INCREF(method_obj);
    PyObject *items[] = {head, method_obj, PyLong_FromLongLong(length)};
    return pack_stolen(3, items);
}

/* The common final response head (status 200-599 but 204 and 304, to a
 * request that was neither HEAD nor a tunnel: the caller checks): no
 * hop-by-hop field, at most one Content-Length (digits).  ``line`` is the
 * status line; ``close`` whether the connection ends after the response.
 * Returns the head, the body's framing (its length, -1 chunked, -2 until the
 * close) and ``close`` after it.  None for anything else. */
PyObject *pe_http1_encode_response(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyList_Check(args[1]) || !PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "encode_response(line: str, names: list, values: list, end_stream, http11, close)");
        return NULL;
    }
    PyObject *names = args[1], *values = args[2];
    int end_stream = PyObject_IsTrue(args[3]), http11 = PyObject_IsTrue(args[4]), close = PyObject_IsTrue(args[5]);
    if (end_stream < 0 || http11 < 0 || close < 0)
        return NULL;
    Py_ssize_t line_n, start, total;
    long long length;
    const char *line = latin1(args[0], &line_n);
    if (line == NULL || !walk_fields(names, values, hop_by_hop, &start, &total, &length))
        Py_RETURN_NONE;
    total += line_n;
    const char *framing = "";
    if (length >= 0)
        ;
    else if (end_stream) {
        length = 0;
        framing = "content-length: 0\r\n";
    }
    else if (http11)
        length = -1;
    else {
        length = -2; /* an HTTP/1.0 client and no length: the close ends the body */
        close = 1;
    }
    /* Framing last, after Connection, as Envoy's codec writes it. */
    const char *connection = close ? "connection: close\r\n" : (http11 ? "" : "connection: keep-alive\r\n");
    const char *end = length == -1 ? "transfer-encoding: chunked\r\n\r\n" : "\r\n";
    Py_ssize_t framing_n = (Py_ssize_t)strlen(framing), connection_n = (Py_ssize_t)strlen(connection),
               end_n = (Py_ssize_t)strlen(end);
    total += framing_n + connection_n + end_n;
    PyObject *head = PyBytes_FromStringAndSize(NULL, total);
    if (head == NULL)
        return NULL;
    char *o = PyBytes_AS_STRING(head);
    append(&o, line, line_n);
    append_fields(&o, names, values, start, PyList_GET_SIZE(names));
    append(&o, framing, framing_n);
    append(&o, connection, connection_n);
    append(&o, end, end_n);
    PyObject *items[] = {head, PyLong_FromLongLong(length), PyBool_FromLong(close)};
    return pack_stolen(3, items);
}

static PyMethodDef methods[] = {
    {"scan_head", (PyCFunction)(void (*)(void))scan_head, METH_FASTCALL,
     "scan_head(head, response) -> (pieces, http11, special, status, fields, field_bytes) | None"},
    {"parse_request", (PyCFunction)(void (*)(void))pe_http1_parse_request, METH_FASTCALL,
     "parse_request(head, max_count, max_bytes[, head_len]) -> (names, values, keep_alive, length) | None"},
    {"parse_response", (PyCFunction)(void (*)(void))parse_response, METH_FASTCALL,
     "parse_response(head, max_count, max_bytes[, head_len]) -> (status, names, values, keep_alive, length, chunked) | None"},
    {"parse_response_start", (PyCFunction)(void (*)(void))pe_http1_parse_response_start, METH_FASTCALL,
     "parse_response_start(data, max_count, max_bytes, raw_limit) -> parse_response's tuple + (head_len,) | None"},
    {"encode_request", (PyCFunction)(void (*)(void))pe_http1_encode_request, METH_FASTCALL,
     "encode_request(names, values, end_stream) -> (head, method, length) | None"},
    {"encode_response", (PyCFunction)(void (*)(void))pe_http1_encode_response, METH_FASTCALL,
     "encode_response(line, names, values, end_stream, http11, close) -> (head, length, close) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pyevent_envoy._http1",
    "The HTTP/1.1 codec's heads in C: scan and build the common heads in one call.",
    -1,
    methods,
};

PyMODINIT_FUNC PyInit__http1(void)
{
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
#ifdef Py_GIL_DISABLED
    PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    for (size_t n = 0; n <= COMMON_MAX_LEN; n++)
        common_first[n] = -1;
    for (int i = (int)N_COMMON - 1; i >= 0; i--) {
        if (common_objects[i] == NULL) {
            PyObject *s = PyUnicode_InternFromString(common_strings[i]);
            if (s == NULL) {
                Py_DECREF(m);
                return NULL;
            }
            common_objects[i] = s;
        }
        /* Chained in table order (built backwards); longer entries are never looked up. */
        size_t n = strlen(common_strings[i]);
        common_next[i] = -1;
        if (n <= COMMON_MAX_LEN) {
            common_next[i] = common_first[n];
            common_first[n] = i;
        }
    }
    for (long status = 100; status < 600; status++) {
        if (status_strings[status] == NULL) {
            PyObject *s = PyUnicode_FromFormat("%ld", status);
            if (s == NULL) {
                Py_DECREF(m);
                return NULL;
            }
            PyUnicode_InternInPlace(&s);
            status_strings[status] = s;
        }
    }
    if (PyModule_AddIntConstant(m, "SPECIAL_HOST", PE_SPECIAL_HOST) < 0
        || PyModule_AddIntConstant(m, "SPECIAL_CONTENT_LENGTH", PE_SPECIAL_CONTENT_LENGTH) < 0
        || PyModule_AddIntConstant(m, "SPECIAL_TRANSFER_ENCODING", PE_SPECIAL_TRANSFER_ENCODING) < 0
        || PyModule_AddIntConstant(m, "SPECIAL_CONNECTION", PE_SPECIAL_CONNECTION) < 0
        || PyModule_AddIntConstant(m, "SPECIAL_OTHER", PE_SPECIAL_OTHER) < 0
        || PyModule_AddIntConstant(m, "SPECIAL_REPEATED", PE_SPECIAL_REPEATED) < 0
        || pe_http1_codec_init(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
