/*
 * pyevent-envoy: the HTTP/1.1 codec's per-request methods, part of
 * pyevent_envoy._http1.
 *
 * A proxied request passes through the codec four times: the request comes
 * in (the server codec's dispatch), goes out (the request encoder), its
 * response comes in (the client codec's dispatch) and goes out (the response
 * encoder).  For the common exchange each step is one call of this module's
 * head functions plus bookkeeping on the codec's attributes; the
 * bookkeeping, as Python, cost more than the heads.  bind_codec() installs
 * these C methods on the classes of pyevent_envoy/http/codec/http1.py:
 *
 *   ServerConnectionImpl.dispatch(data), ._on_response_complete(encoder)
 *   ClientConnectionImpl.dispatch(data), .new_stream(response_decoder)
 *   ResponseEncoderImpl.encode_headers(headers, end_stream)
 *   RequestEncoderImpl.encode_headers(headers, end_stream)
 *   ResponseEncoderImpl.encode_data(data, end_stream)
 *   RequestEncoderImpl.encode_data(data, end_stream)
 *
 * Each takes the common case only and hands everything else, unchanged, to
 * the class's general Python method (dispatch: _dispatch; encode_headers:
 * _encode_headers_general; encode_data: _encode_data_general; new_stream:
 * _new_stream_general), which also raises every error.  The server's
 * dispatch opens a bodiless request's stream itself, making its encoder as
 * ResponseEncoderImpl.__init__ does; _on_response_complete is whole.  So this file only has to be right about what it
 * takes: a head the scanner accepts, arriving whole in one read, a body
 * framed by Content-Length; see each method for its exact conditions.
 * Attributes are the classes' __slots__, read in place (slots.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "http1_module.h"
#include "slots.h"

/* The codec's states and body modes (http1.py: _HEAD, _BODY ... _MODE_RAW). */
static long st_head, st_body, st_idle, st_closed, st_error;
static long mode_none, mode_length, mode_chunked, mode_raw;

/* Slot offsets: the codecs' shared base, then each side's own. */
static struct {
    Py_ssize_t sink, state, pending, processing, paused, should_close, remaining, body_parts, max_head_bytes,
        max_head_count, raw_head_limit, settings;
} codec_at;
static struct {
    Py_ssize_t stream, decoder, eof, callbacks;
} server_at;
static struct {
    Py_ssize_t stream, decoder, response_close, deferred_head;
} client_at;
/* The encoders' shared fields, then each one's own. */
static struct {
    Py_ssize_t mode, remaining, started, complete, close, conn, sink;
} encoder_at;
static struct {
    Py_ssize_t protocol, special, keep_alive, upgrade, is_head_request, is_connect_request, expect_continue,
        request_complete, sent_100;
} response_at;
static struct {
    Py_ssize_t method, is_head_request, is_connect_request, upgrade;
} request_at;
static struct {
    Py_ssize_t names, values;
} headers_at;

static PyTypeObject *request_encoder_type, *response_encoder_type, *headers_type;
static PyObject *empty_tuple, *empty_str;
static PyObject *trusted_headers; /* HeaderMap._trusted(names, values) */
static PyObject *status_by_value; /* {"200": (200, "HTTP/1.1 200 OK\r\n"), ...} */
static PyObject *http11;          /* "HTTP/1.1" */
static PyObject *codec_protocol_error;
static PyObject *small_ints[10];  /* states and modes as objects */
static PyObject *str_head;        /* "HEAD" */

static PyObject *s_dispatch, *s_start_stream, *s_fail, *s_end_with_headers, *s_parse, *s_decode_headers,
    *s_decode_data, *s_encode_headers_general, *s_encode_data_general, *s_on_encode_complete, *s_on_request_complete,
    *s_on_response_complete, *s_new_stream, *s_new_stream_general, *s_closed_after_eof, *s_resume, *s_auto_resume;

/* small helpers */

static PyObject *int_object(long value)
{
    return value >= 0 && value < 10 ? Py_NewRef(small_ints[value]) : PyLong_FromLong(value);
}

/* A slot holding a small int (a state or a mode): its value, or -1 with an
 * exception set.  -2: not an int (the caller declines). */
static long int_slot(PyObject *obj, Py_ssize_t offset, const char *name)
{
    PyObject *value = pe_slot_get(obj, offset, name);
    if (value == NULL)
        return -1;
    if (!PyLong_CheckExact(value))
        return -2;
    return PyLong_AsLong(value);
}

static Py_ssize_t ssize_slot(PyObject *obj, Py_ssize_t offset, const char *name)
{
    PyObject *value = pe_slot_get(obj, offset, name);
    return value == NULL ? -1 : PyLong_AsSsize_t(value);
}

static void put_bool(PyObject *obj, Py_ssize_t offset, int value)
{
    pe_slot_put(obj, offset, Py_NewRef(value ? Py_True : Py_False));
}

static int put_int(PyObject *obj, Py_ssize_t offset, long value)
{
    PyObject *v = int_object(value);
    if (v == NULL)
        return -1;
    pe_slot_put(obj, offset, v);
    return 0;
}

static int put_ssize(PyObject *obj, Py_ssize_t offset, Py_ssize_t value)
{
    PyObject *v = PyLong_FromSsize_t(value);
    if (v == NULL)
        return -1;
    pe_slot_put(obj, offset, v);
    return 0;
}

/* Whether a bytearray (or anything) slot is empty: 1 empty, 0 not, -1 error. */
static int slot_empty(PyObject *obj, Py_ssize_t offset, const char *name)
{
    PyObject *value = pe_slot_get(obj, offset, name);
    if (value == NULL)
        return -1;
    if (PyByteArray_CheckExact(value))
        return PyByteArray_GET_SIZE(value) == 0;
    int t = pe_truth(value);
    return t < 0 ? -1 : !t;
}

/* Discard everything a bytearray or list slot holds (the parse loop's
 * _pending.clear() and _body_parts.clear()). */
static int clear_slot(PyObject *obj, Py_ssize_t offset, const char *name)
{
    PyObject *value = pe_slot_get(obj, offset, name);
    if (value == NULL)
        return -1;
    PyObject *r = PyObject_CallMethod(value, "clear", NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* call(callable, a, b) */
static PyObject *call2(PyObject *callable, PyObject *a, PyObject *b)
{
    PyObject *args[3] = {NULL, a, b};
    return PyObject_Vectorcall(callable, args + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static int run1(PyObject *callable, PyObject *a)
{
    PyObject *args[2] = {NULL, a};
    PyObject *r = PyObject_Vectorcall(callable, args + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The parse loop's error protocol, after a callback raised (see
 * _ConnectionBase._parse): a CodecProtocolError is the codec's own verdict
 * and goes to _fail(); anything else leaves the codec in _ERROR, with its
 * input dropped, and propagates.  Returns 0 when the error was handled. */
static int on_callback_error(PyObject *self)
{
    if (PyErr_ExceptionMatches(codec_protocol_error)) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb != NULL && value != NULL)
            PyException_SetTraceback(value, tb);
        int r = pe_run_method(self, s_fail, 1, value, NULL, NULL);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return r;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    int r = put_int(self, codec_at.state, st_error);
    if (r == 0)
        r = clear_slot(self, codec_at.pending, "_pending");
    if (r == 0)
        r = clear_slot(self, codec_at.body_parts, "_body_parts");
    if (r < 0) {
        /* The original error wins; this one is reported as unraisable. */
        PyErr_WriteUnraisable(self);
    }
    PyErr_Restore(type, value, tb);
    return -1;
}

/* Whether the codec may take a read in one step: a head awaited, nothing
 * buffered, not paused or inside a callback.  1 yes, 0 no, -1 error. */
static int codec_idle_for_head(PyObject *self)
{
    long state = int_slot(self, codec_at.state, "_state");
    if (state == -1 && PyErr_Occurred())
        return -1;
    if (state != st_head)
        return 0;
    int t = slot_empty(self, codec_at.pending, "_pending");
    if (t <= 0)
        return t;
    t = pe_slot_truth(self, codec_at.paused, "paused");
    if (t != 0)
        return t < 0 ? -1 : 0;
    t = pe_slot_truth(self, codec_at.processing, "_processing");
    if (t != 0)
        return t < 0 ? -1 : 0;
    return 1;
}

/* The head limits, as the head functions take them. */
static int head_limits(PyObject *self, PyObject **count, PyObject **bytes)
{
    *count = pe_slot_get(self, codec_at.max_head_count, "_max_head_count");
    *bytes = *count == NULL ? NULL : pe_slot_get(self, codec_at.max_head_bytes, "_max_head_bytes");
    return *bytes == NULL ? -1 : 0;
}

/* A new ResponseEncoderImpl, as its __init__ makes it (http1.py). */
static PyObject *new_response_encoder(PyObject *conn, PyObject *protocol, int keep_alive, int is_head)
{
    PyObject *encoder = response_encoder_type->tp_new(response_encoder_type, empty_tuple, NULL);
    if (encoder == NULL)
        return NULL;
    PyObject *sink = pe_slot_get(conn, codec_at.sink, "_sink");
    if (sink == NULL) {
        Py_DECREF(encoder);
        return NULL;
    }
    pe_slot_put(encoder, encoder_at.conn, Py_NewRef(conn));
    pe_slot_put(encoder, encoder_at.sink, Py_NewRef(sink));
    pe_slot_put(encoder, response_at.protocol, Py_NewRef(protocol));
    put_bool(encoder, response_at.keep_alive, keep_alive);
    put_bool(encoder, response_at.upgrade, 0);
    put_bool(encoder, response_at.is_head_request, is_head);
    put_bool(encoder, response_at.is_connect_request, 0);
    put_bool(encoder, response_at.expect_continue, 0);
    put_bool(encoder, response_at.request_complete, 0);
    put_bool(encoder, encoder_at.close, !keep_alive);
    put_bool(encoder, response_at.sent_100, 0);
    put_bool(encoder, response_at.special, is_head);
    return encoder;
}

/* The server's _start_stream for an HTTP/1.1 request that ends with its
 * head (no upgrade, CONNECT, Expect or body): open the stream, deliver the
 * headers with end_stream. */
static int start_bodiless_stream(PyObject *self, PyObject *headers, PyObject *method, PyObject *keep_alive_obj)
{
    int keep_alive = pe_truth(keep_alive_obj);
    if (keep_alive > 0) {
        int should_close = pe_slot_truth(self, codec_at.should_close, "should_close");
        if (should_close < 0)
            return -1;
        keep_alive = !should_close;
    }
    if (keep_alive < 0)
        return -1;
    int is_head = PyUnicode_Check(method) && PyUnicode_Compare(method, str_head) == 0;
    PyObject *encoder = new_response_encoder(self, http11, keep_alive, is_head);
    if (encoder == NULL)
        return -1;
    pe_slot_put(self, server_at.stream, Py_NewRef(encoder));
    PyObject *callbacks = pe_slot_get(self, server_at.callbacks, "_callbacks");
    PyObject *decoder = callbacks == NULL ? NULL : pe_call_method(callbacks, s_new_stream, 1, encoder, NULL, NULL);
    if (decoder == NULL) {
        Py_DECREF(encoder);
        return -1;
    }
    pe_slot_put(self, server_at.decoder, Py_NewRef(decoder));
    /* The request ends with its headers (_message_complete_begin/_end, inlined). */
    put_bool(encoder, response_at.request_complete, 1);
    Py_DECREF(encoder);
    put_bool(self, codec_at.paused, 1);
    int r = pe_run_method(decoder, s_decode_headers, 2, headers, Py_True, NULL);
    Py_DECREF(decoder);
    if (r < 0)
        return -1;
    PyObject *stream = pe_slot_get(self, server_at.stream, "_stream");
    if (stream == NULL)
        return -1;
    if (stream == Py_None)
        put_bool(self, codec_at.paused, 0);
    return 0;
}

PyDoc_STRVAR(server_on_response_complete_doc,
    "_on_response_complete(encoder): the response encoder's message ended.\n\n"
    "The stream ends; the connection must close when the response came before the\n"
    "request ended or either side said close.  Otherwise reading resumes: the next\n"
    "pipelined request, or the EOF that came meanwhile.");

static PyObject *server_on_response_complete(PyObject *self, PyObject *encoder)
{
    PyObject *stream = pe_slot_get(self, server_at.stream, "_stream");
    if (stream == NULL)
        return NULL;
    if (encoder != stream) {
        /* An error reply, or a stream already given up on: the connection ends. */
        put_bool(self, codec_at.should_close, 1);
        Py_RETURN_NONE;
    }
    pe_slot_put(self, server_at.stream, Py_NewRef(Py_None));
    pe_slot_put(self, server_at.decoder, Py_NewRef(Py_None));
    int t = 1;
    if (PyObject_TypeCheck(encoder, response_encoder_type)) {
        t = pe_slot_truth(encoder, response_at.request_complete, "_request_complete");
        t = t < 0 ? -1 : !t;
        if (t == 0)
            t = pe_slot_truth(encoder, encoder_at.close, "_close");
    }
    if (t == 0)
        t = pe_slot_truth(self, codec_at.should_close, "should_close");
    if (t < 0)
        return NULL;
    if (t) {
        /* Envoy: a response before the request ended leaves the connection to
         * be closed; so does Connection: close, HTTP/1.0 without keep-alive,
         * or a tunnel. */
        put_bool(self, codec_at.should_close, 1);
        long state = int_slot(self, codec_at.state, "_state");
        if (state == -1 && PyErr_Occurred())
            return NULL;
        if (state >= 0 && state < st_closed && put_int(self, codec_at.state, st_closed) < 0)
            return NULL;
        if (clear_slot(self, codec_at.pending, "_pending") < 0)
            return NULL;
        put_bool(self, codec_at.paused, 0);
        Py_RETURN_NONE;
    }
    put_bool(self, codec_at.paused, 0);
    int empty = slot_empty(self, codec_at.pending, "_pending");
    int eof = empty < 0 ? -1 : pe_slot_truth(self, server_at.eof, "_eof");
    if (eof < 0)
        return NULL;
    if (eof && empty)
        return pe_call_method(self, s_closed_after_eof, 0, NULL, NULL, NULL);
    if (!empty) {
        int processing = pe_slot_truth(self, codec_at.processing, "_processing");
        if (processing < 0)
            return NULL;
        if (!processing) {
            PyObject *settings = pe_slot_get(self, codec_at.settings, "_settings");
            PyObject *auto_resume = settings == NULL ? NULL : PyObject_GetAttr(settings, s_auto_resume);
            int resume = auto_resume == NULL ? -1 : pe_truth(auto_resume);
            Py_XDECREF(auto_resume);
            if (resume < 0)
                return NULL;
            if (resume)
                return pe_call_method(self, s_resume, 0, NULL, NULL, NULL);
        }
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(client_new_stream_doc,
    "new_stream(response_decoder) -> RequestEncoderImpl: start the next request.\n\n"
    "One at a time (no pipelining); refused (CodecUsageError, by _new_stream_general)\n"
    "after a protocol error, while a request is out, or once the connection must close.");

static PyObject *client_new_stream(PyObject *self, PyObject *decoder)
{
    long state = int_slot(self, codec_at.state, "_state");
    if (state == -1 && PyErr_Occurred())
        return NULL;
    PyObject *stream = pe_slot_get(self, client_at.stream, "_stream");
    if (stream == NULL)
        return NULL;
    int refused = state < 0 || state == st_error || state == st_closed || stream != Py_None;
    if (!refused) {
        refused = pe_slot_truth(self, codec_at.should_close, "should_close");
        if (refused < 0)
            return NULL;
    }
    if (refused)
        return pe_call_method(self, s_new_stream_general, 1, decoder, NULL, NULL);
    PyObject *sink = pe_slot_get(self, codec_at.sink, "_sink");
    int processing = sink == NULL ? -1 : pe_slot_truth(self, codec_at.processing, "_processing");
    if (processing < 0)
        return NULL;
    PyObject *encoder = request_encoder_type->tp_new(request_encoder_type, empty_tuple, NULL);
    if (encoder == NULL)
        return NULL;
    pe_slot_put(encoder, encoder_at.conn, Py_NewRef(self));
    pe_slot_put(encoder, encoder_at.sink, Py_NewRef(sink));
    pe_slot_put(encoder, request_at.method, Py_NewRef(empty_str));
    put_bool(encoder, request_at.is_head_request, 0);
    put_bool(encoder, request_at.is_connect_request, 0);
    put_bool(encoder, request_at.upgrade, 0);
    pe_slot_put(self, client_at.stream, Py_NewRef(encoder));
    pe_slot_put(self, client_at.decoder, Py_NewRef(decoder));
    put_bool(self, client_at.response_close, 0);
    if (processing) {
        /* Started from a callback of the previous response: bytes already in
         * hand arrived before this request was written and cannot be its
         * response, so they are still read as unsolicited. */
        put_bool(self, client_at.deferred_head, 1);
    }
    else if (put_int(self, codec_at.state, st_head) < 0) {
        Py_DECREF(encoder);
        return NULL;
    }
    return encoder;
}

/* ServerConnectionImpl.dispatch */

PyDoc_STRVAR(server_dispatch_doc,
    "dispatch(data): parse request bytes; callbacks run before it returns.\n\n"
    "The common read (one whole bodiless request that the head scanner accepts, and\n"
    "nothing after it, while the codec waits for a request) opens its stream here;\n"
    "everything else goes to the parse loop (_dispatch).");

static PyObject *server_dispatch(PyObject *self, PyObject *data)
{
    int fast = codec_idle_for_head(self);
    if (fast < 0)
        return NULL;
    if (fast) {
        int eof = pe_slot_truth(self, server_at.eof, "_eof");
        if (eof < 0)
            return NULL;
        fast = !eof && PyBytes_CheckExact(data);
    }
    if (fast) {
        Py_ssize_t limit = ssize_slot(self, codec_at.raw_head_limit, "_raw_head_limit");
        if (limit == -1 && PyErr_Occurred())
            return NULL;
        PyObject *count, *bytes;
        if (PyBytes_GET_SIZE(data) <= limit) {
            if (head_limits(self, &count, &bytes) < 0)
                return NULL;
            PyObject *args[3] = {data, count, bytes};
            PyObject *common = pe_http1_parse_request(NULL, args, 3);
            if (common == NULL)
                return NULL;
            /* (names, values, keep_alive, length): a request with a body takes the loop. */
            if (common != Py_None && !pe_truth(PyTuple_GET_ITEM(common, 3))) {
                PyObject *names = PyTuple_GET_ITEM(common, 0), *values = PyTuple_GET_ITEM(common, 1);
                put_bool(self, codec_at.processing, 1);
                PyObject *headers = call2(trusted_headers, names, values);
                int r = headers == NULL ? -1 : start_bodiless_stream(self, headers, PyList_GET_ITEM(values, 0),
                                                                     PyTuple_GET_ITEM(common, 2));
                Py_XDECREF(headers);
                if (r < 0)
                    r = on_callback_error(self);
                Py_DECREF(common);
                if (r < 0) {
                    PyObject *type, *value, *tb;
                    PyErr_Fetch(&type, &value, &tb);
                    put_bool(self, codec_at.processing, 0);
                    PyErr_Restore(type, value, tb);
                    return NULL;
                }
                put_bool(self, codec_at.processing, 0);
                Py_RETURN_NONE;
            }
            Py_DECREF(common);
        }
    }
    return pe_call_method(self, s_dispatch, 1, data, NULL, NULL);
}

/* ClientConnectionImpl.dispatch */

/* The client's _message_complete_begin(), inline: the connection's fate is
 * settled before the owner sees the response's end. */
static int client_message_complete_begin(PyObject *self)
{
    PyObject *stream = pe_slot_get(self, client_at.stream, "_stream");
    if (stream == NULL)
        return -1;
    int close = pe_slot_truth(self, client_at.response_close, "_response_close");
    if (close < 0)
        return -1;
    if (!close && stream != Py_None) {
        int complete = pe_slot_truth(stream, encoder_at.complete, "_complete");
        if (complete < 0)
            return -1;
        close = !complete;
    }
    pe_slot_put(self, client_at.stream, Py_NewRef(Py_None));
    if (close) {
        put_bool(self, codec_at.should_close, 1);
        return put_int(self, codec_at.state, st_closed);
    }
    return put_int(self, codec_at.state, st_idle);
}

/* self._decoder.decode_data(chunk, end_stream), if there is a decoder. */
static int client_deliver_data(PyObject *self, PyObject *chunk, int end_stream)
{
    PyObject *decoder = pe_slot_get(self, client_at.decoder, "_decoder");
    if (decoder == NULL)
        return -1;
    if (decoder == Py_None)
        return 0;
    Py_INCREF(decoder);
    int r = pe_run_method(decoder, s_decode_data, 2, chunk, end_stream ? Py_True : Py_False, NULL);
    Py_DECREF(decoder);
    return r;
}

/* ClientConnectionImpl._on_plain_response: deliver the head C parsed and
 * the body bytes that came with it (at most the whole Content-Length body). */
static int client_plain_response(PyObject *self, PyObject *stream, PyObject *data, Py_ssize_t end, PyObject *common)
{
    PyObject *names = PyTuple_GET_ITEM(common, 1), *values = PyTuple_GET_ITEM(common, 2);
    int keep_alive = pe_truth(PyTuple_GET_ITEM(common, 3));
    Py_ssize_t length = PyLong_AsSsize_t(PyTuple_GET_ITEM(common, 4));
    if (keep_alive < 0 || (length == -1 && PyErr_Occurred()))
        return -1;
    int close = !keep_alive;
    if (!close) {
        close = pe_slot_truth(stream, encoder_at.close, "_close");
        if (close < 0)
            return -1;
    }
    put_bool(self, client_at.response_close, close);
    PyObject *headers = call2(trusted_headers, names, values);
    if (headers == NULL)
        return -1;
    if (length == 0) {
        int r = pe_run_method(self, s_end_with_headers, 1, headers, NULL, NULL);
        Py_DECREF(headers);
        return r;
    }
    if (put_ssize(self, codec_at.remaining, length) < 0 || put_int(self, codec_at.state, st_body) < 0) {
        Py_DECREF(headers);
        return -1;
    }
    PyObject *decoder = pe_slot_get(self, client_at.decoder, "_decoder");
    if (decoder == NULL) {
        Py_DECREF(headers);
        return -1;
    }
    Py_INCREF(decoder);
    int r = pe_run_method(decoder, s_decode_headers, 2, headers, Py_False, NULL);
    Py_DECREF(decoder);
    Py_DECREF(headers);
    if (r < 0)
        return -1;
    Py_ssize_t body = PyBytes_GET_SIZE(data) - end;
    if (body == 0)
        return 0;
    PyObject *chunk = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + end, body);
    if (chunk == NULL)
        return -1;
    long state = int_slot(self, codec_at.state, "_state");
    int paused = state == -1 && PyErr_Occurred() ? -1 : pe_slot_truth(self, codec_at.paused, "paused");
    if (paused < 0)
        r = -1;
    else if (state != st_body || paused) {
        /* The owner paused or closed the codec: the loop knows what to do. */
        r = pe_run_method(self, s_parse, 1, chunk, NULL, NULL);
    }
    else if (body == length) {
        /* The whole response (_read_body and _end_message, inline). */
        r = put_ssize(self, codec_at.remaining, 0);
        if (r == 0)
            r = put_int(self, codec_at.state, st_head);
        if (r == 0)
            r = client_message_complete_begin(self);
        if (r == 0)
            r = client_deliver_data(self, chunk, 1);
        if (r == 0) {
            /* _message_complete_end(): a request started from that callback keeps its decoder. */
            PyObject *next = pe_slot_get(self, client_at.stream, "_stream");
            if (next == NULL)
                r = -1;
            else if (next == Py_None)
                pe_slot_put(self, client_at.decoder, Py_NewRef(Py_None));
        }
    }
    else {
        r = put_ssize(self, codec_at.remaining, length - body);
        if (r == 0)
            r = client_deliver_data(self, chunk, 0);
    }
    Py_DECREF(chunk);
    return r;
}

PyDoc_STRVAR(client_dispatch_doc,
    "dispatch(data): parse response bytes; callbacks run before it returns.\n\n"
    "The common read (the start of a plain response: a head the scanner accepts, then\n"
    "all or part of its Content-Length body and nothing past it, while a request is out\n"
    "that is not HEAD, CONNECT or an upgrade) is delivered here; everything else goes to\n"
    "the parse loop (_dispatch).");

static PyObject *client_dispatch(PyObject *self, PyObject *data)
{
    PyObject *stream = pe_slot_get(self, client_at.stream, "_stream");
    if (stream == NULL)
        return NULL;
    int t = 0;
    if (stream != Py_None && PyObject_TypeCheck(stream, request_encoder_type) && PyBytes_CheckExact(data)) {
        t = codec_idle_for_head(self);
        if (t < 0)
            return NULL;
        Py_ssize_t offsets[3] = {request_at.is_head_request, request_at.upgrade, request_at.is_connect_request};
        for (int i = 0; t && i < 3; i++) {
            int special = pe_slot_truth(stream, offsets[i], "is_head_request, upgrade or is_connect_request");
            if (special < 0)
                return NULL;
            t = !special;
        }
    }
    if (t) {
        PyObject *count, *bytes, *raw = pe_slot_get(self, codec_at.raw_head_limit, "_raw_head_limit");
        if (raw == NULL || head_limits(self, &count, &bytes) < 0)
            return NULL;
        PyObject *args[4] = {data, count, bytes, raw};
        PyObject *common = pe_http1_parse_response_start(NULL, args, 4);
        if (common == NULL)
            return NULL;
        if (common != Py_None) {
            /* (status, names, values, keep_alive, length, chunked, head_len) */
            long status = PyLong_AsLong(PyTuple_GET_ITEM(common, 0));
            Py_ssize_t length = PyLong_AsSsize_t(PyTuple_GET_ITEM(common, 4));
            Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(common, 6));
            if (PyErr_Occurred()) {
                Py_DECREF(common);
                return NULL;
            }
            Py_ssize_t body = PyBytes_GET_SIZE(data) - end;
            /* 1xx, 204 and 304, chunked and close-delimited bodies, and bytes
             * past the body (an upstream that runs ahead) take the loop. */
            if (0 <= body && body <= length && !pe_truth(PyTuple_GET_ITEM(common, 5)) && status != 204
                && status != 304) {
                put_bool(self, codec_at.processing, 1);
                Py_INCREF(stream);
                int r = client_plain_response(self, stream, data, end, common);
                Py_DECREF(stream);
                Py_DECREF(common);
                if (r < 0)
                    r = on_callback_error(self);
                if (r < 0) {
                    PyObject *type, *value, *tb;
                    PyErr_Fetch(&type, &value, &tb);
                    put_bool(self, codec_at.processing, 0);
                    PyErr_Restore(type, value, tb);
                    return NULL;
                }
                put_bool(self, codec_at.processing, 0);
                int deferred = pe_slot_truth(self, client_at.deferred_head, "_deferred_head");
                if (deferred < 0)
                    return NULL;
                if (deferred) {
                    /* A request started from a callback: its response may now be read. */
                    put_bool(self, client_at.deferred_head, 0);
                    long state = int_slot(self, codec_at.state, "_state");
                    PyObject *next = pe_slot_get(self, client_at.stream, "_stream");
                    if (next == NULL || (state == -1 && PyErr_Occurred()))
                        return NULL;
                    if (state == st_idle && next != Py_None && put_int(self, codec_at.state, st_head) < 0)
                        return NULL;
                }
                Py_RETURN_NONE;
            }
        }
        Py_DECREF(common);
    }
    return pe_call_method(self, s_dispatch, 1, data, NULL, NULL);
}

/* the encoders */

/* encoder._sink(piece) */
static int sink(PyObject *encoder, PyObject *piece)
{
    PyObject *callable = pe_slot_get(encoder, encoder_at.sink, "_sink");
    if (callable == NULL)
        return -1;
    Py_INCREF(callable);
    int r = run1(callable, piece);
    Py_DECREF(callable);
    return r;
}

/* encoder._conn.<name>(encoder): the end of the message, as _on_encode_complete says. */
static int tell_conn(PyObject *encoder, PyObject *name)
{
    PyObject *conn = pe_slot_get(encoder, encoder_at.conn, "_conn");
    if (conn == NULL)
        return -1;
    Py_INCREF(conn);
    int r = pe_run_method(conn, name, 1, encoder, NULL, NULL);
    Py_DECREF(conn);
    return r;
}

/* The header map's two lists, or 0 when headers is not a HeaderMap with lists. */
static int header_lists(PyObject *headers, PyObject **names, PyObject **values)
{
    if (!PyObject_TypeCheck(headers, headers_type))
        return 0;
    *names = PE_SLOT(headers, headers_at.names);
    *values = PE_SLOT(headers, headers_at.values);
    return *names != NULL && *values != NULL && PyList_CheckExact(*names) && PyList_CheckExact(*values);
}

PyDoc_STRVAR(response_encode_headers_doc,
    "encode_headers(headers, end_stream): serialize the response head.\n\n"
    "A final status (not 204 or 304) for a request that is not HEAD, CONNECT or an\n"
    "upgrade, with fields module _http1's encode_response takes (no hop-by-hop field),\n"
    "is encoded here; everything else, and every error, by _encode_headers_general.");

static PyObject *response_encode_headers(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode_headers(headers, end_stream) takes 2 arguments");
        return NULL;
    }
    PyObject *headers = args[0], *end_stream = args[1];
    PyObject *names, *values;
    int t = pe_slot_truth(self, encoder_at.started, "_started");
    if (t < 0)
        return NULL;
    PyObject *special = pe_slot_get(self, response_at.special, "_special");
    if (special == NULL)
        return NULL;
    if (!t && special == Py_False && header_lists(headers, &names, &values) && PyList_GET_SIZE(names) > 0
        && PyList_GET_SIZE(values) > 0 && PyUnicode_Check(PyList_GET_ITEM(names, 0))
        && PyUnicode_CompareWithASCIIString(PyList_GET_ITEM(names, 0), ":status") == 0) {
        PyObject *entry = PyDict_GetItemWithError(status_by_value, PyList_GET_ITEM(values, 0));
        if (entry == NULL && PyErr_Occurred())
            return NULL;
        long status = entry == NULL ? 0 : PyLong_AsLong(PyTuple_GET_ITEM(entry, 0));
        if (status >= 200 && status != 204 && status != 304) {
            PyObject *protocol = pe_slot_get(self, response_at.protocol, "protocol");
            PyObject *close = protocol == NULL ? NULL : pe_slot_get(self, encoder_at.close, "_close");
            if (close == NULL)
                return NULL;
            int is11 = PyUnicode_Check(protocol) && PyUnicode_Compare(protocol, http11) == 0;
            Py_INCREF(entry);
            PyObject *eargs[6] = {PyTuple_GET_ITEM(entry, 1), names, values, end_stream, is11 ? Py_True : Py_False,
                                  close};
            PyObject *common = pe_http1_encode_response(NULL, eargs, 6);
            Py_DECREF(entry);
            if (common == NULL)
                return NULL;
            if (common != Py_None) {
                /* (head, length, close) */
                Py_ssize_t length = PyLong_AsSsize_t(PyTuple_GET_ITEM(common, 1));
                if (length == -1 && PyErr_Occurred()) {
                    Py_DECREF(common);
                    return NULL;
                }
                pe_slot_put(self, encoder_at.close, Py_NewRef(PyTuple_GET_ITEM(common, 2)));
                int r;
                if (length >= 0) {
                    r = put_int(self, encoder_at.mode, mode_length);
                    if (r == 0)
                        r = put_ssize(self, encoder_at.remaining, length);
                }
                else
                    r = put_int(self, encoder_at.mode, length == -1 ? mode_chunked : mode_raw);
                if (r == 0) {
                    put_bool(self, encoder_at.started, 1);
                    r = sink(self, PyTuple_GET_ITEM(common, 0));
                }
                Py_DECREF(common);
                if (r < 0)
                    return NULL;
                int end = pe_truth(end_stream);
                if (end < 0)
                    return NULL;
                if (end) {
                    put_bool(self, encoder_at.complete, 1);
                    if (tell_conn(self, s_on_response_complete) < 0)
                        return NULL;
                }
                Py_RETURN_NONE;
            }
            Py_DECREF(common);
        }
    }
    return pe_call_method(self, s_encode_headers_general, 2, headers, end_stream, NULL);
}

PyDoc_STRVAR(request_encode_headers_doc,
    "encode_headers(headers, end_stream): serialize the request head.\n\n"
    "A request module _http1's encode_request takes (valid pseudo-headers, not CONNECT,\n"
    "no hop-by-hop field) is encoded here; everything else, and every error, by\n"
    "_encode_headers_general.");

static PyObject *request_encode_headers(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode_headers(headers, end_stream) takes 2 arguments");
        return NULL;
    }
    PyObject *headers = args[0], *end_stream = args[1];
    PyObject *names, *values;
    int t = pe_slot_truth(self, encoder_at.started, "_started");
    if (t < 0)
        return NULL;
    if (!t && header_lists(headers, &names, &values)) {
        PyObject *eargs[3] = {names, values, end_stream};
        PyObject *common = pe_http1_encode_request(NULL, eargs, 3);
        if (common == NULL)
            return NULL;
        if (common != Py_None) {
            /* (head, method, length) */
            PyObject *method = PyTuple_GET_ITEM(common, 1);
            Py_ssize_t length = PyLong_AsSsize_t(PyTuple_GET_ITEM(common, 2));
            if (length == -1 && PyErr_Occurred()) {
                Py_DECREF(common);
                return NULL;
            }
            put_bool(self, encoder_at.started, 1);
            pe_slot_put(self, request_at.method, Py_NewRef(method));
            int is_head = PyUnicode_Check(method) && PyUnicode_Compare(method, str_head) == 0;
            put_bool(self, request_at.is_head_request, is_head);
            int r;
            if (length < 0)
                r = put_int(self, encoder_at.mode, mode_chunked);
            else {
                r = put_int(self, encoder_at.mode, mode_length);
                if (r == 0)
                    r = put_ssize(self, encoder_at.remaining, length);
            }
            if (r == 0)
                r = sink(self, PyTuple_GET_ITEM(common, 0));
            Py_DECREF(common);
            if (r < 0)
                return NULL;
            int end = pe_truth(end_stream);
            if (end < 0)
                return NULL;
            if (end) {
                put_bool(self, encoder_at.complete, 1);
                if (tell_conn(self, s_on_request_complete) < 0)
                    return NULL;
            }
            Py_RETURN_NONE;
        }
        Py_DECREF(common);
    }
    return pe_call_method(self, s_encode_headers_general, 2, headers, end_stream, NULL);
}

PyDoc_STRVAR(encode_data_doc,
    "encode_data(data, end_stream): frame and send body bytes.\n\n"
    "bytes within what a Content-Length still allows (all of it when end_stream),\n"
    "or any bytes of a raw (tunnel, close-delimited) body, are sent here; everything\n"
    "else, and every error, by _encode_data_general.");

static PyObject *encode_data(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode_data(data, end_stream) takes 2 arguments");
        return NULL;
    }
    PyObject *data = args[0], *end_stream = args[1];
    int started = pe_slot_truth(self, encoder_at.started, "_started");
    int complete = started < 0 ? -1 : pe_slot_truth(self, encoder_at.complete, "_complete");
    int end = complete < 0 ? -1 : pe_truth(end_stream);
    if (end < 0)
        return NULL;
    if (started && !complete && PyBytes_CheckExact(data)) {
        long mode = int_slot(self, encoder_at.mode, "_mode");
        if (mode == -1 && PyErr_Occurred())
            return NULL;
        Py_ssize_t n = PyBytes_GET_SIZE(data);
        int take = 0;
        if (mode == mode_length) {
            Py_ssize_t remaining = ssize_slot(self, encoder_at.remaining, "_remaining");
            if (remaining == -1 && PyErr_Occurred())
                return NULL;
            if (n <= remaining && !(end && n != remaining)) {
                if (put_ssize(self, encoder_at.remaining, remaining - n) < 0)
                    return NULL;
                take = 1;
            }
        }
        else if (mode == mode_raw)
            take = 1;
        if (take) {
            if (n && sink(self, data) < 0)
                return NULL;
            if (end) {
                put_bool(self, encoder_at.complete, 1);
                PyObject *r = pe_call_method(self, s_on_encode_complete, 0, NULL, NULL, NULL);
                if (r == NULL)
                    return NULL;
                Py_DECREF(r);
            }
            Py_RETURN_NONE;
        }
    }
    return pe_call_method(self, s_encode_data_general, 2, data, end_stream, NULL);
}

/* binding */

static PyMethodDef server_methods[] = {
    {"dispatch", (PyCFunction)server_dispatch, METH_O, server_dispatch_doc},
    {"_on_response_complete", (PyCFunction)server_on_response_complete, METH_O, server_on_response_complete_doc},
    {NULL, NULL, 0, NULL},
};
static PyMethodDef client_methods[] = {
    {"dispatch", (PyCFunction)client_dispatch, METH_O, client_dispatch_doc},
    {"new_stream", (PyCFunction)client_new_stream, METH_O, client_new_stream_doc},
    {NULL, NULL, 0, NULL},
};
static PyMethodDef response_methods[] = {
    {"encode_headers", (PyCFunction)(void (*)(void))response_encode_headers, METH_FASTCALL, response_encode_headers_doc},
    {"encode_data", (PyCFunction)(void (*)(void))encode_data, METH_FASTCALL, encode_data_doc},
    {NULL, NULL, 0, NULL},
};
static PyMethodDef request_methods[] = {
    {"encode_headers", (PyCFunction)(void (*)(void))request_encode_headers, METH_FASTCALL, request_encode_headers_doc},
    {"encode_data", (PyCFunction)(void (*)(void))encode_data, METH_FASTCALL, encode_data_doc},
    {NULL, NULL, 0, NULL},
};

static int long_constant(PyObject *constants, const char *name, long *out)
{
    PyObject *value = PyDict_GetItemString(constants, name);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "bind_codec(): constant %s missing", name);
        return -1;
    }
    *out = PyLong_AsLong(value);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    if (*out < 0 || *out >= 10) {
        PyErr_Format(PyExc_ValueError, "bind_codec(): %s must be a small int", name);
        return -1;
    }
    return 0;
}

static int object_constant(PyObject *constants, const char *name, PyObject **out)
{
    PyObject *value = PyDict_GetItemString(constants, name);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "bind_codec(): constant %s missing", name);
        return -1;
    }
    Py_XSETREF(*out, Py_NewRef(value));
    return 0;
}

PyDoc_STRVAR(bind_codec_doc,
    "bind_codec(server, client, response_encoder, request_encoder, header_map, constants):\n"
    "install the codec's C methods (see the module source) on the four codec classes.\n\n"
    "Their slots, and header_map's _names and _values, are found by name (TypeError if\n"
    "one is missing).  constants: the states HEAD, BODY, IDLE, CLOSED and ERROR; the\n"
    "modes MODE_NONE, MODE_LENGTH, MODE_CHUNKED and MODE_RAW; HTTP11; STATUS_BY_VALUE;\n"
    "CodecProtocolError; TRUSTED_HEADERS (HeaderMap._trusted).");

static PyObject *bind_codec(PyObject *module, PyObject *args)
{
    PyTypeObject *server, *client, *response, *request, *headers;
    PyObject *constants;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!O!:bind_codec", &PyType_Type, &server, &PyType_Type, &client,
                          &PyType_Type, &response, &PyType_Type, &request, &PyType_Type, &headers, &PyDict_Type,
                          &constants))
        return NULL;
    const pe_slot_name codec_slots[] = {
        {"_sink", &codec_at.sink},
        {"_state", &codec_at.state},
        {"_pending", &codec_at.pending},
        {"_processing", &codec_at.processing},
        {"paused", &codec_at.paused},
        {"should_close", &codec_at.should_close},
        {"_remaining", &codec_at.remaining},
        {"_body_parts", &codec_at.body_parts},
        {"_max_head_bytes", &codec_at.max_head_bytes},
        {"_max_head_count", &codec_at.max_head_count},
        {"_raw_head_limit", &codec_at.raw_head_limit},
        {"_settings", &codec_at.settings},
    };
    const pe_slot_name server_slots[] = {
        {"_stream", &server_at.stream},
        {"_decoder", &server_at.decoder},
        {"_eof", &server_at.eof},
        {"_callbacks", &server_at.callbacks},
    };
    const pe_slot_name client_slots[] = {
        {"_stream", &client_at.stream},
        {"_decoder", &client_at.decoder},
        {"_response_close", &client_at.response_close},
        {"_deferred_head", &client_at.deferred_head},
    };
    const pe_slot_name encoder_slots[] = {
        {"_mode", &encoder_at.mode},
        {"_remaining", &encoder_at.remaining},
        {"_started", &encoder_at.started},
        {"_complete", &encoder_at.complete},
        {"_close", &encoder_at.close},
        {"_conn", &encoder_at.conn},
        {"_sink", &encoder_at.sink},
    };
    const pe_slot_name response_slots[] = {
        {"protocol", &response_at.protocol},
        {"_special", &response_at.special},
        {"keep_alive", &response_at.keep_alive},
        {"upgrade", &response_at.upgrade},
        {"is_head_request", &response_at.is_head_request},
        {"is_connect_request", &response_at.is_connect_request},
        {"expect_continue", &response_at.expect_continue},
        {"_request_complete", &response_at.request_complete},
        {"_sent_100", &response_at.sent_100},
    };
    const pe_slot_name request_slots[] = {
        {"method", &request_at.method},
        {"is_head_request", &request_at.is_head_request},
        {"is_connect_request", &request_at.is_connect_request},
        {"upgrade", &request_at.upgrade},
    };
    const pe_slot_name header_slots[] = {
        {"_names", &headers_at.names},
        {"_values", &headers_at.values},
    };
    /* The shared fields must sit at the same place in both classes of a pair. */
    Py_ssize_t codec_client_sink, encoder_request_mode;
    if (PE_SLOT_OFFSETS(server, codec_slots) < 0 || PE_SLOT_OFFSETS(server, server_slots) < 0 || PE_SLOT_OFFSETS(client, client_slots) < 0
        || PE_SLOT_OFFSETS(response, encoder_slots) < 0 || PE_SLOT_OFFSETS(response, response_slots) < 0
        || PE_SLOT_OFFSETS(request, request_slots) < 0 || PE_SLOT_OFFSETS(headers, header_slots) < 0
        || pe_slot_offset(client, "_state", &codec_client_sink) < 0
        || pe_slot_offset(request, "_mode", &encoder_request_mode) < 0)
        return NULL;
    if (codec_client_sink != codec_at.state || encoder_request_mode != encoder_at.mode) {
        PyErr_SetString(PyExc_TypeError, "bind_codec(): the two codecs (or encoders) do not share their base's slots");
        return NULL;
    }
    if (long_constant(constants, "HEAD", &st_head) < 0 || long_constant(constants, "BODY", &st_body) < 0
        || long_constant(constants, "IDLE", &st_idle) < 0 || long_constant(constants, "CLOSED", &st_closed) < 0
        || long_constant(constants, "ERROR", &st_error) < 0 || long_constant(constants, "MODE_NONE", &mode_none) < 0
        || long_constant(constants, "MODE_LENGTH", &mode_length) < 0
        || long_constant(constants, "MODE_CHUNKED", &mode_chunked) < 0
        || long_constant(constants, "MODE_RAW", &mode_raw) < 0 || object_constant(constants, "HTTP11", &http11) < 0
        || object_constant(constants, "STATUS_BY_VALUE", &status_by_value) < 0
        || object_constant(constants, "CodecProtocolError", &codec_protocol_error) < 0
        || object_constant(constants, "TRUSTED_HEADERS", &trusted_headers) < 0)
        return NULL;
    if (!PyDict_CheckExact(status_by_value) || !PyUnicode_Check(http11)) {
        PyErr_SetString(PyExc_TypeError, "bind_codec(): STATUS_BY_VALUE must be a dict, HTTP11 a str");
        return NULL;
    }
    Py_XSETREF(request_encoder_type, (PyTypeObject *)Py_NewRef(request));
    Py_XSETREF(response_encoder_type, (PyTypeObject *)Py_NewRef(response));
    Py_XSETREF(headers_type, (PyTypeObject *)Py_NewRef(headers));
    if (pe_install_methods(server, server_methods) < 0 || pe_install_methods(client, client_methods) < 0
        || pe_install_methods(response, response_methods) < 0 || pe_install_methods(request, request_methods) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"bind_codec", bind_codec, METH_VARARGS, bind_codec_doc},
    {NULL, NULL, 0, NULL},
};

int pe_http1_codec_init(PyObject *module)
{
    for (long i = 0; i < 10; i++) {
        if (small_ints[i] == NULL && (small_ints[i] = PyLong_FromLong(i)) == NULL)
            return -1;
    }
    if (pe_intern(&str_head, "HEAD") < 0 || pe_intern(&s_dispatch, "_dispatch") < 0
        || pe_intern(&s_start_stream, "_start_stream") < 0 || pe_intern(&s_fail, "_fail") < 0
        || pe_intern(&s_end_with_headers, "_end_with_headers") < 0 || pe_intern(&s_parse, "_parse") < 0
        || pe_intern(&s_decode_headers, "decode_headers") < 0 || pe_intern(&s_decode_data, "decode_data") < 0
        || pe_intern(&s_encode_headers_general, "_encode_headers_general") < 0
        || pe_intern(&s_encode_data_general, "_encode_data_general") < 0
        || pe_intern(&s_on_encode_complete, "_on_encode_complete") < 0
        || pe_intern(&s_on_request_complete, "_on_request_complete") < 0
        || pe_intern(&s_on_response_complete, "_on_response_complete") < 0 || pe_intern(&s_new_stream, "new_stream") < 0
        || pe_intern(&s_new_stream_general, "_new_stream_general") < 0
        || pe_intern(&s_closed_after_eof, "_closed_after_eof") < 0 || pe_intern(&s_resume, "resume") < 0
        || pe_intern(&s_auto_resume, "auto_resume") < 0 || pe_intern(&empty_str, "") < 0)
        return -1;
    if (empty_tuple == NULL && (empty_tuple = PyTuple_New(0)) == NULL)
        return -1;
    return PyModule_AddFunctions(module, module_methods);
}
