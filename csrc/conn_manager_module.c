/*
 * pyevent-envoy: pyevent_envoy._conn_manager, the HTTP connection manager's
 * per-stream bookkeeping in C.
 *
 * Each request opens a stream (ActiveStream, with its StreamInfo and its
 * filters) and closes it once the response is out.  For the common
 * configuration that is only copying the connection manager's facts into the
 * new objects, counting, and arming or checking the connection's one timer;
 * as Python it was a sixth of a proxied request's bytecodes.  bind() installs
 * these C methods on the classes of pyevent_envoy/http/conn_manager_impl.py:
 *
 *   ConnectionManagerImpl.on_data(data, end_stream)
 *   ConnectionManagerImpl.new_stream(encoder)
 *   ConnectionManagerImpl._on_stream_done(stream)
 *   ActiveStream.decode_headers(headers, end_stream)
 *   ActiveStream.encode_headers(headers, end_stream)
 *   ActiveStream.encode_data(data, end_stream)
 *   ActiveStream.destroy()
 *
 * new_stream takes the common case only: one filter factory and no request
 * timeout, with no request head pending; everything else goes to
 * _new_stream_general, the Python method whose ActiveStream.__init__ this
 * mirrors (tests/http/test_conn_manager_c.py compares the two).
 * decode_headers and encode_headers likewise take the common configuration
 * and request (see each) and leave the rest to _decode_headers_general and
 * _encode_headers_general; encode_data leaves a chain with encoder filters
 * to _encode_data_from.  The others are whole: what is rare in them is a
 * Python call.
 *
 * Attributes are the classes' __slots__, read in place (slots.h); a
 * connection or codec of another type than the proxy's own is read with
 * getattr().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "slots.h"

static struct {
    Py_ssize_t dispatcher, connection, config, cluster_manager, stats, codec, streams, remote_address, local_address,
        connection_id, head_started, timer, timer_deadline, read_paused, close_after_response, draining, idle_since, scheme,
        rng, http1_counted;
} manager_at;
static struct {
    Py_ssize_t manager, encoder, dispatcher, connection, config, cluster_manager, stats, stream_info, is_upgrade,
        decoder_filters, encoder_filters, last_activity, destroyed, request_complete, request_timer,
        decoder_read_disabled, decoder_buffer, pending_trailers, response_timeout_cb, request_headers, route, decoder_index,
        local_reply_sent, response_complete;
} stream_at;
static struct {
    Py_ssize_t start_time, start_monotonic, protocol, response_flags, remote, direct_remote, local, connection_id,
        end_monotonic, request_headers, response_headers, stream_id, route_name, response_code, health_check, bytes_sent;
} info_at;
static struct {
    Py_ssize_t filter_factories, stream_idle_timeout, request_timeout, access_logs, idle_timeout, use_remote_address,
        xff_num_trusted_hops, generate_request_id, default_host_for_http_10, route_table, server_name, drain_decision;
} config_at;
static struct {
    Py_ssize_t rq_total, rq_http1_total, rq_active, rq_rx_reset, rq_time, rq_completed, rq_xx;
} stats_at;
static struct {
    Py_ssize_t names, values;
} headers_at;
static struct {
    Py_ssize_t second, value;
} date_at;
static struct {
    Py_ssize_t approximate_now;
} dispatcher_at;
static struct {
    Py_ssize_t state;
} connection_at;
static struct {
    Py_ssize_t paused, should_close, state, pending;
} codec_at;
static struct {
    Py_ssize_t length;
} buffer_at;
static long codec_head_state; /* the server codec's _HEAD */

static PyTypeObject *manager_type, *stream_type, *info_type, *config_type, *stats_type, *dispatcher_type,
    *connection_type, *codec_type, *headers_type, *date_type, *buffer_type;
static PyObject *buffer_take;   /* the buffer type's take() */
static PyObject *stop_iteration; /* FilterStatus.STOP_ITERATION */
static PyObject *date_cache;     /* the _DateCache instance */
static PyObject *status_codes;   /* {"200": 200, ...} */
static PyObject *mutate_plain;   /* pyevent_envoy._headers.mutate_plain */
static PyObject *internal_only;  /* the internal-only header names */
static PyObject *no_drain;       /* the drain decision that never drains */
static PyObject *headers_stop;   /* FilterHeadersStatus.STOP_ITERATION */
static PyObject *filter_kinds;  /* {filter type: (decodes, encodes)} */
static PyObject *time_time;     /* time.time */
static PyObject *state_open;    /* ConnectionState.OPEN */
static PyObject *flush_write_and_delay;
static PyObject *empty_tuple;

static PyObject *s_new_stream_general, *s_arm_timer, *s_set_decoder_filter_callbacks, *s_set_encoder_filter_callbacks,
    *s_decode_headers, *s_encode_headers, *s_upgrade, *s_protocol, *s_approximate_now, *s_record_duration, *s_log,
    *s_close, *s_read_disable, *s_on_destroy, *s_remove, *s_state, *s_paused, *s_should_close, *s_stats, *s_access_logs,
    *s_idle_timeout, *s_destroy, *s_get, *s_set_trusted, *s_expect, *s_date, *s_server, *s_status, *s_route,
    *s_uses_random, *s_random, *s_route_name, *s_on_request_complete, *s_decode_headers_general,
    *s_encode_headers_general, *s_empty, *s_active, *s_get_date, *s_dispatch, *s_partial_head, *s_on_head_started,
    *s_on_end_stream, *s_on_data_error, *s_encode_data, *s_encode_data_from, *s_downstream_cx_http1_total,
    *s_downstream_cx_http1_active;

/* helpers */

/* getattr(obj, name) that leaves *result NULL (and returns 0) when obj has no such attribute. */
static int optional_attr(PyObject *obj, PyObject *name, PyObject **result)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttr(obj, name, result);
#else
    return _PyObject_LookupAttr(obj, name, result);
#endif
}

static int has_attr(PyObject *obj, PyObject *name)
{
    PyObject *value;
    int r = optional_attr(obj, name, &value);
    Py_XDECREF(value);
    return r;
}

#define SLOT PE_SLOT

/* obj's attribute, from its slot when obj is a cls, else by getattr: a new reference. */
static PyObject *attr(PyObject *obj, PyTypeObject *cls, Py_ssize_t offset, PyObject *name)
{
    if (PyObject_TypeCheck(obj, cls)) {
        PyObject *value = SLOT(obj, offset);
        if (value != NULL)
            return Py_NewRef(value);
    }
    return PyObject_GetAttr(obj, name);
}

/* A float slot (ints allowed): its value, or -1.0 with an exception set. */
static double float_slot(PyObject *obj, Py_ssize_t offset, const char *name)
{
    PyObject *value = pe_slot_get(obj, offset, name);
    if (value == NULL)
        return -1.0;
    return PyFloat_CheckExact(value) ? PyFloat_AS_DOUBLE(value) : PyFloat_AsDouble(value);
}

/* The dispatcher's approximate_now as a new reference. */
static PyObject *approximate_now(PyObject *dispatcher)
{
    return attr(dispatcher, dispatcher_type, dispatcher_at.approximate_now, s_approximate_now);
}

/* manager._arm_timer(deadline), whose common call (a deadline after the
 * armed one) changes nothing: that is checked here. */
static int arm_timer(PyObject *manager, double deadline)
{
    PyObject *timer = pe_slot_get(manager, manager_at.timer, "_timer");
    if (timer == NULL)
        return -1;
    double armed = float_slot(manager, manager_at.timer_deadline, "_timer_deadline");
    if (armed == -1.0 && PyErr_Occurred())
        return -1;
    if (!(deadline < armed) || timer == Py_None)
        return 0;
    PyObject *d = PyFloat_FromDouble(deadline);
    if (d == NULL)
        return -1;
    int r = pe_run_method(manager, s_arm_timer, 1, d, NULL, NULL);
    Py_DECREF(d);
    return r;
}

/* A new instance of cls (a defaults_base class: its fields start set) without __init__. */
static PyObject *bare_instance(PyTypeObject *cls)
{
    return cls->tp_new(cls, empty_tuple, NULL);
}

/* ConnectionManagerImpl.new_stream */

/* StreamInfo(now, protocol, remote, local, connection_id), as its __init__. */
static PyObject *new_stream_info(PyObject *manager, PyObject *now, PyObject *protocol)
{
    PyObject *info = bare_instance(info_type);
    if (info == NULL)
        return NULL;
    PyObject *start = PyObject_CallNoArgs(time_time);
    PyObject *flags = start == NULL ? NULL : PyDict_New();
    if (flags == NULL) {
        Py_XDECREF(start);
        Py_DECREF(info);
        return NULL;
    }
    PyObject *remote = SLOT(manager, manager_at.remote_address);
    PyObject *local = SLOT(manager, manager_at.local_address);
    PyObject *id = SLOT(manager, manager_at.connection_id);
    if (remote == NULL || local == NULL || id == NULL) {
        Py_DECREF(start);
        Py_DECREF(flags);
        Py_DECREF(info);
        PyErr_SetString(PyExc_AttributeError, "the connection manager has no connection facts yet");
        return NULL;
    }
    pe_slot_put(info, info_at.start_time, start);
    pe_slot_put(info, info_at.start_monotonic, Py_NewRef(now));
    pe_slot_put(info, info_at.protocol, Py_NewRef(protocol));
    pe_slot_put(info, info_at.response_flags, flags);
    pe_slot_put(info, info_at.remote, Py_NewRef(remote));
    pe_slot_put(info, info_at.direct_remote, Py_NewRef(remote));
    pe_slot_put(info, info_at.local, Py_NewRef(local));
    pe_slot_put(info, info_at.connection_id, Py_NewRef(id));
    return info;
}

/* The one filter's kinds: (decodes, encodes), cached by its type. */
static PyObject *kinds_of(PyObject *flt)
{
    PyObject *kinds = PyDict_GetItemWithError(filter_kinds, (PyObject *)Py_TYPE(flt));
    if (kinds != NULL)
        return Py_NewRef(kinds);
    if (PyErr_Occurred())
        return NULL;
    int decodes = has_attr(flt, s_decode_headers);
    int encodes = decodes < 0 ? -1 : has_attr(flt, s_encode_headers);
    if (encodes < 0)
        return NULL;
    kinds = PyTuple_Pack(2, decodes ? Py_True : Py_False, encodes ? Py_True : Py_False);
    if (kinds == NULL || PyDict_SetItem(filter_kinds, (PyObject *)Py_TYPE(flt), kinds) < 0) {
        Py_XDECREF(kinds);
        return NULL;
    }
    return kinds;
}

PyDoc_STRVAR(new_stream_doc,
    "new_stream(encoder) -> ActiveStream: the codec's call for a new request (ServerConnectionCallbacks).\n\n"
    "With one filter factory, no request_timeout and no request head pending, the\n"
    "stream is made here as ActiveStream.__init__ makes it; otherwise by\n"
    "_new_stream_general.");

static PyObject *manager_new_stream(PyObject *self, PyObject *encoder)
{
    PyObject *config = pe_slot_get(self, manager_at.config, "config");
    PyObject *head_started = pe_slot_get(self, manager_at.head_started, "_head_started");
    if (config == NULL || head_started == NULL)
        return NULL;
    if (!PyObject_TypeCheck(config, config_type) || head_started != Py_None)
        goto general;
    PyObject *factories = pe_slot_get(config, config_at.filter_factories, "filter_factories");
    if (factories == NULL)
        return NULL;
    double request_timeout = float_slot(config, config_at.request_timeout, "request_timeout");
    double idle_timeout = float_slot(config, config_at.stream_idle_timeout, "stream_idle_timeout");
    if ((request_timeout == -1.0 || idle_timeout == -1.0) && PyErr_Occurred())
        return NULL;
    if (!PyTuple_CheckExact(factories) || PyTuple_GET_SIZE(factories) != 1 || request_timeout > 0)
        goto general;
    PyObject *stats = pe_slot_get(self, manager_at.stats, "stats");
    PyObject *dispatcher = pe_slot_get(self, manager_at.dispatcher, "dispatcher");
    PyObject *streams = pe_slot_get(self, manager_at.streams, "streams");
    if (stats == NULL || dispatcher == NULL || streams == NULL)
        return NULL;
    if (!PyObject_TypeCheck(stats, stats_type) || !PyList_CheckExact(streams))
        goto general;

    PyObject *stream = bare_instance(stream_type);
    if (stream == NULL)
        return NULL;
    PyObject *now = NULL, *protocol = NULL, *info = NULL, *upgrade = NULL, *flt = NULL, *kinds = NULL;
    static const Py_ssize_t *copied[] = {&manager_at.dispatcher, &manager_at.connection, &manager_at.config,
                                         &manager_at.cluster_manager, &manager_at.stats};
    static const Py_ssize_t *into[] = {&stream_at.dispatcher, &stream_at.connection, &stream_at.config,
                                       &stream_at.cluster_manager, &stream_at.stats};
    pe_slot_put(stream, stream_at.manager, Py_NewRef(self));
    pe_slot_put(stream, stream_at.encoder, Py_NewRef(encoder));
    for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++) {
        PyObject *value = SLOT(self, *copied[i]);
        if (value == NULL) {
            PyErr_SetString(PyExc_AttributeError, "the connection manager is not set up");
            goto error;
        }
        pe_slot_put(stream, *into[i], Py_NewRef(value));
    }
    now = approximate_now(dispatcher);
    protocol = now == NULL ? NULL : PyObject_GetAttr(encoder, s_protocol);
    info = protocol == NULL ? NULL : new_stream_info(self, now, protocol);
    if (info == NULL)
        goto error;
    pe_slot_put(stream, stream_at.stream_info, Py_NewRef(info));
    /* (the codec knows an upgrade from the head, before the stream exists) */
    if (optional_attr(encoder, s_upgrade, &upgrade) < 0)
        goto error;
    pe_slot_put(stream, stream_at.is_upgrade, upgrade != NULL ? Py_NewRef(upgrade) : Py_NewRef(Py_False));
    if (pe_slot_add(stats, stats_at.rq_total, "downstream_rq_total", 1) < 0
        || pe_slot_add(stats, stats_at.rq_http1_total, "downstream_rq_http1_total", 1) < 0
        || pe_slot_add(stats, stats_at.rq_active, "downstream_rq_active", 1) < 0)
        goto error;
    /* The chain: the one filter, its kinds known by its type. */
    flt = PyObject_CallOneArg(PyTuple_GET_ITEM(factories, 0), stream);
    kinds = flt == NULL ? NULL : kinds_of(flt);
    if (kinds == NULL)
        goto error;
    int decodes = pe_truth(PyTuple_GET_ITEM(kinds, 0)), encodes = pe_truth(PyTuple_GET_ITEM(kinds, 1));
    PyObject *decoders = decodes ? PyTuple_Pack(1, flt) : Py_NewRef(empty_tuple);
    PyObject *encoders = encodes ? PyTuple_Pack(1, flt) : Py_NewRef(empty_tuple);
    if (decoders == NULL || encoders == NULL) {
        Py_XDECREF(decoders);
        Py_XDECREF(encoders);
        goto error;
    }
    pe_slot_put(stream, stream_at.decoder_filters, decoders);
    pe_slot_put(stream, stream_at.encoder_filters, encoders);
    if ((decodes && pe_run_method(flt, s_set_decoder_filter_callbacks, 1, stream, NULL, NULL) < 0)
        || (encodes && pe_run_method(flt, s_set_encoder_filter_callbacks, 1, stream, NULL, NULL) < 0))
        goto error;
    /* The stream idle timeout's last activity; the connection's timer keeps the deadline. */
    pe_slot_put(stream, stream_at.last_activity, Py_NewRef(now));
    if (idle_timeout > 0) {
        double start = PyFloat_AsDouble(now);
        if ((start == -1.0 && PyErr_Occurred()) || arm_timer(self, start + idle_timeout) < 0)
            goto error;
    }
    if (PyList_Append(streams, stream) < 0)
        goto error;
    Py_DECREF(now);
    Py_DECREF(protocol);
    Py_DECREF(info);
    Py_XDECREF(upgrade);
    Py_DECREF(flt);
    Py_DECREF(kinds);
    return stream;
error:
    Py_XDECREF(now);
    Py_XDECREF(protocol);
    Py_XDECREF(info);
    Py_XDECREF(upgrade);
    Py_XDECREF(flt);
    Py_XDECREF(kinds);
    Py_DECREF(stream);
    return NULL;
general:
    return pe_call_method(self, s_new_stream_general, 1, encoder, NULL, NULL);
}

/* ActiveStream.destroy */

/* flt.on_destroy() for each filter, the encoder-only ones after the decoders. */
static int destroy_filters(PyObject *decoders, PyObject *encoders)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(decoders); i++)
        if (pe_run_method(PyTuple_GET_ITEM(decoders, i), s_on_destroy, 0, NULL, NULL, NULL) < 0)
            return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(encoders); i++) {
        PyObject *flt = PyTuple_GET_ITEM(encoders, i);
        int also_decoder = PySequence_Contains(decoders, flt);
        if (also_decoder < 0)
            return -1;
        if (!also_decoder && pe_run_method(flt, s_on_destroy, 0, NULL, NULL, NULL) < 0)
            return -1;
    }
    return 0;
}

PyDoc_STRVAR(destroy_doc,
    "destroy(): the stream's end (once): gauges and the request time, access logs, timers,\n"
    "then each filter's on_destroy().");

static PyObject *stream_destroy(PyObject *self, PyObject *unused)
{
    int t = pe_slot_truth(self, stream_at.destroyed, "_destroyed");
    if (t != 0)
        return t < 0 ? NULL : Py_NewRef(Py_None);
    pe_slot_put(self, stream_at.destroyed, Py_NewRef(Py_True));
    PyObject *manager = pe_slot_get(self, stream_at.manager, "_manager");
    if (manager == NULL)
        return NULL;
    Py_INCREF(manager);
    PyObject *stats = NULL, *info = NULL, *end = NULL, *config = NULL, *logs = NULL;
    int ok = 0;
    stats = attr(manager, manager_type, manager_at.stats, s_stats);
    if (stats == NULL)
        goto done;
    if (PyObject_TypeCheck(stats, stats_type)) {
        if (pe_slot_add(stats, stats_at.rq_active, "downstream_rq_active", -1) < 0)
            goto done;
    }
    else {
        PyErr_SetString(PyExc_TypeError, "the connection manager's stats are not HttpConnManagerStats");
        goto done;
    }
    info = pe_slot_get(self, stream_at.stream_info, "stream_info");
    if (info == NULL)
        goto done;
    Py_INCREF(info);
    PyObject *dispatcher = pe_slot_get(manager, manager_at.dispatcher, "dispatcher");
    if (dispatcher == NULL || (end = approximate_now(dispatcher)) == NULL)
        goto done;
    pe_slot_put(info, info_at.end_monotonic, Py_NewRef(end));
    /* Envoy's request_response_timespan_: from the stream's creation to its completion. */
    double start = float_slot(info, info_at.start_monotonic, "start_monotonic");
    double stop = PyFloat_AsDouble(end);
    if ((start == -1.0 || stop == -1.0) && PyErr_Occurred())
        goto done;
    PyObject *recorder = pe_slot_get(stats, stats_at.rq_time, "downstream_rq_time");
    PyObject *duration = recorder == NULL ? NULL : PyFloat_FromDouble(stop - start);
    if (duration == NULL)
        goto done;
    int r = pe_run_method(recorder, s_record_duration, 1, duration, NULL, NULL);
    Py_DECREF(duration);
    if (r < 0)
        goto done;
    config = pe_slot_get(manager, manager_at.config, "config");
    if (config == NULL)
        goto done;
    Py_INCREF(config);
    logs = attr(config, config_type, config_at.access_logs, s_access_logs);
    if (logs == NULL)
        goto done;
    t = PyObject_IsTrue(logs);
    if (t < 0)
        goto done;
    if (t) {
        PyObject *it = PyObject_GetIter(logs);
        if (it == NULL)
            goto done;
        PyObject *log;
        while ((log = PyIter_Next(it)) != NULL) {
            r = pe_run_method(log, s_log, 1, info, NULL, NULL);
            Py_DECREF(log);
            if (r < 0)
                break;
        }
        Py_DECREF(it);
        if (PyErr_Occurred())
            goto done;
    }
    PyObject *timer = pe_slot_get(self, stream_at.request_timer, "_request_timer");
    if (timer == NULL)
        goto done;
    if (timer != Py_None) {
        Py_INCREF(timer);
        r = pe_run_method(timer, s_close, 0, NULL, NULL, NULL);
        Py_DECREF(timer);
        if (r < 0)
            goto done;
        pe_slot_put(self, stream_at.request_timer, Py_NewRef(Py_None));
    }
    t = pe_slot_truth(self, stream_at.decoder_read_disabled, "_decoder_read_disabled");
    if (t < 0)
        goto done;
    if (t) {
        pe_slot_put(self, stream_at.decoder_read_disabled, Py_NewRef(Py_False));
        PyObject *connection = pe_slot_get(manager, manager_at.connection, "connection");
        if (connection == NULL || pe_run_method(connection, s_read_disable, 1, Py_False, NULL, NULL) < 0)
            goto done;
    }
    pe_slot_put(self, stream_at.decoder_buffer, Py_NewRef(Py_None));
    pe_slot_put(self, stream_at.pending_trailers, Py_NewRef(Py_None));
    pe_slot_put(self, stream_at.response_timeout_cb, Py_NewRef(Py_None));
    PyObject *decoders = pe_slot_get(self, stream_at.decoder_filters, "_decoder_filters");
    PyObject *encoders = decoders == NULL ? NULL : pe_slot_get(self, stream_at.encoder_filters, "_encoder_filters");
    if (encoders == NULL)
        goto done;
    if (!PyTuple_CheckExact(decoders) || !PyTuple_CheckExact(encoders)) {
        PyErr_SetString(PyExc_TypeError, "a stream's filter chains are tuples");
        goto done;
    }
    Py_INCREF(decoders);
    Py_INCREF(encoders);
    r = destroy_filters(decoders, encoders);
    Py_DECREF(decoders);
    Py_DECREF(encoders);
    if (r < 0)
        goto done;
    pe_slot_put(self, stream_at.decoder_filters, Py_NewRef(empty_tuple));
    pe_slot_put(self, stream_at.encoder_filters, Py_NewRef(empty_tuple));
    ok = 1;
done:
    Py_DECREF(manager);
    Py_XDECREF(stats);
    Py_XDECREF(info);
    Py_XDECREF(end);
    Py_XDECREF(config);
    Py_XDECREF(logs);
    return ok ? Py_NewRef(Py_None) : NULL;
}

/* ConnectionManagerImpl._on_stream_done */

PyDoc_STRVAR(on_stream_done_doc,
    "_on_stream_done(stream): a stream's response ended (or it was reset): destroy it, then\n"
    "resume reading, close the connection (FLUSH_WRITE_AND_DELAY) when it must, or start\n"
    "its idle timeout when no stream is left.");

static PyObject *manager_on_stream_done(PyObject *self, PyObject *stream)
{
    if (!PyObject_TypeCheck(stream, stream_type)) {
        PyErr_SetString(PyExc_TypeError, "_on_stream_done() takes an ActiveStream");
        return NULL;
    }
    int t = pe_slot_truth(stream, stream_at.destroyed, "_destroyed");
    if (t != 0)
        return t < 0 ? NULL : Py_NewRef(Py_None);
    t = pe_slot_truth(stream, stream_at.request_complete, "request_complete");
    if (t < 0)
        return NULL;
    if (!t) {
        /* Envoy resets a stream that ends before its request did (doEndStream). */
        PyObject *stats = pe_slot_get(self, manager_at.stats, "stats");
        if (stats == NULL)
            return NULL;
        if (!PyObject_TypeCheck(stats, stats_type)) {
            PyErr_SetString(PyExc_TypeError, "the connection manager's stats are not HttpConnManagerStats");
            return NULL;
        }
        if (pe_slot_add(stats, stats_at.rq_rx_reset, "downstream_rq_rx_reset", 1) < 0)
            return NULL;
    }
    Py_INCREF(stream);
    PyObject *r = PyObject_VectorcallMethod(s_destroy, &stream, 1, NULL);
    if (r == NULL) {
        Py_DECREF(stream);
        return NULL;
    }
    Py_DECREF(r);
    PyObject *streams = pe_slot_get(self, manager_at.streams, "streams");
    if (streams == NULL) {
        Py_DECREF(stream);
        return NULL;
    }
    if (PyList_CheckExact(streams) && PyList_GET_SIZE(streams) > 0 && PyList_GET_ITEM(streams, 0) == stream) {
        /* The common case, one stream: list.remove() without the search. */
        if (PyList_SetSlice(streams, 0, 1, NULL) < 0) {
            Py_DECREF(stream);
            return NULL;
        }
    }
    else {
        r = pe_call_method(streams, s_remove, 1, stream, NULL, NULL);
        if (r == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
                Py_DECREF(stream);
                return NULL;
            }
            PyErr_Clear(); /* a protocol-error reply's stream may not be in the list */
        }
        else
            Py_DECREF(r);
    }
    Py_DECREF(stream);
    PyObject *connection = pe_slot_get(self, manager_at.connection, "connection");
    if (connection == NULL)
        return NULL;
    Py_INCREF(connection);
    PyObject *codec = NULL, *state = attr(connection, connection_type, connection_at.state, s_state);
    int ok = 0;
    if (state == NULL)
        goto done;
    if (state != state_open) {
        ok = 1;
        goto done;
    }
    codec = pe_slot_get(self, manager_at.codec, "codec");
    if (codec == NULL)
        goto done;
    Py_INCREF(codec);
    t = pe_slot_truth(self, manager_at.read_paused, "_read_paused");
    if (t < 0)
        goto done;
    if (t) {
        PyObject *paused = attr(codec, codec_type, codec_at.paused, s_paused);
        int codec_paused = paused == NULL ? -1 : pe_truth(paused);
        Py_XDECREF(paused);
        if (codec_paused < 0)
            goto done;
        if (!codec_paused) {
            pe_slot_put(self, manager_at.read_paused, Py_NewRef(Py_False));
            if (pe_run_method(connection, s_read_disable, 1, Py_False, NULL, NULL) < 0)
                goto done;
        }
    }
    int close = pe_slot_truth(self, manager_at.close_after_response, "_close_after_response");
    if (close == 0)
        close = pe_slot_truth(self, manager_at.draining, "draining");
    if (close == 0) {
        PyObject *should_close = attr(codec, codec_type, codec_at.should_close, s_should_close);
        close = should_close == NULL ? -1 : pe_truth(should_close);
        Py_XDECREF(should_close);
    }
    if (close < 0)
        goto done;
    if (close) {
        if (pe_run_method(connection, s_close, 1, flush_write_and_delay, NULL, NULL) < 0)
            goto done;
    }
    else if (PyList_CheckExact(streams) ? PyList_GET_SIZE(streams) == 0 : !PyObject_IsTrue(streams)) {
        PyObject *config = pe_slot_get(self, manager_at.config, "config");
        if (config == NULL)
            goto done;
        PyObject *idle = attr(config, config_type, config_at.idle_timeout, s_idle_timeout);
        double idle_timeout = idle == NULL ? -1.0 : PyFloat_AsDouble(idle);
        Py_XDECREF(idle);
        if (idle_timeout == -1.0 && PyErr_Occurred())
            goto done;
        if (idle_timeout > 0) {
            PyObject *dispatcher = pe_slot_get(self, manager_at.dispatcher, "dispatcher");
            PyObject *now = dispatcher == NULL ? NULL : approximate_now(dispatcher);
            if (now == NULL)
                goto done;
            double since = PyFloat_AsDouble(now);
            pe_slot_put(self, manager_at.idle_since, now);
            if ((since == -1.0 && PyErr_Occurred()) || arm_timer(self, since + idle_timeout) < 0)
                goto done;
        }
    }
    ok = 1;
done:
    Py_DECREF(connection);
    Py_XDECREF(state);
    Py_XDECREF(codec);
    return ok ? Py_NewRef(Py_None) : NULL;
}

/* ActiveStream.decode_headers and encode_headers */

/* The header map's lists when headers is a HeaderMap (borrowed), else 0. */
static int header_lists(PyObject *headers, PyObject **names, PyObject **values)
{
    if (!PyObject_TypeCheck(headers, headers_type))
        return 0;
    *names = PE_SLOT(headers, headers_at.names);
    *values = PE_SLOT(headers, headers_at.values);
    return *names != NULL && *values != NULL && PyList_CheckExact(*names) && PyList_CheckExact(*values);
}

/* headers._get(name) (new reference; None when absent). */
static PyObject *header_get(PyObject *headers, PyObject *name)
{
    return pe_call_method(headers, s_get, 1, name, NULL, NULL);
}

/* The manager and its config when both are the proxy's own types (borrowed), else 0. */
static int manager_and_config(PyObject *stream, PyObject **manager, PyObject **config)
{
    *manager = PE_SLOT(stream, stream_at.manager);
    if (*manager == NULL || !PyObject_TypeCheck(*manager, manager_type))
        return 0;
    *config = PE_SLOT(*manager, manager_at.config);
    return *config != NULL && PyObject_TypeCheck(*config, config_type);
}

/* stream._last_activity = dispatcher.approximate_now (the stream idle timer's activity). */
static int note_activity(PyObject *stream)
{
    PyObject *dispatcher = pe_slot_get(stream, stream_at.dispatcher, "dispatcher");
    PyObject *now = dispatcher == NULL ? NULL : approximate_now(dispatcher);
    if (now == NULL)
        return -1;
    pe_slot_put(stream, stream_at.last_activity, now);
    return 0;
}

/* The decoder filters' decode_headers from _decoder_index on, as _run_decode_headers. */
static int run_decode_headers(PyObject *self, int end_stream)
{
    PyObject *filters = pe_slot_get(self, stream_at.decoder_filters, "_decoder_filters");
    if (filters == NULL)
        return -1;
    if (!PyTuple_CheckExact(filters)) {
        PyErr_SetString(PyExc_TypeError, "a stream's filter chains are tuples");
        return -1;
    }
    Py_INCREF(filters);
    int r = 0;
    for (;;) {
        PyObject *index_obj = pe_slot_get(self, stream_at.decoder_index, "_decoder_index");
        Py_ssize_t index = index_obj == NULL ? -1 : PyLong_AsSsize_t(index_obj);
        if (index == -1 && PyErr_Occurred()) {
            r = -1;
            break;
        }
        if (index >= PyTuple_GET_SIZE(filters))
            break;
        PyObject *flt = PyTuple_GET_ITEM(filters, index);
        PyObject *next = PyLong_FromSsize_t(index + 1);
        PyObject *headers = next == NULL ? NULL : pe_slot_get(self, stream_at.request_headers, "request_headers");
        if (headers == NULL) {
            Py_XDECREF(next);
            r = -1;
            break;
        }
        pe_slot_put(self, stream_at.decoder_index, next);
        PyObject *status = pe_call_method(flt, s_decode_headers, 2, headers, end_stream ? Py_True : Py_False, NULL);
        if (status == NULL) {
            r = -1;
            break;
        }
        int stop = status == headers_stop;
        Py_DECREF(status);
        if (stop)
            break;
        int done = pe_slot_truth(self, stream_at.destroyed, "_destroyed");
        if (done == 0)
            done = pe_slot_truth(self, stream_at.local_reply_sent, "_local_reply_sent");
        if (done != 0) {
            r = done < 0 ? -1 : 0;
            break;
        }
    }
    Py_DECREF(filters);
    return r;
}

PyDoc_STRVAR(decode_headers_doc,
    "decode_headers(headers, end_stream): the request's headers (RequestDecoder).\n\n"
    "With use_remote_address off, no xff_num_trusted_hops and no default_host_for_http_10,\n"
    "for a request that is not an upgrade and has no Expect field: the headers are\n"
    "mutated (pyevent_envoy._headers.mutate_plain), routed and given to the decoder\n"
    "filters here.  Everything else goes to _decode_headers_general.");

static PyObject *stream_decode_headers(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "decode_headers(headers, end_stream) takes 2 arguments");
        return NULL;
    }
    PyObject *headers = args[0], *manager, *config, *names, *values;
    int end_stream = pe_truth(args[1]);
    if (end_stream < 0)
        return NULL;
    if (!manager_and_config(self, &manager, &config) || !header_lists(headers, &names, &values))
        goto general;
    int t = pe_slot_truth(config, config_at.use_remote_address, "use_remote_address");
    if (t == 0)
        t = pe_slot_truth(config, config_at.xff_num_trusted_hops, "xff_num_trusted_hops");
    if (t == 0)
        t = pe_slot_truth(config, config_at.default_host_for_http_10, "default_host_for_http_10");
    if (t == 0)
        t = pe_slot_truth(self, stream_at.is_upgrade, "is_upgrade");
    if (t != 0) {
        if (t < 0)
            return NULL;
        goto general;
    }
    PyObject *expect = header_get(headers, s_expect);
    if (expect == NULL)
        return NULL;
    Py_DECREF(expect);
    if (expect != Py_None)
        goto general;
    PyObject *info = pe_slot_get(self, stream_at.stream_info, "stream_info");
    if (info == NULL)
        return NULL;
    Py_INCREF(info);
    Py_INCREF(manager);
    PyObject *rng = NULL, *request_id = NULL, *route = NULL;
    int ok = 0;
    pe_slot_put(self, stream_at.request_headers, Py_NewRef(headers));
    pe_slot_put(info, info_at.request_headers, Py_NewRef(headers));
    if (note_activity(self) < 0)
        goto done;
    if (end_stream) {
        PyObject *r = pe_call_method(self, s_on_request_complete, 0, NULL, NULL, NULL);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }
    /* The common configuration's request-header mutation, in one C call. */
    t = pe_slot_truth(config, config_at.generate_request_id, "generate_request_id");
    if (t < 0)
        goto done;
    rng = t ? pe_slot_get(manager, manager_at.rng, "_rng") : Py_None;
    PyObject *scheme = pe_slot_get(manager, manager_at.scheme, "_scheme");
    if (rng == NULL || scheme == NULL)
        goto done;
    Py_INCREF(rng);
    PyObject *margs[4] = {headers, scheme, internal_only, rng};
    request_id = PyObject_Vectorcall(mutate_plain, margs, 4, NULL);
    if (request_id == NULL)
        goto done;
    t = pe_truth(request_id);
    if (t < 0)
        goto done;
    pe_slot_put(info, info_at.stream_id, Py_NewRef(t ? request_id : s_empty));
    PyObject *table = pe_slot_get(config, config_at.route_table, "route_table");
    if (table == NULL)
        goto done;
    if (table != Py_None) {
        Py_INCREF(table);
        PyObject *uses_random = PyObject_GetAttr(table, s_uses_random);
        t = uses_random == NULL ? -1 : pe_truth(uses_random);
        Py_XDECREF(uses_random);
        PyObject *draw = t < 0 ? NULL : t ? pe_call_method(manager, s_random, 0, NULL, NULL, NULL) : PyLong_FromLong(0);
        route = draw == NULL ? NULL : pe_call_method(table, s_route, 2, headers, draw, NULL);
        Py_XDECREF(draw);
        Py_DECREF(table);
        if (route == NULL)
            goto done;
    }
    else
        route = Py_NewRef(Py_None);
    pe_slot_put(self, stream_at.route, Py_NewRef(route));
    if (route != Py_None) {
        PyObject *name = PyObject_GetAttr(route, s_route_name);
        if (name == NULL)
            goto done;
        pe_slot_put(info, info_at.route_name, name);
    }
    pe_slot_put(self, stream_at.decoder_index, PyLong_FromLong(0));
    if (run_decode_headers(self, end_stream) < 0)
        goto done;
    ok = 1;
done:
    Py_DECREF(info);
    Py_DECREF(manager);
    Py_XDECREF(rng);
    Py_XDECREF(request_id);
    Py_XDECREF(route);
    return ok ? Py_NewRef(Py_None) : NULL;
general:
    return pe_call_method(self, s_decode_headers_general, 2, headers, args[1], NULL);
}

/* The date header's value: the cache's, refreshed once a second. */
static PyObject *date_value(void)
{
    PyObject *now = PyObject_CallNoArgs(time_time);
    if (now == NULL)
        return NULL;
    double seconds = PyFloat_AsDouble(now);
    Py_DECREF(now);
    if (seconds == -1.0 && PyErr_Occurred())
        return NULL;
    PyObject *cached = PE_SLOT(date_cache, date_at.second);
    PyObject *value = PE_SLOT(date_cache, date_at.value);
    if (cached != NULL && value != NULL && PyLong_CheckExact(cached) && PyLong_AsLongLong(cached) == (long long)seconds)
        return Py_NewRef(value);
    return pe_call_method(date_cache, s_get_date, 0, NULL, NULL, NULL);
}

/* headers._set_trusted(name, value) */
static int set_trusted(PyObject *headers, PyObject *name, PyObject *value)
{
    PyObject *r = pe_call_method(headers, s_set_trusted, 2, name, value, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

PyDoc_STRVAR(encode_headers_doc,
    "encode_headers(headers, end_stream): the response's headers, from the last filter.\n\n"
    "With no encoder filter, the request complete and the connection not draining, for\n"
    "headers whose first field is a known :status: the proxy's date and server fields\n"
    "are set, the response counted and the headers encoded here.  Everything else goes\n"
    "to _encode_headers_general.");

static PyObject *stream_encode_headers(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode_headers(headers, end_stream) takes 2 arguments");
        return NULL;
    }
    PyObject *headers = args[0], *manager, *config, *names, *values;
    int end_stream = pe_truth(args[1]);
    if (end_stream < 0)
        return NULL;
    if (!manager_and_config(self, &manager, &config) || !header_lists(headers, &names, &values))
        goto general;
    PyObject *filters = pe_slot_get(self, stream_at.encoder_filters, "_encoder_filters");
    PyObject *drain = pe_slot_get(config, config_at.drain_decision, "drain_decision");
    if (filters == NULL || drain == NULL)
        return NULL;
    int t = pe_slot_truth(self, stream_at.destroyed, "_destroyed");
    if (t == 0)
        t = !PyTuple_CheckExact(filters) || PyTuple_GET_SIZE(filters) != 0;
    if (t == 0 && drain != no_drain) {
        /* The server's drain manager: active while the server drains or fails health checks. */
        PyObject *active = PyObject_GetAttr(drain, s_active);
        t = active == NULL ? -1 : pe_truth(active);
        Py_XDECREF(active);
    }
    if (t == 0)
        t = pe_slot_truth(manager, manager_at.draining, "draining");
    if (t == 0) {
        t = pe_slot_truth(self, stream_at.request_complete, "request_complete");
        t = t < 0 ? -1 : !t;
    }
    if (t != 0) {
        if (t < 0)
            return NULL;
        goto general;
    }
    /* The codec and HeaderMap.add() put pseudo-headers first. */
    if (PyList_GET_SIZE(names) == 0 || PyList_GET_SIZE(values) == 0)
        goto general;
    PyObject *first = PyList_GET_ITEM(names, 0);
    if (first != s_status && !(PyUnicode_Check(first) && PyUnicode_Compare(first, s_status) == 0))
        goto general;
    PyObject *code = PyDict_GetItemWithError(status_codes, PyList_GET_ITEM(values, 0));
    if (code == NULL) {
        if (PyErr_Occurred())
            return NULL;
        goto general;
    }
    Py_INCREF(code);
    Py_INCREF(manager);
    PyObject *info = NULL, *date = NULL;
    int ok = 0;
    /* (The proxy's own values, checked once: no per-response checks.) */
    date = date_value();
    if (date == NULL || set_trusted(headers, s_date, date) < 0)
        goto done;
    PyObject *server = pe_slot_get(config, config_at.server_name, "server_name");
    if (server == NULL)
        goto done;
    t = pe_truth(server);
    if (t < 0 || (t && set_trusted(headers, s_server, server) < 0))
        goto done;
    info = pe_slot_get(self, stream_at.stream_info, "stream_info");
    if (info == NULL)
        goto done;
    Py_INCREF(info);
    pe_slot_put(info, info_at.response_code, Py_NewRef(code));
    t = pe_slot_truth(info, info_at.health_check, "health_check");
    if (t < 0)
        goto done;
    if (!t) {
        /* Envoy's chargeStats (HttpConnManagerStats.charge_response): completed, and its class. */
        PyObject *stats = pe_slot_get(manager, manager_at.stats, "stats");
        if (stats == NULL)
            goto done;
        if (!PyObject_TypeCheck(stats, stats_type)) {
            PyErr_SetString(PyExc_TypeError, "the connection manager's stats are not HttpConnManagerStats");
            goto done;
        }
        if (pe_slot_add(stats, stats_at.rq_completed, "downstream_rq_completed", 1) < 0)
            goto done;
        long value = PyLong_AsLong(code);
        PyObject *classes = pe_slot_get(stats, stats_at.rq_xx, "downstream_rq_xx");
        if (classes == NULL || (value == -1 && PyErr_Occurred()))
            goto done;
        if (value >= 100 && value < 600) {
            if (!PyList_CheckExact(classes) || PyList_GET_SIZE(classes) <= value / 100) {
                PyErr_SetString(PyExc_TypeError, "downstream_rq_xx is a list of six counters");
                goto done;
            }
            PyObject *count = PyList_GET_ITEM(classes, value / 100);
            PyObject *one = PyLong_FromLong(1);
            PyObject *sum = one == NULL ? NULL : PyNumber_Add(count, one);
            Py_XDECREF(one);
            if (sum == NULL)
                goto done;
            PyList_SetItem(classes, value / 100, sum);
        }
    }
    pe_slot_put(info, info_at.response_headers, Py_NewRef(headers));
    if (note_activity(self) < 0)
        goto done;
    PyObject *encoder = pe_slot_get(self, stream_at.encoder, "_encoder");
    if (encoder == NULL)
        goto done;
    Py_INCREF(encoder);
    PyObject *r = pe_call_method(encoder, s_encode_headers, 2, headers, end_stream ? Py_True : Py_False, NULL);
    Py_DECREF(encoder);
    if (r == NULL)
        goto done;
    Py_DECREF(r);
    if (end_stream) {
        /* _on_response_complete(), with the request complete: the stream is done. */
        pe_slot_put(self, stream_at.response_complete, Py_NewRef(Py_True));
        r = manager_on_stream_done(manager, self);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }
    ok = 1;
done:
    Py_DECREF(code);
    Py_DECREF(manager);
    Py_XDECREF(info);
    Py_XDECREF(date);
    return ok ? Py_NewRef(Py_None) : NULL;
general:
    return pe_call_method(self, s_encode_headers_general, 2, headers, args[1], NULL);
}

/* ActiveStream.encode_data */

/* _on_response_complete(): the response ended; the stream is done (closing
 * the connection after it when the request has not ended). */
static int response_complete(PyObject *self)
{
    pe_slot_put(self, stream_at.response_complete, Py_NewRef(Py_True));
    PyObject *manager = pe_slot_get(self, stream_at.manager, "_manager");
    if (manager == NULL)
        return -1;
    if (!PyObject_TypeCheck(manager, manager_type)) {
        PyErr_SetString(PyExc_TypeError, "the stream's manager is not a ConnectionManagerImpl");
        return -1;
    }
    int complete = pe_slot_truth(self, stream_at.request_complete, "request_complete");
    if (complete < 0)
        return -1;
    if (!complete) {
        /* HTTP/1.1 cannot find the next request after an unread body: close after flushing. */
        pe_slot_put(manager, manager_at.close_after_response, Py_NewRef(Py_True));
    }
    Py_INCREF(manager);
    PyObject *r = manager_on_stream_done(manager, self);
    Py_DECREF(manager);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

PyDoc_STRVAR(encode_data_doc,
    "encode_data(data, end_stream): response body bytes, from the last filter.\n\n"
    "Through the encoder filters (_encode_data_from) when there are any; then counted\n"
    "(bytes_sent), encoded, and with end_stream the stream is done.");

static PyObject *stream_encode_data(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode_data(data, end_stream) takes 2 arguments");
        return NULL;
    }
    PyObject *data = args[0];
    int end_stream = pe_truth(args[1]);
    int destroyed = end_stream < 0 ? -1 : pe_slot_truth(self, stream_at.destroyed, "_destroyed");
    if (destroyed != 0)
        return destroyed < 0 ? NULL : Py_NewRef(Py_None);
    PyObject *filters = pe_slot_get(self, stream_at.encoder_filters, "_encoder_filters");
    if (filters == NULL)
        return NULL;
    if (!PyTuple_CheckExact(filters) || PyTuple_GET_SIZE(filters) != 0) {
        PyObject *start = PyLong_FromLong(0);
        if (start == NULL)
            return NULL;
        PyObject *r = pe_call_method(self, s_encode_data_from, 3, start, data, args[1]);
        Py_DECREF(start);
        return r;
    }
    Py_ssize_t size = PyObject_Size(data);
    PyObject *info = size < 0 ? NULL : pe_slot_get(self, stream_at.stream_info, "stream_info");
    if (info == NULL || pe_slot_add(info, info_at.bytes_sent, "bytes_sent", (long)size) < 0 || note_activity(self) < 0)
        return NULL;
    PyObject *encoder = pe_slot_get(self, stream_at.encoder, "_encoder");
    if (encoder == NULL)
        return NULL;
    Py_INCREF(encoder);
    PyObject *r = pe_call_method(encoder, s_encode_data, 2, data, args[1], NULL);
    Py_DECREF(encoder);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    if (end_stream && response_complete(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ConnectionManagerImpl.on_data */

/* codec.partial_head, whose common answers (not awaiting a head, paused, or
 * nothing buffered) are read here; the property decides the rest. */
static int partial_head(PyObject *codec)
{
    if (PyObject_TypeCheck(codec, codec_type)) {
        PyObject *state = PE_SLOT(codec, codec_at.state);
        PyObject *pending = PE_SLOT(codec, codec_at.pending);
        PyObject *paused = PE_SLOT(codec, codec_at.paused);
        if (state != NULL && PyLong_CheckExact(state) && PyLong_AsLong(state) != codec_head_state)
            return 0;
        if (paused == Py_True)
            return 0;
        if (pending != NULL && PyByteArray_CheckExact(pending) && PyByteArray_GET_SIZE(pending) == 0)
            return 0;
    }
    PyObject *value = PyObject_GetAttr(codec, s_partial_head);
    int r = value == NULL ? -1 : pe_truth(value);
    Py_XDECREF(value);
    return r;
}

/* The read's bytes through the codec (on_data's body; -1 with an exception set). */
static int take_read(PyObject *self, PyObject *data, PyObject *codec)
{
    int counted = pe_slot_truth(self, manager_at.http1_counted, "_http1_counted");
    if (counted < 0)
        return -1;
    if (!counted) {
        /* The first bytes: an HTTP/1 connection from now on (Envoy makes its codec then). */
        pe_slot_put(self, manager_at.http1_counted, Py_NewRef(Py_True));
        PyObject *stats = pe_slot_get(self, manager_at.stats, "stats");
        PyObject *names[2] = {s_downstream_cx_http1_total, s_downstream_cx_http1_active};
        for (int i = 0; i < 2; i++) {
            PyObject *value = stats == NULL ? NULL : PyObject_GetAttr(stats, names[i]);
            PyObject *one = value == NULL ? NULL : PyLong_FromLong(1);
            PyObject *sum = one == NULL ? NULL : PyNumber_Add(value, one);
            Py_XDECREF(value);
            Py_XDECREF(one);
            int r = sum == NULL ? -1 : PyObject_SetAttr(stats, names[i], sum);
            Py_XDECREF(sum);
            if (r < 0)
                return -1;
        }
    }
    /* Bytes beyond a request still waiting for its response. */
    PyObject *paused = PyObject_TypeCheck(codec, codec_type) ? Py_XNewRef(PE_SLOT(codec, codec_at.paused))
                                                             : PyObject_GetAttr(codec, s_paused);
    int pipelined = paused == NULL ? -1 : pe_truth(paused);
    Py_XDECREF(paused);
    if (pipelined < 0)
        return -1;
    PyObject *bytes = PyObject_CallOneArg(buffer_take, data);
    if (bytes == NULL)
        return -1;
    int r = pe_run_method(codec, s_dispatch, 1, bytes, NULL, NULL);
    Py_DECREF(bytes);
    if (r < 0)
        return -1;
    PyObject *streams = pe_slot_get(self, manager_at.streams, "streams");
    PyObject *head_started = streams == NULL ? NULL : pe_slot_get(self, manager_at.head_started, "_head_started");
    if (head_started == NULL)
        return -1;
    int none = PyList_CheckExact(streams) ? PyList_GET_SIZE(streams) == 0 : !PyObject_IsTrue(streams);
    if (none && head_started == Py_None) {
        int partial = partial_head(codec);
        if (partial < 0 || (partial && pe_run_method(self, s_on_head_started, 0, NULL, NULL, NULL) < 0))
            return -1;
    }
    if (pipelined) {
        paused = PyObject_TypeCheck(codec, codec_type) ? Py_XNewRef(PE_SLOT(codec, codec_at.paused))
                                                       : PyObject_GetAttr(codec, s_paused);
        int still = paused == NULL ? -1 : pe_truth(paused);
        Py_XDECREF(paused);
        int read_paused = still <= 0 ? still : pe_slot_truth(self, manager_at.read_paused, "_read_paused");
        if (read_paused < 0)
            return -1;
        if (still && !read_paused) {
            /* The codec holds them unparsed; stop reading until it catches up (Envoy does too). */
            pe_slot_put(self, manager_at.read_paused, Py_NewRef(Py_True));
            PyObject *connection = pe_slot_get(self, manager_at.connection, "connection");
            if (connection == NULL || pe_run_method(connection, s_read_disable, 1, Py_True, NULL, NULL) < 0)
                return -1;
        }
    }
    return 0;
}

PyDoc_STRVAR(on_data_doc,
    "on_data(data, end_stream) -> FilterStatus.STOP_ITERATION: the client's bytes, to the codec.\n\n"
    "Reading pauses while the codec holds pipelined bytes; a head that is still arriving\n"
    "starts its timeouts (_on_head_started); the end of the client's input goes to\n"
    "_on_end_stream.  An exception costs this connection, not the worker: _on_data_error.");

static PyObject *manager_on_data(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "on_data(data, end_stream) takes 2 arguments");
        return NULL;
    }
    PyObject *data = args[0];
    int end_stream = pe_truth(args[1]);
    if (end_stream < 0)
        return NULL;
    PyObject *codec = pe_slot_get(self, manager_at.codec, "codec");
    if (codec == NULL)
        return NULL;
    Py_INCREF(codec);
    int r = 0;
    if (!PyObject_TypeCheck(data, buffer_type)) {
        PyErr_SetString(PyExc_TypeError, "on_data() takes the connection's buffer");
        r = -1;
    }
    else {
        PyObject *length = PE_SLOT(data, buffer_at.length);
        int has_bytes = length == NULL ? 0 : pe_truth(length);
        if (has_bytes < 0 || (has_bytes && take_read(self, data, codec) < 0))
            r = -1;
    }
    Py_DECREF(codec);
    if (r == 0 && end_stream)
        r = pe_run_method(self, s_on_end_stream, 0, NULL, NULL, NULL);
    if (r < 0 && pe_hand_exception(self, s_on_data_error) < 0)
        return NULL;
    return Py_NewRef(stop_iteration);
}

/* binding */

static PyMethodDef manager_methods[] = {
    {"on_data", (PyCFunction)(void (*)(void))manager_on_data, METH_FASTCALL, on_data_doc},
    {"new_stream", (PyCFunction)manager_new_stream, METH_O, new_stream_doc},
    {"_on_stream_done", (PyCFunction)manager_on_stream_done, METH_O, on_stream_done_doc},
    {NULL, NULL, 0, NULL},
};
static PyMethodDef stream_methods[] = {
    {"destroy", (PyCFunction)stream_destroy, METH_NOARGS, destroy_doc},
    {"decode_headers", (PyCFunction)(void (*)(void))stream_decode_headers, METH_FASTCALL, decode_headers_doc},
    {"encode_headers", (PyCFunction)(void (*)(void))stream_encode_headers, METH_FASTCALL, encode_headers_doc},
    {"encode_data", (PyCFunction)(void (*)(void))stream_encode_data, METH_FASTCALL, encode_data_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(bind_doc,
    "bind(types, objects): install the connection manager's C methods.\n\n"
    "types: ConnectionManagerImpl, ActiveStream, StreamInfo, ConnectionManagerConfig,\n"
    "HttpConnManagerStats, DispatcherImpl, ConnectionImpl, ServerCodec, HeaderMap and\n"
    "DateCache (the classes whose slots are read; TypeError if one is missing).  objects:\n"
    "filter_kinds (the cache of filter kinds by type), time (time.time), OPEN\n"
    "(ConnectionState.OPEN), FLUSH_WRITE_AND_DELAY (the ConnectionCloseType), date (the\n"
    "DateCache), STATUS_CODES, mutate_plain, INTERNAL_ONLY_HEADERS, NO_DRAIN (the drain\n"
    "decision that never drains), HEADERS_STOP (FilterHeadersStatus.STOP_ITERATION),\n"
    "STOP_ITERATION (FilterStatus.STOP_ITERATION) and CODEC_HEAD (the server codec's _HEAD).\n"
    "types also names Buffer, the connections' buffer type.");

static PyObject *bind(PyObject *module, PyObject *args)
{
    PyObject *types, *objects;
    if (!PyArg_ParseTuple(args, "O!O!:bind", &PyDict_Type, &types, &PyDict_Type, &objects))
        return NULL;
    if (pe_dict_type(types, "ConnectionManagerImpl", &manager_type) < 0 || pe_dict_type(types, "ActiveStream", &stream_type) < 0
        || pe_dict_type(types, "StreamInfo", &info_type) < 0 || pe_dict_type(types, "ConnectionManagerConfig", &config_type) < 0
        || pe_dict_type(types, "HttpConnManagerStats", &stats_type) < 0
        || pe_dict_type(types, "DispatcherImpl", &dispatcher_type) < 0
        || pe_dict_type(types, "ConnectionImpl", &connection_type) < 0 || pe_dict_type(types, "ServerCodec", &codec_type) < 0
        || pe_dict_type(types, "HeaderMap", &headers_type) < 0 || pe_dict_type(types, "DateCache", &date_type) < 0
        || pe_dict_type(types, "Buffer", &buffer_type) < 0)
        return NULL;
    const pe_slot_name manager_slots[] = {
        {"dispatcher", &manager_at.dispatcher},
        {"connection", &manager_at.connection},
        {"config", &manager_at.config},
        {"cluster_manager", &manager_at.cluster_manager},
        {"stats", &manager_at.stats},
        {"codec", &manager_at.codec},
        {"streams", &manager_at.streams},
        {"_remote_address", &manager_at.remote_address},
        {"_local_address", &manager_at.local_address},
        {"_connection_id", &manager_at.connection_id},
        {"_head_started", &manager_at.head_started},
        {"_timer", &manager_at.timer},
        {"_timer_deadline", &manager_at.timer_deadline},
        {"_read_paused", &manager_at.read_paused},
        {"_close_after_response", &manager_at.close_after_response},
        {"draining", &manager_at.draining},
        {"_idle_since", &manager_at.idle_since},
        {"_scheme", &manager_at.scheme},
        {"_rng", &manager_at.rng},
        {"_http1_counted", &manager_at.http1_counted},
    };
    const pe_slot_name stream_slots[] = {
        {"_manager", &stream_at.manager},
        {"_encoder", &stream_at.encoder},
        {"dispatcher", &stream_at.dispatcher},
        {"connection", &stream_at.connection},
        {"config", &stream_at.config},
        {"cluster_manager", &stream_at.cluster_manager},
        {"stats", &stream_at.stats},
        {"stream_info", &stream_at.stream_info},
        {"is_upgrade", &stream_at.is_upgrade},
        {"_decoder_filters", &stream_at.decoder_filters},
        {"_encoder_filters", &stream_at.encoder_filters},
        {"_last_activity", &stream_at.last_activity},
        {"_destroyed", &stream_at.destroyed},
        {"request_complete", &stream_at.request_complete},
        {"_request_timer", &stream_at.request_timer},
        {"_decoder_read_disabled", &stream_at.decoder_read_disabled},
        {"_decoder_buffer", &stream_at.decoder_buffer},
        {"_pending_trailers", &stream_at.pending_trailers},
        {"_response_timeout_cb", &stream_at.response_timeout_cb},
        {"request_headers", &stream_at.request_headers},
        {"route", &stream_at.route},
        {"_decoder_index", &stream_at.decoder_index},
        {"_local_reply_sent", &stream_at.local_reply_sent},
        {"response_complete", &stream_at.response_complete},
    };
    const pe_slot_name info_slots[] = {
        {"start_time", &info_at.start_time},
        {"start_monotonic", &info_at.start_monotonic},
        {"protocol", &info_at.protocol},
        {"response_flags", &info_at.response_flags},
        {"downstream_remote_address", &info_at.remote},
        {"downstream_direct_remote_address", &info_at.direct_remote},
        {"downstream_local_address", &info_at.local},
        {"connection_id", &info_at.connection_id},
        {"end_monotonic", &info_at.end_monotonic},
        {"request_headers", &info_at.request_headers},
        {"response_headers", &info_at.response_headers},
        {"stream_id", &info_at.stream_id},
        {"route_name", &info_at.route_name},
        {"response_code", &info_at.response_code},
        {"health_check", &info_at.health_check},
        {"bytes_sent", &info_at.bytes_sent},
    };
    const pe_slot_name config_slots[] = {
        {"filter_factories", &config_at.filter_factories},
        {"stream_idle_timeout", &config_at.stream_idle_timeout},
        {"request_timeout", &config_at.request_timeout},
        {"access_logs", &config_at.access_logs},
        {"idle_timeout", &config_at.idle_timeout},
        {"use_remote_address", &config_at.use_remote_address},
        {"xff_num_trusted_hops", &config_at.xff_num_trusted_hops},
        {"generate_request_id", &config_at.generate_request_id},
        {"default_host_for_http_10", &config_at.default_host_for_http_10},
        {"route_table", &config_at.route_table},
        {"server_name", &config_at.server_name},
        {"drain_decision", &config_at.drain_decision},
    };
    const pe_slot_name stats_slots[] = {
        {"downstream_rq_total", &stats_at.rq_total},
        {"downstream_rq_http1_total", &stats_at.rq_http1_total},
        {"downstream_rq_active", &stats_at.rq_active},
        {"downstream_rq_rx_reset", &stats_at.rq_rx_reset},
        {"downstream_rq_time", &stats_at.rq_time},
        {"downstream_rq_completed", &stats_at.rq_completed},
        {"downstream_rq_xx", &stats_at.rq_xx},
    };
    const pe_slot_name headers_slots[] = {{"_names", &headers_at.names}, {"_values", &headers_at.values}};
    const pe_slot_name date_slots[] = {{"_second", &date_at.second}, {"_value", &date_at.value}};
    const pe_slot_name dispatcher_slots[] = {{"approximate_now", &dispatcher_at.approximate_now}};
    const pe_slot_name connection_slots[] = {{"_state", &connection_at.state}};
    const pe_slot_name codec_slots[] = {
        {"paused", &codec_at.paused},
        {"should_close", &codec_at.should_close},
        {"_state", &codec_at.state},
        {"_pending", &codec_at.pending},
    };
    const pe_slot_name buffer_slots[] = {{"_length", &buffer_at.length}};
    if (PE_SLOT_OFFSETS(manager_type, manager_slots) < 0 || PE_SLOT_OFFSETS(stream_type, stream_slots) < 0
        || PE_SLOT_OFFSETS(info_type, info_slots) < 0 || PE_SLOT_OFFSETS(config_type, config_slots) < 0
        || PE_SLOT_OFFSETS(stats_type, stats_slots) < 0 || PE_SLOT_OFFSETS(dispatcher_type, dispatcher_slots) < 0
        || PE_SLOT_OFFSETS(connection_type, connection_slots) < 0 || PE_SLOT_OFFSETS(codec_type, codec_slots) < 0
        || PE_SLOT_OFFSETS(headers_type, headers_slots) < 0 || PE_SLOT_OFFSETS(date_type, date_slots) < 0
        || PE_SLOT_OFFSETS(buffer_type, buffer_slots) < 0)
        return NULL;
    if (pe_dict_object(objects, "filter_kinds", &filter_kinds) < 0 || pe_dict_object(objects, "time", &time_time) < 0
        || pe_dict_object(objects, "OPEN", &state_open) < 0
        || pe_dict_object(objects, "FLUSH_WRITE_AND_DELAY", &flush_write_and_delay) < 0
        || pe_dict_object(objects, "date", &date_cache) < 0 || pe_dict_object(objects, "STATUS_CODES", &status_codes) < 0
        || pe_dict_object(objects, "mutate_plain", &mutate_plain) < 0
        || pe_dict_object(objects, "INTERNAL_ONLY_HEADERS", &internal_only) < 0
        || pe_dict_object(objects, "NO_DRAIN", &no_drain) < 0 || pe_dict_object(objects, "HEADERS_STOP", &headers_stop) < 0
        || pe_dict_object(objects, "STOP_ITERATION", &stop_iteration) < 0)
        return NULL;
    PyObject *head_state = PyDict_GetItemString(objects, "CODEC_HEAD");
    codec_head_state = head_state == NULL ? -1 : PyLong_AsLong(head_state);
    if (codec_head_state == -1) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_KeyError, "bind(): CODEC_HEAD missing");
        return NULL;
    }
    PyObject *take = PyObject_GetAttrString((PyObject *)buffer_type, "take");
    if (take == NULL)
        return NULL;
    Py_XSETREF(buffer_take, take);
    if (!PyDict_CheckExact(filter_kinds) || !PyDict_CheckExact(status_codes) || !PyObject_TypeCheck(date_cache, date_type)) {
        PyErr_SetString(PyExc_TypeError, "bind(): filter_kinds and STATUS_CODES must be dicts, date a DateCache");
        return NULL;
    }
    if (pe_install_methods(manager_type, manager_methods) < 0 || pe_install_methods(stream_type, stream_methods) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"bind", bind, METH_VARARGS, bind_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pyevent_envoy._conn_manager",
    "The HTTP connection manager's per-stream bookkeeping in C (see the source).",
    -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__conn_manager(void)
{
    if ((empty_tuple == NULL && (empty_tuple = PyTuple_New(0)) == NULL)
        || pe_intern(&s_new_stream_general, "_new_stream_general") < 0 || pe_intern(&s_arm_timer, "_arm_timer") < 0
        || pe_intern(&s_set_decoder_filter_callbacks, "set_decoder_filter_callbacks") < 0
        || pe_intern(&s_set_encoder_filter_callbacks, "set_encoder_filter_callbacks") < 0
        || pe_intern(&s_decode_headers, "decode_headers") < 0 || pe_intern(&s_encode_headers, "encode_headers") < 0
        || pe_intern(&s_upgrade, "upgrade") < 0 || pe_intern(&s_protocol, "protocol") < 0
        || pe_intern(&s_approximate_now, "approximate_now") < 0 || pe_intern(&s_record_duration, "record_duration") < 0
        || pe_intern(&s_log, "log") < 0 || pe_intern(&s_close, "close") < 0 || pe_intern(&s_read_disable, "read_disable") < 0
        || pe_intern(&s_on_destroy, "on_destroy") < 0 || pe_intern(&s_remove, "remove") < 0 || pe_intern(&s_state, "state") < 0
        || pe_intern(&s_paused, "paused") < 0 || pe_intern(&s_should_close, "should_close") < 0
        || pe_intern(&s_stats, "stats") < 0 || pe_intern(&s_access_logs, "access_logs") < 0
        || pe_intern(&s_idle_timeout, "idle_timeout") < 0 || pe_intern(&s_destroy, "destroy") < 0
        || pe_intern(&s_get, "_get") < 0 || pe_intern(&s_set_trusted, "_set_trusted") < 0 || pe_intern(&s_expect, "expect") < 0
        || pe_intern(&s_date, "date") < 0 || pe_intern(&s_server, "server") < 0 || pe_intern(&s_status, ":status") < 0
        || pe_intern(&s_route, "route") < 0 || pe_intern(&s_uses_random, "uses_random") < 0
        || pe_intern(&s_random, "random") < 0 || pe_intern(&s_route_name, "route_name") < 0
        || pe_intern(&s_on_request_complete, "_on_request_complete") < 0
        || pe_intern(&s_decode_headers_general, "_decode_headers_general") < 0
        || pe_intern(&s_encode_headers_general, "_encode_headers_general") < 0 || pe_intern(&s_empty, "") < 0
        || pe_intern(&s_active, "active") < 0 || pe_intern(&s_get_date, "get") < 0
        || pe_intern(&s_dispatch, "dispatch") < 0 || pe_intern(&s_partial_head, "partial_head") < 0
        || pe_intern(&s_on_head_started, "_on_head_started") < 0 || pe_intern(&s_on_end_stream, "_on_end_stream") < 0
        || pe_intern(&s_on_data_error, "_on_data_error") < 0 || pe_intern(&s_encode_data, "encode_data") < 0
        || pe_intern(&s_encode_data_from, "_encode_data_from") < 0
        || pe_intern(&s_downstream_cx_http1_total, "downstream_cx_http1_total") < 0
        || pe_intern(&s_downstream_cx_http1_active, "downstream_cx_http1_active") < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
#ifdef Py_GIL_DISABLED
    PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    return m;
}
