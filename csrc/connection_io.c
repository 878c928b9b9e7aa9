/*
 * pyevent-envoy: the connection's I/O methods, part of pyevent_envoy._sockio.
 *
 * Every proxied request passes through four of these on each of its two
 * connections: the file event, the read, write() and the flush.  As Python
 * methods they were a fifth of the bytecodes a small request runs, though
 * each does little more than read and set the connection's own attributes
 * around one socket call.  Here they are C methods of
 * pyevent_envoy.network.connection_impl.ConnectionImpl:
 *
 *   _on_file_event(events), _on_read_ready(until_eof=False),
 *   write(data, end_stream=False), _flush(), _on_write_ready()
 *
 * bind_connection(cls, buffer_type, constants) installs them on cls.  They
 * keep the class's __slots__ as its Python code does: the slots are read and
 * written in place, at the offsets of cls's member descriptors, found once by
 * name when binding (a name that is not a slot of object type is an error
 * then, not a crash later).  The buffers' _chunks and _length are read the
 * same way; buffers change only through their own methods (add, drain), so
 * watermark callbacks run as before.
 *
 * What is rare stays in Python and is called by name: closing
 * (_close_socket, _on_flushed_for_close, _shutdown_write), a connect's
 * outcome (_finish_connect, _fail_pending_connect), the buffered dispatch
 * after read_disable(False), and the filters.  A subclass that overrides
 * _on_read_ready or _on_write_ready (TLS does) gets its override called from
 * these methods, as a Python call would.
 *
 * Exceptions from anything called propagate, with the connection's state as
 * the Python code would leave it at the same point.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <string.h>

#include "slots.h"
#include "sockio.h"

/* Slot offsets in a ConnectionImpl (see bind_connection). */
static struct {
    Py_ssize_t dispatcher, fd, state, filters, read_buffer, write_buffer, read_disable_count, connecting, half_close,
        read_end_stream, write_end_stream, write_shut, close_type, pending_error, dispatch_buffered, flush_cb,
        write_blocked, bytes_read, bytes_written, connection_stats, last_read_buffer_size, last_write_buffer_size,
        failure_reason;
} conn_at;

/* ...and in a buffer. */
static struct {
    Py_ssize_t chunks, length, above;
} buffer_at;

static PyTypeObject *buffer_type;
static PyObject *buffer_add, *buffer_drain; /* the buffer type's method descriptors */
static PyObject *state_open, *state_closed, *stop_iteration, *remote_close;
static long write_bit, closed_bit, read_or_closed_bits;
static Py_ssize_t read_chunk;
static PyObject *read_ready_method, *write_ready_method; /* the descriptors installed */

static PyObject *s_on_data, *s_close_socket, *s_dispatch_buffered_reads, *s_finish_connect, *s_fail_pending_connect,
    *s_shutdown_write, *s_on_flushed_for_close, *s_flush, *s_create_schedulable_callback,
    *s_schedule_callback_current_iteration, *s_on_read_ready, *s_on_write_ready, *s_is_tls, *s_read_total,
    *s_read_current, *s_write_total, *s_write_current, *s_write_current_moved;

/* slots (see slots.h) */

#define SLOT PE_SLOT
#define get pe_slot_get
#define put pe_slot_put
#define truth pe_slot_truth
#define GET(obj, field) pe_slot_get((obj), conn_at.field, "_" #field)
#define PUT(obj, field, value) pe_slot_put((obj), conn_at.field, (value))
#define TRUTH(obj, field) pe_slot_truth((obj), conn_at.field, "_" #field)

/* obj.name += delta, for any object (the connection stats: rare enough). */
static int add_attr(PyObject *obj, PyObject *name, Py_ssize_t delta)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL)
        return -1;
    PyObject *d = PyLong_FromSsize_t(delta);
    if (d == NULL) {
        Py_DECREF(value);
        return -1;
    }
    PyObject *sum = PyNumber_InPlaceAdd(value, d);
    Py_DECREF(value);
    Py_DECREF(d);
    if (sum == NULL)
        return -1;
    int r = PyObject_SetAttr(obj, name, sum);
    Py_DECREF(sum);
    return r;
}

static Py_ssize_t buffer_length(PyObject *buffer)
{
    PyObject *length = SLOT(buffer, buffer_at.length);
    return length == NULL ? 0 : PyLong_AsSsize_t(length);
}

/* The connection stats of one read or write, when the connection has them:
 * `moved` bytes more in total, and the buffer's size change since the last
 * count in current (flagging moved_flag, if given, when it changed). */
static int count_buffer(PyObject *self, PyObject *buffer, Py_ssize_t moved, PyObject *total_name,
                        PyObject *current_name, PyObject *moved_flag, Py_ssize_t last_offset)
{
    PyObject *stats = GET(self, connection_stats);
    if (stats == NULL)
        return -1;
    if (stats == Py_None)
        return 0;
    Py_INCREF(stats);
    Py_ssize_t size = buffer_length(buffer);
    PyObject *last_obj = pe_slot_get(self, last_offset, "_last_*_buffer_size");
    Py_ssize_t last = last_obj == NULL ? -1 : PyLong_AsSsize_t(last_obj);
    int r = (last == -1 && PyErr_Occurred()) ? -1 : add_attr(stats, total_name, moved);
    if (r == 0 && size != last) {
        r = add_attr(stats, current_name, size - last);
        if (r == 0 && moved_flag != NULL)
            r = PyObject_SetAttr(stats, moved_flag, Py_True);
        if (r == 0) {
            PyObject *size_obj = PyLong_FromSsize_t(size);
            if (size_obj == NULL)
                r = -1;
            else
                pe_slot_put(self, last_offset, size_obj);
        }
    }
    Py_DECREF(stats);
    return r;
}

/* An int slot's value as a file descriptor: -1 with an exception set if it is not one. */
static int fd_of(PyObject *obj)
{
    PyObject *value = get(obj, conn_at.fd, "_fd");
    if (value == NULL)
        return -1;
    long fd = PyLong_AsLong(value);
    if (fd == -1 && PyErr_Occurred())
        return -1;
    if (fd < 0 || fd > 0x7fffffffL) {
        PyErr_SetString(PyExc_ValueError, "the connection's socket is closed");
        return -1;
    }
    return (int)fd;
}

/* calls */

/* self.name(), or self.name(arg) when arg is not NULL. */
static PyObject *call_method(PyObject *self, PyObject *name, PyObject *arg)
{
    PyObject *args[3] = {NULL, self, arg};
    return PyObject_VectorcallMethod(name, args + 1, (arg == NULL ? 1 : 2) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* Like call_method, for a call whose result is not used: 0 or -1. */
static int run_method(PyObject *self, PyObject *name, PyObject *arg)
{
    PyObject *r = call_method(self, name, arg);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* buffer.add(data) or buffer.drain(n), through the buffer type's own methods. */
static int buffer_call(PyObject *method, PyObject *buffer, PyObject *arg)
{
    PyObject *args[2] = {buffer, arg};
    PyObject *r = PyObject_Vectorcall(method, args, 2, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The connection failed with errno code: say why, then close as the peer's doing. */
static int fail(PyObject *self, long code)
{
    PyObject *reason = PyUnicode_DecodeLocale(strerror((int)code), "surrogateescape");
    if (reason == NULL)
        return -1;
    put(self, conn_at.failure_reason, reason);
    return run_method(self, s_close_socket, remote_close);
}

static PyObject *read_ready(PyObject *self, int until_eof);
static PyObject *write_ready(PyObject *self);

/* self._on_read_ready(until_eof), this file's or a subclass's override. */
static int dispatch_read_ready(PyObject *self, int until_eof)
{
    PyObject *r;
    if (_PyType_Lookup(Py_TYPE(self), s_on_read_ready) == read_ready_method)
        r = read_ready(self, until_eof);
    else
        r = call_method(self, s_on_read_ready, until_eof ? Py_True : Py_False);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int dispatch_write_ready(PyObject *self)
{
    PyObject *r;
    if (_PyType_Lookup(Py_TYPE(self), s_on_write_ready) == write_ready_method)
        r = write_ready(self);
    else
        r = call_method(self, s_on_write_ready, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* the methods */

static PyObject *read_ready(PyObject *self, int until_eof)
{
    int t = TRUTH(self, read_disable_count);
    if (t != 0)
        return t < 0 ? NULL : Py_NewRef(Py_None);
    t = TRUTH(self, dispatch_buffered);
    if (t < 0)
        return NULL;
    if (t) {
        PyObject *r = call_method(self, s_dispatch_buffered_reads, NULL);
        if (r == NULL)
            return NULL;
        t = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (t <= 0)
            return t < 0 ? NULL : Py_NewRef(Py_None);
    }
    t = TRUTH(self, read_end_stream);
    if (t != 0)
        return t < 0 ? NULL : Py_NewRef(Py_None);
    int fd = fd_of(self);
    if (fd < 0)
        return NULL;
    PyObject *buffer = GET(self, read_buffer);
    if (buffer == NULL)
        return NULL;
    if (!PyObject_TypeCheck(buffer, buffer_type)) {
        PyErr_SetString(PyExc_TypeError, "_read_buffer is not a pyevent_envoy buffer");
        return NULL;
    }
    Py_INCREF(buffer);
    char *scratch = pe_thread_scratch((size_t)read_chunk);
    if (scratch == NULL) {
        Py_DECREF(buffer);
        return PyErr_NoMemory();
    }
    Py_ssize_t total = 0;
    int eof = 0;
    for (;;) {
        size_t got;
        long code;
        Py_BEGIN_ALLOW_THREADS
        code = pe_read_loop(fd, scratch, (size_t)read_chunk, until_eof, &got);
        Py_END_ALLOW_THREADS
        if (got) {
            PyObject *data = PyBytes_FromStringAndSize(scratch, (Py_ssize_t)got);
            if (data == NULL)
                goto error;
            int r = buffer_call(buffer_add, buffer, data);
            Py_DECREF(data);
            if (r < 0)
                goto error;
            total += (Py_ssize_t)got;
        }
        if (code == 0)
            break;
        if (code == READ_FULL) {
            /* Stop once the buffer is full or reading was disabled (the edge
             * is consumed: the low watermark's read_disable(False) resumes). */
            if (SLOT(buffer, buffer_at.above) == Py_True)
                break;
            t = TRUTH(self, read_disable_count);
            if (t < 0)
                goto error;
            if (t)
                break;
            continue;
        }
        if (code == READ_EOF) {
            eof = 1;
            break;
        }
        Py_DECREF(buffer);
        return fail(self, code) < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (pe_slot_add(self, conn_at.bytes_read, "bytes_read", total) < 0)
        goto error;
    /* Envoy's updateReadBufferStats: measured before the filters consume the bytes. */
    if (count_buffer(self, buffer, total, s_read_total, s_read_current, NULL, conn_at.last_read_buffer_size) < 0)
        goto error;
    if (eof)
        PUT(self, read_end_stream, Py_NewRef(Py_True));
    if (total || eof) {
        /* The read filter chain (Envoy's onRead), live over the list as a for loop is. */
        PyObject *filters = GET(self, filters);
        if (filters == NULL)
            goto error;
        if (!PyList_Check(filters)) {
            PyErr_SetString(PyExc_TypeError, "_filters is not a list");
            goto error;
        }
        Py_INCREF(filters);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(filters); i++) {
            if (SLOT(self, conn_at.state) == state_closed)
                break;
            PyObject *flt = Py_NewRef(PyList_GET_ITEM(filters, i));
            PyObject *args[4] = {NULL, flt, buffer, eof ? Py_True : Py_False};
            PyObject *status = PyObject_VectorcallMethod(s_on_data, args + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            Py_DECREF(flt);
            if (status == NULL) {
                Py_DECREF(filters);
                goto error;
            }
            int stop = status == stop_iteration;
            Py_DECREF(status);
            if (stop)
                break;
        }
        Py_DECREF(filters);
    }
    Py_DECREF(buffer);
    if (eof && SLOT(self, conn_at.state) != state_closed) {
        int half_close = TRUTH(self, half_close);
        if (half_close < 0)
            return NULL;
        int ended = half_close ? TRUTH(self, write_end_stream) : 1;
        if (ended < 0)
            return NULL;
        if (ended && run_method(self, s_close_socket, remote_close) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
error:
    Py_DECREF(buffer);
    return NULL;
}

/* Send what the write buffer holds: its chunks as they are, gathered. */
static PyObject *write_ready(PyObject *self)
{
    int t = TRUTH(self, connecting);
    if (t < 0)
        return NULL;
    if (t) {
        /* The connect's outcome (Python: rare); False when it failed. */
        PyObject *r = call_method(self, s_finish_connect, NULL);
        if (r == NULL)
            return NULL;
        t = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (t <= 0)
            return t < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *buffer = GET(self, write_buffer);
    if (buffer == NULL)
        return NULL;
    if (!PyObject_TypeCheck(buffer, buffer_type)) {
        PyErr_SetString(PyExc_TypeError, "_write_buffer is not a pyevent_envoy buffer");
        return NULL;
    }
    Py_INCREF(buffer);
    if (buffer_length(buffer) > 0) {
        int fd = fd_of(self);
        if (fd < 0)
            goto error;
        for (;;) {
            PyObject *chunks = SLOT(buffer, buffer_at.chunks);
            if (chunks == NULL || !PyList_Check(chunks)) {
                PyErr_SetString(PyExc_TypeError, "the write buffer's chunks are not a list");
                goto error;
            }
            Py_ssize_t count = PyList_GET_SIZE(chunks);
            if (count > WRITEV_MAX)
                count = WRITEV_MAX;
            /* The chunks are viewed (any bytes-like object) and held while the GIL is released. */
            Py_buffer views[WRITEV_MAX];
            struct iovec iov[WRITEV_MAX];
            Py_ssize_t viewed = 0;
            for (; viewed < count; viewed++) {
                if (PyObject_GetBuffer(PyList_GET_ITEM(chunks, viewed), &views[viewed], PyBUF_SIMPLE) < 0)
                    break;
                iov[viewed].iov_base = views[viewed].buf;
                iov[viewed].iov_len = (size_t)views[viewed].len;
            }
            if (viewed < count) {
                for (Py_ssize_t i = 0; i < viewed; i++)
                    PyBuffer_Release(&views[i]);
                goto error;
            }
            long code;
            size_t sent;
            Py_BEGIN_ALLOW_THREADS
            sent = pe_send_all(fd, iov, (int)count, &code);
            Py_END_ALLOW_THREADS
            for (Py_ssize_t i = 0; i < count; i++)
                PyBuffer_Release(&views[i]);
            if (pe_slot_add(self, conn_at.bytes_written, "bytes_written", (Py_ssize_t)sent) < 0)
                goto error;
            PyObject *n = PyLong_FromSize_t(sent);
            if (n == NULL)
                goto error;
            int r = buffer_call(buffer_drain, buffer, n);
            Py_DECREF(n);
            if (r < 0)
                goto error;
            if (count_buffer(self, buffer, (Py_ssize_t)sent, s_write_total, s_write_current, s_write_current_moved,
                             conn_at.last_write_buffer_size) < 0)
                goto error;
            if (buffer_length(buffer) == 0 || SLOT(self, conn_at.state) == state_closed)
                break;
            if (code == 0)
                continue; /* all of at most WRITEV_MAX chunks went out: the rest now */
            Py_DECREF(buffer);
            if (code != EAGAIN)
                return fail(self, code) < 0 ? NULL : Py_NewRef(Py_None);
            PUT(self, write_blocked, Py_NewRef(Py_True)); /* the next WRITE edge resumes */
            Py_RETURN_NONE;
        }
        if (SLOT(self, conn_at.state) == state_closed) {
            Py_DECREF(buffer);
            Py_RETURN_NONE;
        }
    }
    Py_DECREF(buffer);
    t = TRUTH(self, write_end_stream);
    if (t < 0)
        return NULL;
    if (t) {
        int shut = TRUTH(self, write_shut);
        if (shut < 0)
            return NULL;
        /* Everything before the end went out (or there was nothing): now the FIN. */
        if (!shut && run_method(self, s_shutdown_write, NULL) < 0)
            return NULL;
    }
    PyObject *close_type = GET(self, close_type);
    if (close_type == NULL)
        return NULL;
    if (close_type != Py_None && run_method(self, s_on_flushed_for_close, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
error:
    Py_DECREF(buffer);
    return NULL;
}

PyDoc_STRVAR(on_read_ready_doc,
    "_on_read_ready(until_eof=False): read what the socket has into the read buffer, then run the read filters.\n\n"
    "Reads until the kernel has no more (a short read ends it unless until_eof), the buffer\n"
    "passes its high watermark, or EOF or an error; a read error closes the connection\n"
    "(REMOTE_CLOSE, with failure_reason), and EOF closes it after the filters unless\n"
    "half-close keeps the write side open.");

static PyObject *method_on_read_ready(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "_on_read_ready(until_eof=False) takes at most 1 argument");
        return NULL;
    }
    int until_eof = nargs ? PyObject_IsTrue(args[0]) : 0;
    if (until_eof < 0)
        return NULL;
    return read_ready(self, until_eof);
}

PyDoc_STRVAR(on_write_ready_doc,
    "_on_write_ready(): send the write buffer until it is empty or the socket would block.\n\n"
    "First settles a pending connect.  A send error closes the connection (REMOTE_CLOSE,\n"
    "with failure_reason); EAGAIN waits for the next WRITE edge.  Once everything went out,\n"
    "sends the FIN of write(end_stream=True) and goes on with a pending close.");

static PyObject *method_on_write_ready(PyObject *self, PyObject *unused)
{
    return write_ready(self);
}

PyDoc_STRVAR(flush_doc,
    "_flush(): the schedulable callback of write(): send, unless closed, blocked or connecting.");

static PyObject *method_flush(PyObject *self, PyObject *unused)
{
    if (SLOT(self, conn_at.state) == state_closed)
        Py_RETURN_NONE;
    int t = TRUTH(self, write_blocked);
    if (t == 0)
        t = TRUTH(self, connecting);
    if (t != 0)
        return t < 0 ? NULL : Py_NewRef(Py_None);
    return dispatch_write_ready(self) < 0 ? NULL : Py_NewRef(Py_None);
}

PyDoc_STRVAR(write_doc,
    "write(data, end_stream=False): queue data; it is sent once per loop pass.\n\n"
    "Nothing happens once the connection is not open or its write side ended.\n"
    "end_stream=True (which needs enable_half_close(True)) sends a FIN after data.\n"
    "The send itself runs in the loop's same-iteration phase, through the connection's\n"
    "schedulable callback (_flush), so writes made while callbacks run coalesce into one\n"
    "send, and a send error is reported there, never inside write().");

static PyObject *method_write(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *usage = "write(data, end_stream=False)";
    PyObject *data = NULL, *end_stream = Py_False;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs > 2 || nargs + nkw > 2) {
        PyErr_Format(PyExc_TypeError, "%s takes at most 2 arguments", usage);
        return NULL;
    }
    if (nargs >= 1)
        data = args[0];
    if (nargs == 2)
        end_stream = args[1];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (data == NULL && PyUnicode_CompareWithASCIIString(key, "data") == 0)
            data = args[nargs + i];
        else if (nargs < 2 && PyUnicode_CompareWithASCIIString(key, "end_stream") == 0)
            end_stream = args[nargs + i];
        else {
            PyErr_Format(PyExc_TypeError, "%s got an unexpected keyword argument '%U'", usage, key);
            return NULL;
        }
    }
    if (data == NULL) {
        PyErr_Format(PyExc_TypeError, "%s missing required argument 'data'", usage);
        return NULL;
    }
    if (SLOT(self, conn_at.state) != state_open)
        Py_RETURN_NONE;
    int t = TRUTH(self, write_end_stream);
    if (t != 0)
        return t < 0 ? NULL : Py_NewRef(Py_None);
    t = PyObject_IsTrue(end_stream);
    if (t < 0)
        return NULL;
    if (t) {
        int half_close = TRUTH(self, half_close);
        if (half_close < 0)
            return NULL;
        if (!half_close) {
            PyErr_SetString(PyExc_RuntimeError, "write(end_stream=True) needs enable_half_close(True)");
            return NULL;
        }
        PUT(self, write_end_stream, Py_NewRef(Py_True));
    }
    t = PyObject_IsTrue(data);
    if (t < 0)
        return NULL;
    if (t) {
        PyObject *buffer = GET(self, write_buffer);
        if (buffer == NULL)
            return NULL;
        Py_INCREF(buffer);
        int r = buffer_call(buffer_add, buffer, data);
        Py_DECREF(buffer);
        if (r < 0)
            return NULL;
    }
    t = TRUTH(self, write_blocked);
    if (t == 0)
        t = TRUTH(self, connecting);
    if (t == 0)
        t = TRUTH(self, pending_error);
    if (t != 0)
        return t < 0 ? NULL : Py_NewRef(Py_None);
    /* The connection's own schedulable callback, not a post: a second
     * schedule in the same pass is a no-op, and the loop runs it without the
     * post path's thread check, queue and wake-up. */
    PyObject *flush = GET(self, flush_cb);
    if (flush == NULL)
        return NULL;
    if (flush == Py_None) {
        PyObject *dispatcher = GET(self, dispatcher);
        if (dispatcher == NULL)
            return NULL;
        PyObject *bound = PyObject_GetAttr(self, s_flush);
        if (bound == NULL)
            return NULL;
        flush = call_method(dispatcher, s_create_schedulable_callback, bound);
        Py_DECREF(bound);
        if (flush == NULL)
            return NULL;
        PUT(self, flush_cb, flush);
    }
    Py_INCREF(flush);
    int r = run_method(flush, s_schedule_callback_current_iteration, NULL);
    Py_DECREF(flush);
    return r < 0 ? NULL : Py_NewRef(Py_None);
}

PyDoc_STRVAR(on_file_event_doc,
    "_on_file_event(events): the connection's file event fired (FileReadyType bits).\n\n"
    "A connect that failed at once closes here.  CLOSED while not reading closes\n"
    "(REMOTE_CLOSE).  WRITE unblocks writing and sends what is buffered (or settles a\n"
    "connect or a close); READ or CLOSED reads, to EOF when CLOSED.");

static PyObject *method_on_file_event(PyObject *self, PyObject *events_obj)
{
    long events = PyLong_AsLong(events_obj);
    if (events == -1 && PyErr_Occurred())
        return NULL;
    int t = TRUTH(self, pending_error);
    if (t < 0)
        return NULL;
    if (t)
        return call_method(self, s_fail_pending_connect, NULL);
    if (events & closed_bit) {
        t = TRUTH(self, read_disable_count);
        if (t < 0)
            return NULL;
        if (t) /* not reading, so nothing else will see it: the peer went away */
            return call_method(self, s_close_socket, remote_close);
    }
    if (events & write_bit) {
        PUT(self, write_blocked, Py_NewRef(Py_False));
        /* epoll reports the socket writable with every read event too; with
         * nothing to send, connect or close (and no TLS engine that may have
         * bytes of its own), that is a call for nothing. */
        PyObject *buffer = GET(self, write_buffer);
        if (buffer == NULL)
            return NULL;
        int wanted = PyObject_TypeCheck(buffer, buffer_type) ? buffer_length(buffer) > 0 : 1;
        if (!wanted) {
            wanted = TRUTH(self, connecting);
            if (wanted < 0)
                return NULL;
        }
        if (!wanted) {
            PyObject *close_type = GET(self, close_type);
            if (close_type == NULL)
                return NULL;
            wanted = close_type != Py_None;
        }
        if (!wanted) {
            PyObject *is_tls = _PyType_Lookup(Py_TYPE(self), s_is_tls);
            wanted = is_tls == NULL ? 0 : PyObject_IsTrue(is_tls);
            if (wanted < 0)
                return NULL;
        }
        if (wanted && dispatch_write_ready(self) < 0)
            return NULL;
    }
    if ((events & read_or_closed_bits) && SLOT(self, conn_at.state) != state_closed) {
        if (dispatch_read_ready(self, (events & closed_bit) != 0) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef connection_methods[] = {
    {"_on_file_event", (PyCFunction)method_on_file_event, METH_O, on_file_event_doc},
    {"_on_read_ready", (PyCFunction)(void (*)(void))method_on_read_ready, METH_FASTCALL, on_read_ready_doc},
    {"_on_write_ready", (PyCFunction)method_on_write_ready, METH_NOARGS, on_write_ready_doc},
    {"_flush", (PyCFunction)method_flush, METH_NOARGS, flush_doc},
    {"write", (PyCFunction)(void (*)(void))method_write, METH_FASTCALL | METH_KEYWORDS, write_doc},
    {NULL, NULL, 0, NULL},
};

/* binding */

static int constant(PyObject *constants, const char *name, PyObject **out)
{
    PyObject *value = PyDict_GetItemString(constants, name);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "bind_connection(): constant %s missing", name);
        return -1;
    }
    Py_XSETREF(*out, Py_NewRef(value));
    return 0;
}

static int long_constant(PyObject *constants, const char *name, long *out)
{
    PyObject *value = NULL;
    if (constant(constants, name, &value) < 0)
        return -1;
    *out = PyLong_AsLong(value);
    Py_DECREF(value);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

PyDoc_STRVAR(bind_connection_doc,
    "bind_connection(cls, buffer_type, constants): install the connection's I/O methods on cls.\n\n"
    "cls is pyevent_envoy.network.connection_impl.ConnectionImpl: its slots are found by\n"
    "name (TypeError if one is missing).  buffer_type is the base type of its buffers.\n"
    "constants: OPEN, CLOSED (ConnectionState members), STOP_ITERATION, REMOTE_CLOSE,\n"
    "WRITE_BIT, CLOSED_BIT, READ_OR_CLOSED_BITS and READ_CHUNK.");

static PyObject *bind_connection(PyObject *module, PyObject *args)
{
    PyTypeObject *cls, *buffers;
    PyObject *constants;
    if (!PyArg_ParseTuple(args, "O!O!O!:bind_connection", &PyType_Type, &cls, &PyType_Type, &buffers, &PyDict_Type,
                          &constants))
        return NULL;
    static const struct {
        const char *name;
        Py_ssize_t *offset;
    } slots[] = {
        {"_dispatcher", &conn_at.dispatcher},
        {"_fd", &conn_at.fd},
        {"_state", &conn_at.state},
        {"_filters", &conn_at.filters},
        {"_read_buffer", &conn_at.read_buffer},
        {"_write_buffer", &conn_at.write_buffer},
        {"_read_disable_count", &conn_at.read_disable_count},
        {"_connecting", &conn_at.connecting},
        {"_half_close", &conn_at.half_close},
        {"_read_end_stream", &conn_at.read_end_stream},
        {"_write_end_stream", &conn_at.write_end_stream},
        {"_write_shut", &conn_at.write_shut},
        {"_close_type", &conn_at.close_type},
        {"_pending_error", &conn_at.pending_error},
        {"_dispatch_buffered", &conn_at.dispatch_buffered},
        {"_flush_cb", &conn_at.flush_cb},
        {"_write_blocked", &conn_at.write_blocked},
        {"bytes_read", &conn_at.bytes_read},
        {"bytes_written", &conn_at.bytes_written},
        {"_connection_stats", &conn_at.connection_stats},
        {"_last_read_buffer_size", &conn_at.last_read_buffer_size},
        {"_last_write_buffer_size", &conn_at.last_write_buffer_size},
        {"failure_reason", &conn_at.failure_reason},
    };
    for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++)
        if (pe_slot_offset(cls, slots[i].name, slots[i].offset) < 0)
            return NULL;
    if (pe_slot_offset(buffers, "_chunks", &buffer_at.chunks) < 0 || pe_slot_offset(buffers, "_length", &buffer_at.length) < 0
        || pe_slot_offset(buffers, "_above", &buffer_at.above) < 0)
        return NULL;
    long read_chunk_long;
    if (constant(constants, "OPEN", &state_open) < 0 || constant(constants, "CLOSED", &state_closed) < 0
        || constant(constants, "STOP_ITERATION", &stop_iteration) < 0
        || constant(constants, "REMOTE_CLOSE", &remote_close) < 0 || long_constant(constants, "WRITE_BIT", &write_bit) < 0
        || long_constant(constants, "CLOSED_BIT", &closed_bit) < 0
        || long_constant(constants, "READ_OR_CLOSED_BITS", &read_or_closed_bits) < 0
        || long_constant(constants, "READ_CHUNK", &read_chunk_long) < 0)
        return NULL;
    if (read_chunk_long <= 0) {
        PyErr_SetString(PyExc_ValueError, "bind_connection(): READ_CHUNK must be positive");
        return NULL;
    }
    read_chunk = read_chunk_long;
    PyObject *add = PyObject_GetAttrString((PyObject *)buffers, "add");
    PyObject *drain = add == NULL ? NULL : PyObject_GetAttrString((PyObject *)buffers, "drain");
    if (drain == NULL) {
        Py_XDECREF(add);
        return NULL;
    }
    Py_XSETREF(buffer_add, add);
    Py_XSETREF(buffer_drain, drain);
    Py_XSETREF(buffer_type, (PyTypeObject *)Py_NewRef(buffers));
    if (pe_install_methods(cls, connection_methods) < 0)
        return NULL;
    /* What dispatch_read_ready and dispatch_write_ready compare a class's methods with. */
    PyObject *read = PyDict_GetItemString(cls->tp_dict, "_on_read_ready");
    PyObject *write = PyDict_GetItemString(cls->tp_dict, "_on_write_ready");
    if (read == NULL || write == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind_connection(): the methods were not installed");
        return NULL;
    }
    Py_XSETREF(read_ready_method, Py_NewRef(read));
    Py_XSETREF(write_ready_method, Py_NewRef(write));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"bind_connection", bind_connection, METH_VARARGS, bind_connection_doc},
    {NULL, NULL, 0, NULL},
};

int pe_connection_io_init(PyObject *module)
{
    if (pe_intern(&s_on_data, "on_data") < 0 || pe_intern(&s_close_socket, "_close_socket") < 0
        || pe_intern(&s_dispatch_buffered_reads, "_dispatch_buffered_reads") < 0
        || pe_intern(&s_finish_connect, "_finish_connect") < 0
        || pe_intern(&s_fail_pending_connect, "_fail_pending_connect") < 0
        || pe_intern(&s_shutdown_write, "_shutdown_write") < 0
        || pe_intern(&s_on_flushed_for_close, "_on_flushed_for_close") < 0 || pe_intern(&s_flush, "_flush") < 0
        || pe_intern(&s_create_schedulable_callback, "create_schedulable_callback") < 0
        || pe_intern(&s_schedule_callback_current_iteration, "schedule_callback_current_iteration") < 0
        || pe_intern(&s_on_read_ready, "_on_read_ready") < 0 || pe_intern(&s_on_write_ready, "_on_write_ready") < 0
        || pe_intern(&s_is_tls, "is_tls") < 0 || pe_intern(&s_read_total, "read_total") < 0
        || pe_intern(&s_read_current, "read_current") < 0 || pe_intern(&s_write_total, "write_total") < 0
        || pe_intern(&s_write_current, "write_current") < 0 || pe_intern(&s_write_current_moved, "write_current_moved") < 0)
        return -1;
    return PyModule_AddFunctions(module, module_methods);
}
