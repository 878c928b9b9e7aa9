/*
 * pyevent-envoy: pyevent_envoy._buffer, the network layer's byte buffers.
 *
 * Every connection has a read and a write buffer (Envoy's
 * Buffer::WatermarkBuffer), and a proxied request adds to, peeks at, takes
 * from and drains them about a dozen times.  As Python methods each was a
 * frame; here each is one C call.  The type is the base of
 * pyevent_envoy.network.buffer.OwnedBuffer and WatermarkBuffer, which keep
 * their documented behaviour exactly:
 *
 *   - the bytes are a list of chunks (the attribute _chunks) plus a running
 *     length (_length): adding never copies, draining copies only the chunk
 *     it cuts, and a gathered write sends the list as it is;
 *   - with a high watermark set, on_high() runs when the length rises above
 *     it and on_low() when the length then falls to half of it or below
 *     (each once per crossing); a high watermark of 0 disables both.
 *
 * The callbacks run after the buffer's own state is updated, so a callback
 * that reads or changes the buffer sees it consistent.  A chunk is any
 * bytes-like object; the buffer only needs its len(), slicing and
 * b"".join().
 *
 * _length and _above are also kept as Python objects (read-only members
 * of object type), which CPython's attribute caches read as fast as a
 * __slots__ field: the connection reads them several times per request.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *chunks;      /* list of bytes-like chunks */
    Py_ssize_t length;     /* their total length */
    PyObject *length_obj;  /* length as an int, for _length */
    Py_ssize_t high;       /* 0: no watermarks */
    Py_ssize_t low;
    PyObject *above;       /* Py_True / Py_False, for _above */
    PyObject *on_high;     /* callables or None */
    PyObject *on_low;
} Buffer;

static PyObject *empty_bytes; /* b"" */
static PyObject *join_chunks; /* b"".join */

static int set_length(Buffer *self, Py_ssize_t length)
{
    self->length = length;
    PyObject *obj = PyLong_FromSsize_t(length);
    if (obj == NULL)
        return -1;
    Py_XSETREF(self->length_obj, obj);
    return 0;
}

static int is_above(Buffer *self)
{
    return self->above == Py_True;
}

static void set_above(Buffer *self, int above)
{
    Py_SETREF(self->above, Py_NewRef(above ? Py_True : Py_False));
}

static int call(PyObject *cb)
{
    if (cb == Py_None)
        return 0;
    PyObject *r = PyObject_CallNoArgs(cb);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* After any change of length or watermarks: report a crossing. */
static int changed(Buffer *self)
{
    if (self->high == 0) {
        if (is_above(self)) {
            set_above(self, 0);
            return call(self->on_low);
        }
        return 0;
    }
    if (!is_above(self)) {
        if (self->length > self->high) {
            set_above(self, 1);
            return call(self->on_high);
        }
    }
    else if (self->length <= self->low) {
        set_above(self, 0);
        return call(self->on_low);
    }
    return 0;
}

/* A new empty chunk list: the old one is cleared in place when nothing
 * else holds it, else replaced (a caller may still be iterating it). */
static int clear_chunks(Buffer *self)
{
    if (Py_REFCNT(self->chunks) == 1)
        return PyList_SetSlice(self->chunks, 0, PyList_GET_SIZE(self->chunks), NULL);
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL)
        return -1;
    Py_SETREF(self->chunks, fresh);
    return 0;
}

static PyObject *join(PyObject *chunks)
{
    return PyObject_CallOneArg(join_chunks, chunks);
}

/* lifecycle */

static int buffer_init(Buffer *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"data", "on_low", "on_high", NULL};
    PyObject *data = NULL, *on_low = Py_None, *on_high = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O$OO:Buffer", keywords, &data, &on_low, &on_high))
        return -1;
    PyObject *chunks = PyList_New(0);
    if (chunks == NULL)
        return -1;
    Py_XSETREF(self->chunks, chunks);
    Py_XSETREF(self->on_low, Py_NewRef(on_low));
    Py_XSETREF(self->on_high, Py_NewRef(on_high));
    Py_XSETREF(self->above, Py_NewRef(Py_False));
    self->high = self->low = 0;
    Py_ssize_t n = 0;
    if (data != NULL) {
        n = PyObject_Length(data);
        if (n < 0)
            return -1;
        if (n > 0 && PyList_Append(chunks, data) < 0)
            return -1;
    }
    return set_length(self, n);
}

static int buffer_traverse(Buffer *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->chunks);
    Py_VISIT(self->on_high);
    Py_VISIT(self->on_low);
    return 0;
}

static int buffer_clear(Buffer *self)
{
    Py_CLEAR(self->chunks);
    Py_CLEAR(self->on_high);
    Py_CLEAR(self->on_low);
    return 0;
}

static void buffer_dealloc(Buffer *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    buffer_clear(self);
    Py_CLEAR(self->length_obj);
    Py_CLEAR(self->above);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int check_ready(Buffer *self)
{
    if (self->chunks == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "buffer used before __init__");
        return -1;
    }
    return 0;
}

/* methods */

static PyObject *buffer_add(Buffer *self, PyObject *data)
{
    if (check_ready(self) < 0)
        return NULL;
    Py_ssize_t n = PyObject_Length(data);
    if (n < 0)
        return NULL;
    if (n == 0)
        Py_RETURN_NONE;
    if (PyList_Append(self->chunks, data) < 0 || set_length(self, self->length + n) < 0)
        return NULL;
    /* Adding can only cross the high watermark. */
    if (self->high && !is_above(self) && self->length > self->high) {
        set_above(self, 1);
        if (call(self->on_high) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *buffer_prepend(Buffer *self, PyObject *data)
{
    if (check_ready(self) < 0)
        return NULL;
    Py_ssize_t n = PyObject_Length(data);
    if (n < 0)
        return NULL;
    if (n == 0)
        Py_RETURN_NONE;
    if (PyList_Insert(self->chunks, 0, data) < 0 || set_length(self, self->length + n) < 0)
        return NULL;
    if (changed(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyTypeObject *buffer_type;

static PyObject *buffer_move(Buffer *self, PyObject *arg)
{
    if (check_ready(self) < 0)
        return NULL;
    if (!PyObject_TypeCheck(arg, buffer_type)) {
        PyErr_Format(PyExc_TypeError, "move() takes a buffer, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    Buffer *other = (Buffer *)arg;
    if (check_ready(other) < 0)
        return NULL;
    if (other->length == 0 || other == self)
        Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(self->chunks);
    if (PyList_SetSlice(self->chunks, n, n, other->chunks) < 0)
        return NULL;
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL)
        return NULL;
    Py_SETREF(other->chunks, fresh);
    Py_ssize_t moved = other->length;
    if (set_length(other, 0) < 0 || set_length(self, self->length + moved) < 0)
        return NULL;
    if (changed(other) < 0 || changed(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *buffer_take(Buffer *self, PyObject *Py_UNUSED(ignored))
{
    if (check_ready(self) < 0)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(self->chunks);
    if (n == 0)
        return Py_NewRef(empty_bytes);
    PyObject *data = n == 1 ? Py_NewRef(PyList_GET_ITEM(self->chunks, 0)) : join(self->chunks);
    if (data == NULL)
        return NULL;
    if (clear_chunks(self) < 0 || set_length(self, 0) < 0 || changed(self) < 0) {
        Py_DECREF(data);
        return NULL;
    }
    return data;
}

static PyObject *buffer_peek(Buffer *self, PyObject *Py_UNUSED(ignored))
{
    if (check_ready(self) < 0)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(self->chunks);
    if (n == 0)
        return Py_NewRef(empty_bytes);
    if (n > 1) {
        PyObject *data = join(self->chunks);
        if (data == NULL)
            return NULL;
        int rc = PyList_SetSlice(self->chunks, 0, n, NULL);
        if (rc == 0)
            rc = PyList_Append(self->chunks, data);
        Py_DECREF(data);
        if (rc < 0)
            return NULL;
    }
    return Py_NewRef(PyList_GET_ITEM(self->chunks, 0));
}

static PyObject *buffer_drain(Buffer *self, PyObject *arg)
{
    if (check_ready(self) < 0)
        return NULL;
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "drain() size must not be negative");
        return NULL;
    }
    if (size >= self->length) {
        if (clear_chunks(self) < 0 || set_length(self, 0) < 0)
            return NULL;
    }
    else if (size > 0) {
        PyObject *chunks = self->chunks;
        Py_ssize_t whole = 0, left = size;
        while (whole < PyList_GET_SIZE(chunks)) {
            Py_ssize_t n = PyObject_Length(PyList_GET_ITEM(chunks, whole));
            if (n < 0)
                return NULL;
            if (n > left)
                break;
            left -= n;
            whole++;
        }
        if (whole && PyList_SetSlice(chunks, 0, whole, NULL) < 0)
            return NULL;
        if (left && PyList_GET_SIZE(chunks)) {
            /* Cut the first chunk: the only copy a drain makes. */
            PyObject *head = PyList_GET_ITEM(chunks, 0);
            PyObject *rest = PySequence_GetSlice(head, left, PY_SSIZE_T_MAX);
            if (rest == NULL)
                return NULL;
            PyList_SetItem(chunks, 0, rest); /* steals rest */
        }
        if (set_length(self, self->length - size) < 0)
            return NULL;
    }
    if (changed(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *buffer_set_watermarks(Buffer *self, PyObject *arg)
{
    if (check_ready(self) < 0)
        return NULL;
    Py_ssize_t high = PyLong_AsSsize_t(arg);
    if (high == -1 && PyErr_Occurred())
        return NULL;
    if (high < 0) {
        PyErr_SetString(PyExc_ValueError, "set_watermarks() high must not be negative");
        return NULL;
    }
    /* Envoy's rule: low is half of high. */
    self->high = high;
    self->low = high / 2;
    if (changed(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *buffer_above_high_watermark(Buffer *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->above != NULL ? self->above : Py_False);
}

static PyObject *buffer_high(Buffer *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->high);
}

static PyObject *buffer_low(Buffer *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->low);
}

static Py_ssize_t buffer_len(Buffer *self)
{
    return self->length;
}

static int buffer_bool(Buffer *self)
{
    return self->length != 0;
}

static PyObject *buffer_repr(Buffer *self)
{
    return PyUnicode_FromFormat("<%s %zd bytes>", Py_TYPE(self)->tp_name, self->length);
}

static PyMethodDef buffer_methods[] = {
    {"add", (PyCFunction)buffer_add, METH_O, "add(data): append data (no copy)."},
    {"prepend", (PyCFunction)buffer_prepend, METH_O, "prepend(data): put data before everything."},
    {"move", (PyCFunction)buffer_move, METH_O, "move(other): append all of other's bytes and empty it."},
    {"take", (PyCFunction)buffer_take, METH_NOARGS, "take() -> bytes: remove and return everything."},
    {"peek", (PyCFunction)buffer_peek, METH_NOARGS,
     "peek() -> bytes: everything, without removing it (joins the chunks into one)."},
    {"drain", (PyCFunction)buffer_drain, METH_O, "drain(size): remove the first size bytes."},
    {"set_watermarks", (PyCFunction)buffer_set_watermarks, METH_O,
     "set_watermarks(high): high watermark (0: none); the low one is half of it."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef buffer_members[] = {
    {"_chunks", T_OBJECT_EX, offsetof(Buffer, chunks), READONLY, "the chunks, oldest first"},
    {"_length", T_OBJECT_EX, offsetof(Buffer, length_obj), READONLY, "the total length"},
    {"_above", T_OBJECT_EX, offsetof(Buffer, above), READONLY, "above the high watermark"},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef buffer_getset[] = {
    {"above_high_watermark", (getter)buffer_above_high_watermark, NULL,
     "True from a rise above the high watermark until the fall to the low one.", NULL},
    {"_high", (getter)buffer_high, NULL, "the high watermark (0: none)", NULL},
    {"_low", (getter)buffer_low, NULL, "the low watermark", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot buffer_slots[] = {
    {Py_tp_doc, "A queue of byte chunks with a running length and optional watermarks "
                "(the base of OwnedBuffer and WatermarkBuffer)."},
    {Py_tp_init, buffer_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_traverse, buffer_traverse},
    {Py_tp_clear, buffer_clear},
    {Py_tp_dealloc, buffer_dealloc},
    {Py_tp_methods, buffer_methods},
    {Py_tp_members, buffer_members},
    {Py_tp_getset, buffer_getset},
    {Py_tp_repr, buffer_repr},
    {Py_sq_length, buffer_len},
    {Py_nb_bool, buffer_bool},
    {0, NULL},
};

static PyType_Spec buffer_spec = {
    "pyevent_envoy._buffer.Buffer",
    sizeof(Buffer),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    buffer_slots,
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pyevent_envoy._buffer",
    "The network layer's byte buffers in C (the base of OwnedBuffer and WatermarkBuffer).",
    -1,
    NULL,
};

PyMODINIT_FUNC PyInit__buffer(void)
{
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
#ifdef Py_GIL_DISABLED
    /* A buffer belongs to one connection and is only used on its
     * dispatcher's thread, as the Python it replaces was. */
    PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    empty_bytes = PyBytes_FromStringAndSize(NULL, 0);
    join_chunks = empty_bytes != NULL ? PyObject_GetAttrString(empty_bytes, "join") : NULL;
    if (join_chunks == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    PyObject *type = PyType_FromSpec(&buffer_spec);
    if (type == NULL || PyModule_AddObject(m, "Buffer", Py_NewRef(type)) < 0) {
        Py_XDECREF(type);
        Py_DECREF(m);
        return NULL;
    }
    buffer_type = (PyTypeObject *)type;
    return m;
}
