/*
 * pyevent-envoy: pyevent_envoy._conn_pool, the upstream connection pool's
 * per-request methods in C.
 *
 * A proxied request takes an idle upstream connection from its host's pool,
 * starts its request on it, hears the response through the connection's
 * codec client and gives the connection back.  Each step is bookkeeping on
 * the pool's and the client's attributes around one call; as Python they
 * were ten frames per request.  bind() installs these C methods on the
 * classes of pyevent_envoy/http/conn_pool.py:
 *
 *   Http1ConnPool.new_stream(decoder, callbacks)
 *   Http1ConnPool._on_stream_done(client, reusable)
 *   CodecClient.start_stream(decoder, owner)
 *   CodecClient.on_data(data, end_stream)
 *   CodecClient.decode_headers(headers, end_stream)
 *   CodecClient.decode_data(data, end_stream)
 *   CodecClient._on_response_complete()
 *
 * Http1ConnPool.new_stream takes the common case, an idle connection and
 * room under the cluster's max_requests; everything else goes to
 * _new_stream_general.  _on_stream_done gives a reusable connection to the
 * next pending request through _on_client_idle.  The others are whole.
 * Attributes are the classes' __slots__, read in place (slots.h); the
 * circuit breakers' counters are updated in place on GIL builds (where
 * nothing else runs between the read and the write, as the Python
 * `count += 1` relies on) and through their locked methods otherwise.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "slots.h"

static struct {
    Py_ssize_t ready, busy, pending, draining, requests, stats, host_stats;
} pool_at;
static struct {
    Py_ssize_t pool, codec, stream_decoder, stream_owner, response_started, requests, closed;
} client_at;
static struct {
    Py_ssize_t count, max, used;
} resource_at;
static struct {
    Py_ssize_t rq_total, rq_active;
} cluster_stats_at;
static struct {
    Py_ssize_t rq_total, rq_active;
} host_stats_at;
static struct {
    Py_ssize_t stream, should_close;
} codec_at;
static struct {
    Py_ssize_t complete;
} encoder_at;
static struct {
    Py_ssize_t length;
} buffer_at;

static PyTypeObject *pool_type, *client_type, *resource_type, *cluster_stats_type, *host_stats_type, *codec_type,
    *encoder_type, *buffer_type;
static PyObject *stop_iteration; /* FilterStatus.STOP_ITERATION */
static PyObject *buffer_take;    /* the buffer type's take() */

static PyObject *s_new_stream_general, *s_on_pool_ready, *s_new_stream, *s_dispatch, *s_dispatch_eof, *s_on_data_error,
    *s_decode_headers, *s_decode_data, *s_on_response_complete, *s_on_stream_done, *s_on_client_idle, *s_close,
    *s_inc, *s_dec;

#define SLOT PE_SLOT

/* A circuit breaker's inc() or dec(): in place for the plain Resource
 * (exactly its methods), else by calling the method (the locked one). */
static int resource_step(PyObject *resource, int up)
{
    if (Py_IS_TYPE(resource, resource_type)) {
        if (pe_slot_add(resource, resource_at.count, "count", up ? 1 : -1) < 0)
            return -1;
        if (up)
            pe_slot_put(resource, resource_at.used, Py_NewRef(Py_True));
        return 0;
    }
    return pe_run_method(resource, up ? s_inc : s_dec, 0, NULL, NULL, NULL);
}

/* The request counters of a request that starts (+1) or ends (-1 active). */
static int count_request(PyObject *pool, int starts)
{
    PyObject *stats = pe_slot_get(pool, pool_at.stats, "stats");
    PyObject *host = stats == NULL ? NULL : pe_slot_get(pool, pool_at.host_stats, "host_stats");
    if (host == NULL)
        return -1;
    if (!PyObject_TypeCheck(stats, cluster_stats_type) || (host != Py_None && !PyObject_TypeCheck(host, host_stats_type))) {
        PyErr_SetString(PyExc_TypeError, "the pool's stats are not ClusterTrafficStats and HostStats");
        return -1;
    }
    if (starts) {
        if (pe_slot_add(stats, cluster_stats_at.rq_total, "upstream_rq_total", 1) < 0
            || pe_slot_add(stats, cluster_stats_at.rq_active, "upstream_rq_active", 1) < 0)
            return -1;
        if (host != Py_None
            && (pe_slot_add(host, host_stats_at.rq_active, "rq_active", 1) < 0
                || pe_slot_add(host, host_stats_at.rq_total, "rq_total", 1) < 0))
            return -1;
        return 0;
    }
    if (pe_slot_add(stats, cluster_stats_at.rq_active, "upstream_rq_active", -1) < 0)
        return -1;
    if (host != Py_None && pe_slot_add(host, host_stats_at.rq_active, "rq_active", -1) < 0)
        return -1;
    return 0;
}

/* CodecClient.start_stream */

static PyObject *start_stream(PyObject *self, PyObject *decoder, PyObject *owner)
{
    if (pe_slot_add(self, client_at.requests, "requests", 1) < 0)
        return NULL;
    pe_slot_put(self, client_at.response_started, Py_NewRef(Py_False));
    pe_slot_put(self, client_at.stream_decoder, Py_NewRef(decoder));
    pe_slot_put(self, client_at.stream_owner, Py_NewRef(owner));
    /* The codec's decoder is this client, so the codec never holds the
     * stream's decoder past the response. */
    PyObject *codec = pe_slot_get(self, client_at.codec, "codec");
    if (codec == NULL)
        return NULL;
    Py_INCREF(codec);
    PyObject *encoder = pe_call_method(codec, s_new_stream, 1, self, NULL, NULL);
    Py_DECREF(codec);
    return encoder;
}

PyDoc_STRVAR(start_stream_doc,
    "start_stream(decoder, owner) -> RequestEncoder: start a request on this connection.\n\n"
    "The response goes to decoder; owner (UpstreamStreamCallbacks) hears resets and\n"
    "watermarks.");

static PyObject *client_start_stream(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "start_stream(decoder, owner) takes 2 arguments");
        return NULL;
    }
    return start_stream(self, args[0], args[1]);
}

/* Http1ConnPool.new_stream */

PyDoc_STRVAR(new_stream_doc,
    "new_stream(decoder, callbacks) -> handle or None: get a connection for one request.\n\n"
    "callbacks.on_pool_ready(encoder, client) runs now when a connection is idle, else\n"
    "later; callbacks.on_pool_failure(reason, transport_failure_reason) when none can be\n"
    "had.  Returns a handle whose cancel() gives up waiting, or None when the callback\n"
    "already ran.  The common case (an idle connection, room under max_requests) is taken\n"
    "here; the rest by _new_stream_general.");

static PyObject *pool_new_stream(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "new_stream(decoder, callbacks) takes 2 arguments");
        return NULL;
    }
    PyObject *decoder = args[0], *callbacks = args[1];
    PyObject *ready = pe_slot_get(self, pool_at.ready, "_ready");
    PyObject *busy = ready == NULL ? NULL : pe_slot_get(self, pool_at.busy, "_busy");
    PyObject *requests = busy == NULL ? NULL : pe_slot_get(self, pool_at.requests, "_requests");
    if (requests == NULL)
        return NULL;
    if (!PyList_CheckExact(ready) || PyList_GET_SIZE(ready) == 0 || !PySet_CheckExact(busy)
        || !PyObject_TypeCheck(requests, resource_type))
        goto general;
    PyObject *client = PyList_GET_ITEM(ready, PyList_GET_SIZE(ready) - 1);
    if (!PyObject_TypeCheck(client, client_type))
        goto general;
    /* A closed idle connection, or no room under max_requests: the general path. */
    int closed = pe_slot_truth(client, client_at.closed, "closed");
    if (closed != 0) {
        if (closed < 0)
            return NULL;
        goto general;
    }
    PyObject *count = pe_slot_get(requests, resource_at.count, "count");
    PyObject *max = count == NULL ? NULL : pe_slot_get(requests, resource_at.max, "max");
    if (max == NULL)
        return NULL;
    int full = PyObject_RichCompareBool(count, max, Py_GE);
    if (full != 0) {
        if (full < 0)
            return NULL;
        goto general;
    }
    /* _attach(): the client is busy with this request. */
    Py_INCREF(client);
    PyObject *encoder = NULL;
    int ok = 0;
    if (PyList_SetSlice(ready, PyList_GET_SIZE(ready) - 1, PyList_GET_SIZE(ready), NULL) < 0
        || PySet_Add(busy, client) < 0 || resource_step(requests, 1) < 0 || count_request(self, 1) < 0)
        goto done;
    encoder = start_stream(client, decoder, callbacks);
    if (encoder == NULL || pe_run_method(callbacks, s_on_pool_ready, 2, encoder, client, NULL) < 0)
        goto done;
    ok = 1;
done:
    Py_DECREF(client);
    Py_XDECREF(encoder);
    return ok ? Py_NewRef(Py_None) : NULL;
general:
    return pe_call_method(self, s_new_stream_general, 2, decoder, callbacks, NULL);
}

/* Http1ConnPool._on_stream_done */

PyDoc_STRVAR(on_stream_done_doc,
    "_on_stream_done(client, reusable): the client's request ended.  Its request place is\n"
    "given back; a reusable connection goes to the next pending request, or back to the\n"
    "idle ones (closed when the pool drains); any other is closed.");

static PyObject *pool_on_stream_done(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* (client, reusable), either by keyword as well. */
    static const char *const names[] = {"client", "reusable"};
    PyObject *given[2] = {nargs > 0 ? args[0] : NULL, nargs > 1 ? args[1] : NULL};
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nkw && nargs <= 2; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        int k = PyUnicode_CompareWithASCIIString(key, names[0]) == 0   ? 0
                : PyUnicode_CompareWithASCIIString(key, names[1]) == 0 ? 1
                                                                       : -1;
        if (k < 0 || given[k] != NULL) {
            PyErr_Format(PyExc_TypeError, "_on_stream_done() got an unexpected or repeated argument '%U'", key);
            return NULL;
        }
        given[k] = args[nargs + i];
    }
    if (nargs > 2 || given[0] == NULL || given[1] == NULL) {
        PyErr_SetString(PyExc_TypeError, "_on_stream_done(client, reusable) takes 2 arguments");
        return NULL;
    }
    PyObject *client = given[0];
    int reusable = pe_truth(given[1]);
    if (reusable < 0)
        return NULL;
    if (!PyObject_TypeCheck(client, client_type)) {
        PyErr_SetString(PyExc_TypeError, "_on_stream_done() takes a CodecClient");
        return NULL;
    }
    /* _release_busy() */
    PyObject *busy = pe_slot_get(self, pool_at.busy, "_busy");
    PyObject *requests = busy == NULL ? NULL : pe_slot_get(self, pool_at.requests, "_requests");
    if (requests == NULL)
        return NULL;
    if (!PySet_CheckExact(busy)) {
        PyErr_SetString(PyExc_TypeError, "the pool's busy connections are a set");
        return NULL;
    }
    int was_busy = PySet_Discard(busy, client);
    if (was_busy < 0)
        return NULL;
    if (was_busy) {
        if (resource_step(requests, 0) < 0 || count_request(self, 0) < 0)
            return NULL;
    }
    int closed = pe_slot_truth(client, client_at.closed, "closed");
    if (closed < 0)
        return NULL;
    if (closed)
        Py_RETURN_NONE;
    if (!reusable)
        return pe_call_method(client, s_close, 0, NULL, NULL, NULL);
    /* _on_client_idle(), whose common case is no request waiting: the connection is idle. */
    PyObject *pending = pe_slot_get(self, pool_at.pending, "_pending");
    PyObject *ready = pending == NULL ? NULL : pe_slot_get(self, pool_at.ready, "_ready");
    if (ready == NULL)
        return NULL;
    Py_ssize_t waiting = PyObject_Length(pending);
    if (waiting < 0)
        return NULL;
    int draining = pe_slot_truth(self, pool_at.draining, "_draining");
    if (draining < 0)
        return NULL;
    if (waiting || draining || !PyList_CheckExact(ready))
        return pe_call_method(self, s_on_client_idle, 1, client, NULL, NULL);
    if (PyList_Append(ready, client) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* CodecClient's ReadFilter and ResponseDecoder methods */

PyDoc_STRVAR(on_data_doc,
    "on_data(data, end_stream) -> FilterStatus.STOP_ITERATION: the upstream's bytes go to the\n"
    "codec (end_stream: its EOF too).  An exception from the response path costs this\n"
    "connection (closed; its stream reset), not the worker: _on_data_error logs it.");

static PyObject *client_on_data(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "on_data(data, end_stream) takes 2 arguments");
        return NULL;
    }
    PyObject *data = args[0];
    int end_stream = pe_truth(args[1]);
    if (end_stream < 0)
        return NULL;
    PyObject *codec = pe_slot_get(self, client_at.codec, "codec");
    if (codec == NULL)
        return NULL;
    Py_INCREF(codec);
    int r = 0;
    PyObject *length = PyObject_TypeCheck(data, buffer_type) ? SLOT(data, buffer_at.length) : NULL;
    int has_bytes = length != NULL ? pe_truth(length) : PyObject_IsTrue(data);
    if (has_bytes < 0)
        r = -1;
    else if (has_bytes) {
        PyObject *bytes = PyObject_TypeCheck(data, buffer_type) ? PyObject_CallOneArg(buffer_take, data)
                                                                 : PyObject_CallMethod(data, "take", NULL);
        r = bytes == NULL ? -1 : pe_run_method(codec, s_dispatch, 1, bytes, NULL, NULL);
        Py_XDECREF(bytes);
    }
    if (r == 0 && end_stream) {
        int closed = pe_slot_truth(self, client_at.closed, "closed");
        if (closed < 0)
            r = -1;
        else if (!closed)
            r = pe_run_method(codec, s_dispatch_eof, 0, NULL, NULL, NULL);
    }
    Py_DECREF(codec);
    if (r < 0 && pe_hand_exception(self, s_on_data_error) < 0)
        return NULL;
    return Py_NewRef(stop_iteration);
}

/* CodecClient._on_response_complete, as a C function. */
static int response_complete(PyObject *self)
{
    PyObject *owner = pe_slot_get(self, client_at.stream_owner, "_stream_owner");
    if (owner == NULL)
        return -1;
    int had_owner = owner != Py_None;
    pe_slot_put(self, client_at.stream_owner, Py_NewRef(Py_None));
    pe_slot_put(self, client_at.stream_decoder, Py_NewRef(Py_None));
    if (!had_owner)
        return 0;
    PyObject *codec = pe_slot_get(self, client_at.codec, "codec");
    if (codec == NULL)
        return -1;
    if (!PyObject_TypeCheck(codec, codec_type)) {
        PyErr_SetString(PyExc_TypeError, "the client's codec is not the HTTP/1 client codec");
        return -1;
    }
    int reusable = pe_slot_truth(codec, codec_at.should_close, "should_close");
    if (reusable < 0)
        return -1;
    reusable = !reusable;
    if (reusable) {
        PyObject *stream = pe_slot_get(codec, codec_at.stream, "_stream");
        if (stream == NULL)
            return -1;
        if (stream != Py_None) {
            reusable = PyObject_TypeCheck(stream, encoder_type) ? pe_slot_truth(stream, encoder_at.complete, "_complete")
                                                                : 0;
            if (reusable < 0)
                return -1;
        }
    }
    PyObject *pool = pe_slot_get(self, client_at.pool, "_pool");
    if (pool == NULL)
        return -1;
    Py_INCREF(pool);
    int r = pe_run_method(pool, s_on_stream_done, 2, self, reusable ? Py_True : Py_False, NULL);
    Py_DECREF(pool);
    return r;
}

PyDoc_STRVAR(on_response_complete_doc,
    "_on_response_complete(): the response ended: the stream's owner is let go and the pool\n"
    "told whether the connection can carry another request.");

static PyObject *client_on_response_complete(PyObject *self, PyObject *unused)
{
    return response_complete(self) < 0 ? NULL : Py_NewRef(Py_None);
}

/* decode_headers / decode_data: to the stream's decoder, then the end. */
static PyObject *forward(PyObject *self, PyObject *name, PyObject *const *args, Py_ssize_t nargs, int headers)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%U(...) takes 2 arguments", name);
        return NULL;
    }
    int end_stream = pe_truth(args[1]);
    if (end_stream < 0)
        return NULL;
    if (headers)
        pe_slot_put(self, client_at.response_started, Py_NewRef(Py_True));
    PyObject *decoder = pe_slot_get(self, client_at.stream_decoder, "_stream_decoder");
    if (decoder == NULL)
        return NULL;
    if (decoder != Py_None) {
        Py_INCREF(decoder);
        int r = pe_run_method(decoder, name, 2, args[0], args[1], NULL);
        Py_DECREF(decoder);
        if (r < 0)
            return NULL;
    }
    if (end_stream && response_complete(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(decode_headers_doc, "decode_headers(headers, end_stream): the response's headers, to the stream's decoder.");

static PyObject *client_decode_headers(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return forward(self, s_decode_headers, args, nargs, 1);
}

PyDoc_STRVAR(decode_data_doc, "decode_data(data, end_stream): response body bytes, to the stream's decoder.");

static PyObject *client_decode_data(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return forward(self, s_decode_data, args, nargs, 0);
}

/* binding */

static PyMethodDef pool_methods[] = {
    {"new_stream", (PyCFunction)(void (*)(void))pool_new_stream, METH_FASTCALL, new_stream_doc},
    {"_on_stream_done", (PyCFunction)(void (*)(void))pool_on_stream_done, METH_FASTCALL | METH_KEYWORDS,
     on_stream_done_doc},
    {NULL, NULL, 0, NULL},
};
static PyMethodDef client_methods[] = {
    {"start_stream", (PyCFunction)(void (*)(void))client_start_stream, METH_FASTCALL, start_stream_doc},
    {"on_data", (PyCFunction)(void (*)(void))client_on_data, METH_FASTCALL, on_data_doc},
    {"decode_headers", (PyCFunction)(void (*)(void))client_decode_headers, METH_FASTCALL, decode_headers_doc},
    {"decode_data", (PyCFunction)(void (*)(void))client_decode_data, METH_FASTCALL, decode_data_doc},
    {"_on_response_complete", (PyCFunction)client_on_response_complete, METH_NOARGS, on_response_complete_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(bind_doc,
    "bind(types, stop_iteration): install the pool's C methods.\n\n"
    "types: Http1ConnPool, CodecClient, Resource (the plain circuit breaker counter),\n"
    "ClusterTrafficStats, HostStats, ClientCodec, RequestEncoder and Buffer (the classes whose\n"
    "slots are read; TypeError if one is missing).  stop_iteration: FilterStatus.STOP_ITERATION.");

static PyObject *bind(PyObject *module, PyObject *args)
{
    PyObject *types, *stop;
    if (!PyArg_ParseTuple(args, "O!O:bind", &PyDict_Type, &types, &stop))
        return NULL;
    if (pe_dict_type(types, "Http1ConnPool", &pool_type) < 0 || pe_dict_type(types, "CodecClient", &client_type) < 0
        || pe_dict_type(types, "Resource", &resource_type) < 0
        || pe_dict_type(types, "ClusterTrafficStats", &cluster_stats_type) < 0
        || pe_dict_type(types, "HostStats", &host_stats_type) < 0 || pe_dict_type(types, "ClientCodec", &codec_type) < 0
        || pe_dict_type(types, "RequestEncoder", &encoder_type) < 0 || pe_dict_type(types, "Buffer", &buffer_type) < 0)
        return NULL;
    const pe_slot_name pool_slots[] = {
        {"_ready", &pool_at.ready},         {"_busy", &pool_at.busy},   {"_pending", &pool_at.pending},
        {"_draining", &pool_at.draining},   {"_requests", &pool_at.requests}, {"stats", &pool_at.stats},
        {"host_stats", &pool_at.host_stats},
    };
    const pe_slot_name client_slots[] = {
        {"_pool", &client_at.pool},
        {"codec", &client_at.codec},
        {"_stream_decoder", &client_at.stream_decoder},
        {"_stream_owner", &client_at.stream_owner},
        {"response_started", &client_at.response_started},
        {"requests", &client_at.requests},
        {"closed", &client_at.closed},
    };
    const pe_slot_name resource_slots[] = {{"count", &resource_at.count}, {"max", &resource_at.max}, {"used", &resource_at.used}};
    const pe_slot_name cluster_stats_slots[] = {
        {"upstream_rq_total", &cluster_stats_at.rq_total},
        {"upstream_rq_active", &cluster_stats_at.rq_active},
    };
    const pe_slot_name host_stats_slots[] = {{"rq_total", &host_stats_at.rq_total}, {"rq_active", &host_stats_at.rq_active}};
    const pe_slot_name codec_slots[] = {{"_stream", &codec_at.stream}, {"should_close", &codec_at.should_close}};
    const pe_slot_name encoder_slots[] = {{"_complete", &encoder_at.complete}};
    const pe_slot_name buffer_slots[] = {{"_length", &buffer_at.length}};
    if (PE_SLOT_OFFSETS(pool_type, pool_slots) < 0 || PE_SLOT_OFFSETS(client_type, client_slots) < 0
        || PE_SLOT_OFFSETS(resource_type, resource_slots) < 0 || PE_SLOT_OFFSETS(cluster_stats_type, cluster_stats_slots) < 0
        || PE_SLOT_OFFSETS(host_stats_type, host_stats_slots) < 0 || PE_SLOT_OFFSETS(codec_type, codec_slots) < 0
        || PE_SLOT_OFFSETS(encoder_type, encoder_slots) < 0 || PE_SLOT_OFFSETS(buffer_type, buffer_slots) < 0)
        return NULL;
    PyObject *take = PyObject_GetAttrString((PyObject *)buffer_type, "take");
    if (take == NULL)
        return NULL;
    Py_XSETREF(buffer_take, take);
    Py_XSETREF(stop_iteration, Py_NewRef(stop));
    if (pe_install_methods(pool_type, pool_methods) < 0 || pe_install_methods(client_type, client_methods) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"bind", bind, METH_VARARGS, bind_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pyevent_envoy._conn_pool",
    "The upstream connection pool's per-request methods in C (see the source).",
    -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__conn_pool(void)
{
    if (pe_intern(&s_new_stream_general, "_new_stream_general") < 0 || pe_intern(&s_on_pool_ready, "on_pool_ready") < 0
        || pe_intern(&s_new_stream, "new_stream") < 0 || pe_intern(&s_dispatch, "dispatch") < 0
        || pe_intern(&s_dispatch_eof, "dispatch_eof") < 0 || pe_intern(&s_on_data_error, "_on_data_error") < 0
        || pe_intern(&s_decode_headers, "decode_headers") < 0 || pe_intern(&s_decode_data, "decode_data") < 0
        || pe_intern(&s_on_response_complete, "_on_response_complete") < 0
        || pe_intern(&s_on_stream_done, "_on_stream_done") < 0 || pe_intern(&s_on_client_idle, "_on_client_idle") < 0
        || pe_intern(&s_close, "close") < 0 || pe_intern(&s_inc, "inc") < 0 || pe_intern(&s_dec, "dec") < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
#ifdef Py_GIL_DISABLED
    PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    return m;
}
