/*
 * pyevent-envoy: pyevent_envoy._headers, the header map's storage and its
 * hot lookups in C.
 *
 * pyevent_envoy.http.header_map.HeaderMap keeps a message's fields as two
 * parallel lists, names (lowercase) and values.  A proxied request looks
 * fields up and sets the proxy's own about twenty times; as Python methods
 * each cost a frame.  This module defines the base type that holds the two
 * lists (the attributes _names and _values) and implements the lookups and
 * the trusted set on it; HeaderMap subclasses it and keeps everything else
 * (validation, add, remove, iteration...) in Python.
 *
 * Every method here does exactly what the Python it replaces did, with the
 * same comparisons (== with identity first, as `in` and list.index use), so
 * a name matches whether or not it is the same string object.
 *
 *   HeaderFields._get(name)          first value of an already lowercase name, or None
 *   HeaderFields.get(name)           first value of name (any case), or None
 *   name in HeaderFields             a str name (any case) is present
 *   HeaderFields._set_trusted(name, value)
 *                                    set without checks: replace the first value
 *                                    (dropping repeats), else insert a
 *                                    pseudo-header after the others, else append
 *   HeaderFields._insert_pseudo(name, value)
 *   HeaderFields._trusted(names, values)   (classmethod) wrap two lists, no copy
 *
 * And one header value the connection manager makes for every request:
 *
 *   request_id(bits)   a 128-bit random int as a version 4 UUID string
 *                      (x-request-id), 8-4-4-4-12 lowercase hex
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    PyObject *names;
    PyObject *values;
} HeaderFields;

static int fields_traverse(HeaderFields *self, visitproc visit, void *arg)
{
    Py_VISIT(self->names);
    Py_VISIT(self->values);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int fields_clear(HeaderFields *self)
{
    Py_CLEAR(self->names);
    Py_CLEAR(self->values);
    return 0;
}

static void fields_dealloc(HeaderFields *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    fields_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* The two lists, or an error as Python would raise it. */
static int lists(HeaderFields *self, PyObject **names, PyObject **values)
{
    if (self->names == NULL || self->values == NULL) {
        PyErr_SetString(PyExc_AttributeError, self->names == NULL ? "_names" : "_values");
        return -1;
    }
    if (!PyList_Check(self->names) || !PyList_Check(self->values)) {
        PyErr_SetString(PyExc_TypeError, "HeaderFields: _names and _values must be lists");
        return -1;
    }
    *names = self->names;
    *values = self->values;
    return 0;
}

/* Index of the first item of list equal to name at or after start; -1 if
 * none; -2 on an error from the comparison. */
static Py_ssize_t find_from(PyObject *list, PyObject *name, Py_ssize_t start)
{
    for (Py_ssize_t i = start; i < PyList_GET_SIZE(list); i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (item == name)
            return i;
        if (PyUnicode_CheckExact(item) && PyUnicode_CheckExact(name)) {
            /* str == str without the generic comparison's calls: most names
             * differ in length, the rest are compared bytewise (equal strs
             * have equal kinds). */
            Py_ssize_t len = PyUnicode_GET_LENGTH(item);
            if (len == PyUnicode_GET_LENGTH(name) && PyUnicode_KIND(item) == PyUnicode_KIND(name)
                && memcmp(PyUnicode_DATA(item), PyUnicode_DATA(name), (size_t)len * PyUnicode_KIND(item)) == 0)
                return i;
            continue;
        }
        Py_INCREF(item);
        int eq = PyObject_RichCompareBool(item, name, Py_EQ);
        Py_DECREF(item);
        if (eq < 0)
            return -2;
        if (eq)
            return i;
    }
    return -1;
}

static PyObject *value_at(PyObject *values, Py_ssize_t i)
{
    if (i >= PyList_GET_SIZE(values)) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return NULL;
    }
    return Py_NewRef(PyList_GET_ITEM(values, i));
}

static PyObject *lookup(HeaderFields *self, PyObject *name)
{
    PyObject *names, *values;
    if (lists(self, &names, &values) < 0)
        return NULL;
    Py_ssize_t i = find_from(names, name, 0);
    if (i == -2)
        return NULL;
    if (i < 0)
        Py_RETURN_NONE;
    return value_at(values, i);
}

/* name.lower(), without a call for the usual already-lowercase ASCII str. */
static PyObject *lowered(PyObject *name)
{
    if (PyUnicode_CheckExact(name) && PyUnicode_IS_ASCII(name)) {
        const Py_UCS1 *p = PyUnicode_1BYTE_DATA(name);
        Py_ssize_t n = PyUnicode_GET_LENGTH(name);
        Py_ssize_t i = 0;
        while (i < n && !(p[i] >= 'A' && p[i] <= 'Z'))
            i++;
        if (i == n)
            return Py_NewRef(name);
    }
    return PyObject_CallMethod(name, "lower", NULL);
}

static PyObject *fields_get_lower(HeaderFields *self, PyObject *name)
{
    return lookup(self, name);
}

static PyObject *fields_get(HeaderFields *self, PyObject *name)
{
    PyObject *low = lowered(name);
    if (low == NULL)
        return NULL;
    PyObject *result = lookup(self, low);
    Py_DECREF(low);
    return result;
}

static int fields_contains(HeaderFields *self, PyObject *name)
{
    if (!PyUnicode_Check(name))
        return 0;
    PyObject *names, *values;
    if (lists(self, &names, &values) < 0)
        return -1;
    PyObject *low = lowered(name);
    if (low == NULL)
        return -1;
    Py_ssize_t i = find_from(names, low, 0);
    Py_DECREF(low);
    return i == -2 ? -1 : i >= 0;
}

static int is_pseudo(PyObject *name)
{
    return PyUnicode_Check(name) && PyUnicode_GET_LENGTH(name) > 0 && PyUnicode_READ_CHAR(name, 0) == ':';
}

static int insert_pseudo(PyObject *names, PyObject *values, PyObject *name, PyObject *value)
{
    Py_ssize_t n = PyList_GET_SIZE(names);
    Py_ssize_t i = 0;
    while (i < n && is_pseudo(PyList_GET_ITEM(names, i)))
        i++;
    if (PyList_Insert(names, i, name) < 0)
        return -1;
    return PyList_Insert(values, i, value);
}

static PyObject *fields_insert_pseudo(HeaderFields *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_insert_pseudo(name, value) takes 2 arguments");
        return NULL;
    }
    PyObject *names, *values;
    if (lists(self, &names, &values) < 0 || insert_pseudo(names, values, args[0], args[1]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *fields_set_trusted(HeaderFields *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_set_trusted(name, value) takes 2 arguments");
        return NULL;
    }
    PyObject *name = args[0], *value = args[1];
    PyObject *names, *values;
    if (lists(self, &names, &values) < 0)
        return NULL;
    Py_ssize_t first = find_from(names, name, 0);
    if (first == -2)
        return NULL;
    if (first >= 0) {
        if (first >= PyList_GET_SIZE(values)) {
            PyErr_SetString(PyExc_IndexError, "list assignment index out of range");
            return NULL;
        }
        if (PyList_SetItem(values, first, Py_NewRef(value)) < 0)
            return NULL;
        Py_ssize_t repeat = find_from(names, name, first + 1);
        if (repeat == -2)
            return NULL;
        if (repeat >= 0) {
            /* Rare: the repeats go, through the Python method that rebuilds the lists. */
            PyObject *start = PyLong_FromSsize_t(first + 1);
            if (start == NULL)
                return NULL;
            PyObject *r = PyObject_CallMethod((PyObject *)self, "_remove_after", "OO", name, start);
            Py_DECREF(start);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
        }
        Py_RETURN_NONE;
    }
    if (is_pseudo(name)) {
        if (insert_pseudo(names, values, name, value) < 0)
            return NULL;
    } else if (PyList_Append(names, name) < 0 || PyList_Append(values, value) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *fields_trusted(PyTypeObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_trusted(names, values) takes 2 arguments");
        return NULL;
    }
    HeaderFields *self = (HeaderFields *)cls->tp_alloc(cls, 0);
    if (self == NULL)
        return NULL;
    self->names = Py_NewRef(args[0]);
    self->values = Py_NewRef(args[1]);
    return (PyObject *)self;
}

static PyMethodDef fields_methods[] = {
    {"_get", (PyCFunction)fields_get_lower, METH_O,
     "_get(name): the first value of name, already lowercase (the proxy's own lookups), or None."},
    {"get", (PyCFunction)fields_get, METH_O, "get(name): the first value of name (any case), or None."},
    {"_set_trusted", (PyCFunction)(void (*)(void))fields_set_trusted, METH_FASTCALL,
     "_set_trusted(name, value): set without checks (name lowercase and valid, value valid).\n\n"
     "Replaces the first value of name and drops its repeats; else inserts a pseudo-header after\n"
     "the ones present, or appends a regular field."},
    {"_insert_pseudo", (PyCFunction)(void (*)(void))fields_insert_pseudo, METH_FASTCALL,
     "_insert_pseudo(name, value): insert after the pseudo-headers already there."},
    {"_trusted", (PyCFunction)(void (*)(void))fields_trusted, METH_FASTCALL | METH_CLASS,
     "_trusted(names, values): wrap two already validated lists (lowercase names); no copy, no checks."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef fields_members[] = {
    {"_names", T_OBJECT_EX, offsetof(HeaderFields, names), 0, "The field names, lowercase, in order."},
    {"_values", T_OBJECT_EX, offsetof(HeaderFields, values), 0, "The values, parallel to _names."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot fields_slots[] = {
    {Py_tp_doc, "The storage of a HeaderMap: two parallel lists, and the hot lookups on them."},
    {Py_tp_traverse, fields_traverse},
    {Py_tp_clear, fields_clear},
    {Py_tp_dealloc, fields_dealloc},
    {Py_tp_methods, fields_methods},
    {Py_tp_members, fields_members},
    {Py_sq_contains, fields_contains},
    {Py_tp_new, PyType_GenericNew},
    {0, NULL},
};

static PyType_Spec fields_spec = {
    "pyevent_envoy._headers.HeaderFields",
    sizeof(HeaderFields),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    fields_slots,
};

/* request_id(bits) -> str
 *
 * The 32 hex digits of bits (0 <= bits < 2**128), most significant first,
 * as 8-4-4-4-12, with the version digit (the 13th) set to 4 and the variant
 * digit (the 17th) to 8 + its two low bits (RFC 9562's 10xx). */
static PyObject *request_id(PyObject *module, PyObject *bits)
{
    static const char hex[] = "0123456789abcdef";
    if (!PyLong_Check(bits)) {
        PyErr_SetString(PyExc_TypeError, "request_id() takes an int");
        return NULL;
    }
    PyObject *shift = PyLong_FromLong(64);
    if (shift == NULL)
        return NULL;
    PyObject *upper = PyNumber_Rshift(bits, shift);
    Py_DECREF(shift);
    if (upper == NULL)
        return NULL;
    /* Negative bits shift to a negative int, and bits >= 2**128 to one past
     * 64 bits: either way the conversion fails. */
    unsigned long long high = PyLong_AsUnsignedLongLong(upper);
    Py_DECREF(upper);
    if (high == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "request_id() needs 0 <= bits < 2**128");
        return NULL;
    }
    unsigned long long low = PyLong_AsUnsignedLongLongMask(bits);
    if (low == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    char digits[32];
    for (int i = 0; i < 16; i++) {
        digits[i] = hex[(high >> (60 - 4 * i)) & 0xf];
        digits[16 + i] = hex[(low >> (60 - 4 * i)) & 0xf];
    }
    digits[12] = '4';
    digits[16] = hex[8 + ((low >> 60) & 3)];
    char out[36];
    memcpy(out, digits, 8);
    out[8] = '-';
    memcpy(out + 9, digits + 8, 4);
    out[13] = '-';
    memcpy(out + 14, digits + 12, 4);
    out[18] = '-';
    memcpy(out + 19, digits + 16, 4);
    out[23] = '-';
    memcpy(out + 24, digits + 20, 12);
    return PyUnicode_FromStringAndSize(out, 36);
}

static PyMethodDef module_methods[] = {
    {"request_id", (PyCFunction)request_id, METH_O,
     "request_id(bits): a 128-bit random int as a version 4 UUID string (x-request-id)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pyevent_envoy._headers",
    "The header map's storage and hot lookups in C (the base of HeaderMap), and the x-request-id format.",
    -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__headers(void)
{
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
#ifdef Py_GIL_DISABLED
    PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    PyObject *type = PyType_FromSpec(&fields_spec);
    if (type == NULL || PyModule_AddObject(m, "HeaderFields", type) < 0) {
        Py_XDECREF(type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
