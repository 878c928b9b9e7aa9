/*
 * pyevent-envoy: pyevent_envoy._sockio, the network layer's socket reads
 * and writes.
 *
 * A connection reads and writes its non-blocking socket once or twice per
 * request.  Through cffi each read was three calls (read into a C buffer,
 * copy it out with ffi.unpack, read the status cell) and a large read that
 * took several rounds was joined again in Python; a gathered write built
 * three cffi arrays first.  Here each is one call that returns Python
 * objects: a read returns one bytes however many read(2) calls it took, and
 * a write sends the buffer's own list of bytes chunks with sendmsg(2).
 *
 * Results are (value, code) tuples, never exceptions: EAGAIN ends every
 * edge-triggered read and write, and must stay off Python's exception path.
 * Codes: 0 (would block, or all written), READ_EOF, READ_FULL, or an errno.
 *
 * The GIL is released around the system calls, as cffi does for every C
 * call, so that other threads' Python runs while this one is in the kernel.
 *
 * Functions:
 *   read(fd, cap, until_eof) -> (data, code)
 *   write(fd, data) -> (sent, code)
 *   writev(fd, chunks) -> (sent, code)
 *   bind_connection(cls, buffer_type, constants): the connection's I/O
 *       methods on top of these (connection_io.c)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sockio.h"

/* Each thread reads into a scratch buffer of its own, kept between calls
 * (a new one per read would cost an allocation of the whole cap), and
 * freed when the thread ends. */
static pthread_key_t scratch_key;

typedef struct {
    size_t size;
    char data[];
} scratch_buffer;

char *pe_thread_scratch(size_t cap)
{
    scratch_buffer *s = pthread_getspecific(scratch_key);
    if (s != NULL && s->size >= cap)
        return s->data;
    scratch_buffer *grown = realloc(s, sizeof(scratch_buffer) + cap);
    if (grown == NULL)
        return NULL;
    grown->size = cap;
    if (pthread_setspecific(scratch_key, grown) != 0) {
        free(grown);
        return NULL;
    }
    return grown->data;
}

/* A file descriptor argument: an int in C's int range. */
static int fd_arg(PyObject *obj)
{
    long fd = PyLong_AsLong(obj);
    if (fd == -1 && PyErr_Occurred())
        return -1;
    if (fd < 0 || fd > 0x7fffffffL) {
        PyErr_SetString(PyExc_ValueError, "not a file descriptor");
        return -1;
    }
    return (int)fd;
}

static PyObject *result(PyObject *value, long code)
{
    if (value == NULL)
        return NULL;
    PyObject *code_obj = PyLong_FromLong(code);
    if (code_obj == NULL) {
        Py_DECREF(value);
        return NULL;
    }
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) {
        Py_DECREF(value);
        Py_DECREF(code_obj);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, value);
    PyTuple_SET_ITEM(pair, 1, code_obj);
    return pair;
}

/* The read loop of read() (see there), for any caller; runs without the GIL. */
long pe_read_loop(int fd, char *buf, size_t cap, int until_eof, size_t *got_out)
{
    size_t got = 0;
    long code = READ_FULL;
    while (got < cap) {
        size_t want = cap - got;
        ssize_t n = read(fd, buf + got, want);
        if (n > 0) {
            got += (size_t)n;
            if ((size_t)n < want && !until_eof) {
                code = 0;
                break;
            }
            continue;
        }
        if (n == 0) {
            code = READ_EOF;
            break;
        }
        if (errno == EINTR)
            continue;
        code = (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : errno;
        break;
    }
    *got_out = got;
    return code;
}

/* read(fd, cap, until_eof) -> (data, code)
 *
 * Reads until EAGAIN, EOF, an error or cap bytes.  code says why it
 * stopped: 0 (would block), READ_EOF, READ_FULL (cap reached: more may be
 * waiting) or an errno; data is what was read before it, possibly b"".
 *
 * Unless until_eof is true, a short read ends the loop as "would block":
 * the kernel had less than was asked for, and with edge-triggered readiness
 * any later byte is a new edge.  That saves the read() that would only
 * return EAGAIN.  A peer's FIN that arrives with the last bytes is reported
 * by EV_CLOSED (EPOLLRDHUP), and the caller then reads with until_eof. */
static PyObject *sockio_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "read(fd, cap, until_eof) takes 3 arguments");
        return NULL;
    }
    int fd = fd_arg(args[0]);
    if (fd < 0)
        return NULL;
    Py_ssize_t cap = PyLong_AsSsize_t(args[1]);
    if (cap == -1 && PyErr_Occurred())
        return NULL;
    if (cap <= 0) {
        PyErr_SetString(PyExc_ValueError, "read(): cap must be positive");
        return NULL;
    }
    int until_eof = PyObject_IsTrue(args[2]);
    if (until_eof < 0)
        return NULL;
    char *buf = pe_thread_scratch((size_t)cap);
    if (buf == NULL)
        return PyErr_NoMemory();

    size_t got;
    long code;
    Py_BEGIN_ALLOW_THREADS
    code = pe_read_loop(fd, buf, (size_t)cap, until_eof, &got);
    Py_END_ALLOW_THREADS
    return result(PyBytes_FromStringAndSize(buf, (Py_ssize_t)got), code);
}

/* Send iov[0..count) until all is sent, EAGAIN or an error; returns the
 * bytes sent and sets *code to 0 (all sent), EAGAIN or an errno.  Called
 * without the GIL. */
size_t pe_send_all(int fd, struct iovec *iov, int count, long *code)
{
    struct msghdr msg;
    size_t done = 0;
    int first = 0;
    *code = 0;
    while (first < count) {
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov + first;
        msg.msg_iovlen = (size_t)(count - first);
        ssize_t sent = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            *code = (errno == EWOULDBLOCK) ? EAGAIN : errno;
            return done;
        }
        if (sent == 0) {
            *code = EAGAIN; /* nothing taken: wait for the next WRITE edge */
            return done;
        }
        done += (size_t)sent;
        /* Step past what went out: whole buffers, then into a partial one. */
        size_t left = (size_t)sent;
        while (first < count && left >= iov[first].iov_len) {
            left -= iov[first].iov_len;
            first++;
        }
        if (first < count) {
            iov[first].iov_base = (char *)iov[first].iov_base + left;
            iov[first].iov_len -= left;
        }
    }
    return done;
}

/* write(fd, data) -> (sent, code)
 *
 * Sends a bytes-like object until all of it is sent, the socket would block
 * or an error; code is 0 (all sent), EAGAIN or an errno.  MSG_NOSIGNAL: a
 * peer that went away is an EPIPE here, not a SIGPIPE. */
static PyObject *sockio_write(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "write(fd, data) takes 2 arguments");
        return NULL;
    }
    int fd = fd_arg(args[0]);
    if (fd < 0)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    struct iovec iov = {view.buf, (size_t)view.len};
    long code;
    size_t sent;
    Py_BEGIN_ALLOW_THREADS
    sent = view.len ? pe_send_all(fd, &iov, 1, &code) : 0;
    Py_END_ALLOW_THREADS
    if (!view.len)
        code = 0;
    PyBuffer_Release(&view);
    return result(PyLong_FromSize_t(sent), code);
}

/* writev(fd, chunks) -> (sent, code)
 *
 * Sends the first chunks of a list of bytes in order with one gathered
 * send per round, as write() does for one buffer: at most WRITEV_MAX of
 * them per call (code 0 then means those went out, and the caller goes on
 * with the rest).  Saves joining a head and a large body before sending.
 * The chunks are held while the GIL is released. */
static PyObject *sockio_writev(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "writev(fd, chunks) takes 2 arguments");
        return NULL;
    }
    int fd = fd_arg(args[0]);
    if (fd < 0)
        return NULL;
    PyObject *chunks = args[1];
    if (!PyList_Check(chunks)) {
        PyErr_SetString(PyExc_TypeError, "writev(): chunks must be a list of bytes");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(chunks);
    if (count > WRITEV_MAX)
        count = WRITEV_MAX;
    PyObject *held[WRITEV_MAX];
    struct iovec iov[WRITEV_MAX];
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *chunk = PyList_GET_ITEM(chunks, i);
        if (!PyBytes_Check(chunk)) {
            for (Py_ssize_t j = 0; j < i; j++)
                Py_DECREF(held[j]);
            PyErr_SetString(PyExc_TypeError, "writev(): chunks must be a list of bytes");
            return NULL;
        }
        Py_INCREF(chunk);
        held[i] = chunk;
        iov[i].iov_base = PyBytes_AS_STRING(chunk);
        iov[i].iov_len = (size_t)PyBytes_GET_SIZE(chunk);
    }
    long code;
    size_t sent;
    Py_BEGIN_ALLOW_THREADS
    sent = pe_send_all(fd, iov, (int)count, &code);
    Py_END_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++)
        Py_DECREF(held[i]);
    return result(PyLong_FromSize_t(sent), code);
}

static PyMethodDef sockio_methods[] = {
    {"read", (PyCFunction)(void (*)(void))sockio_read, METH_FASTCALL,
     "read(fd, cap, until_eof) -> (data, code): read until EAGAIN, EOF, an error or cap bytes."},
    {"write", (PyCFunction)(void (*)(void))sockio_write, METH_FASTCALL,
     "write(fd, data) -> (sent, code): send until done, EAGAIN or an error."},
    {"writev", (PyCFunction)(void (*)(void))sockio_writev, METH_FASTCALL,
     "writev(fd, chunks) -> (sent, code): send a list of bytes (at most WRITEV_MAX) with one gathered send per round."},
    {NULL, NULL, 0, NULL},
};

static void free_scratch(void *p)
{
    free(p);
}

static int key_error;

static void make_scratch_key(void)
{
    key_error = pthread_key_create(&scratch_key, free_scratch);
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pyevent_envoy._sockio",
    "The network layer's socket reads and writes: one call each, returning Python objects.",
    -1,
    sockio_methods,
};

PyMODINIT_FUNC PyInit__sockio(void)
{
    /* One key for the process, however often the module is initialised. */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, make_scratch_key);
    if (key_error != 0) {
        errno = key_error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
#ifdef Py_GIL_DISABLED
    PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    if (PyModule_AddIntConstant(m, "READ_EOF", READ_EOF) < 0
        || PyModule_AddIntConstant(m, "READ_FULL", READ_FULL) < 0
        || PyModule_AddIntConstant(m, "WRITEV_MAX", WRITEV_MAX) < 0
        || PyModule_AddIntConstant(m, "EAGAIN", EAGAIN) < 0
        || pe_connection_io_init(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
