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
 * And the connection manager's per-request work on the request's headers:
 *
 *   request_id(bits)   a 128-bit random int as a version 4 UUID string
 *                      (x-request-id), 8-4-4-4-12 lowercase hex
 *   mutate_plain(headers, scheme, internal_only, rng)
 *                      the request-header mutation of the common
 *                      configuration (see the function)
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

static PyTypeObject *fields_type; /* HeaderFields, once the module is made */

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

/* The trusted set: replace the first value of name (dropping repeats), else
 * insert a pseudo-header after the others, else append.  0, or -1 with an
 * exception. */
static int set_trusted(HeaderFields *self, PyObject *name, PyObject *value)
{
    PyObject *names, *values;
    if (lists(self, &names, &values) < 0)
        return -1;
    Py_ssize_t first = find_from(names, name, 0);
    if (first == -2)
        return -1;
    if (first >= 0) {
        if (first >= PyList_GET_SIZE(values)) {
            PyErr_SetString(PyExc_IndexError, "list assignment index out of range");
            return -1;
        }
        if (PyList_SetItem(values, first, Py_NewRef(value)) < 0)
            return -1;
        Py_ssize_t repeat = find_from(names, name, first + 1);
        if (repeat == -2)
            return -1;
        if (repeat >= 0) {
            /* Rare: the repeats go, through the Python method that rebuilds the lists. */
            PyObject *start = PyLong_FromSsize_t(first + 1);
            if (start == NULL)
                return -1;
            PyObject *r = PyObject_CallMethod((PyObject *)self, "_remove_after", "OO", name, start);
            Py_DECREF(start);
            if (r == NULL)
                return -1;
            Py_DECREF(r);
        }
        return 0;
    }
    if (is_pseudo(name))
        return insert_pseudo(names, values, name, value);
    if (PyList_Append(names, name) < 0 || PyList_Append(values, value) < 0)
        return -1;
    return 0;
}

static PyObject *fields_set_trusted(HeaderFields *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_set_trusted(name, value) takes 2 arguments");
        return NULL;
    }
    if (set_trusted(self, args[0], args[1]) < 0)
        return NULL;
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

/* Names and values mutate_plain() uses, interned once. */
static PyObject *s_x_envoy_internal, *s_x_forwarded_proto, *s_scheme, *s_x_request_id, *s_http, *s_https,
    *s_remove, *s_getrandbits, *s_bits_128;

static int remove_all(HeaderFields *self, PyObject *name)
{
    PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, s_remove, name);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* mutate_plain(headers, scheme, internal_only, rng) -> request id or None
 *
 * The connection manager's request-header mutation for its common
 * configuration (use_remote_address off, no xff_num_trusted_hops): exactly
 * the steps ActiveStream._mutate_request_headers takes then, in order.
 *
 *   - a client's x-envoy-internal goes;
 *   - x-forwarded-proto is set to scheme when the request has none;
 *   - if any name of internal_only (a frozenset) is present, all of them go;
 *   - :scheme is x-forwarded-proto lowercased when that is http or https,
 *     else http;
 *   - with rng (the worker's random.Random; None: generate_request_id off),
 *     a request without x-request-id gets one (rng.getrandbits(128) as a
 *     version 4 UUID).
 *
 * Returns the request's x-request-id, or None.  Removals go through the
 * map's own remove() (they rebuild the lists; they are rare). */
static PyObject *mutate_plain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4 || !PyObject_TypeCheck(args[0], fields_type) || !PyUnicode_Check(args[1])
        || !PyFrozenSet_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "mutate_plain(headers: HeaderFields, scheme: str, internal_only: frozenset, rng)");
        return NULL;
    }
    HeaderFields *self = (HeaderFields *)args[0];
    PyObject *scheme = args[1], *internal_only = args[2], *rng = args[3];
    PyObject *names, *values;

    if (lists(self, &names, &values) < 0)
        return NULL;
    Py_ssize_t i = find_from(names, s_x_envoy_internal, 0);
    if (i == -2 || (i >= 0 && remove_all(self, s_x_envoy_internal) < 0))
        return NULL;

    PyObject *proto = lookup(self, s_x_forwarded_proto);
    if (proto == NULL)
        return NULL;
    if (proto == Py_None) {
        Py_DECREF(proto);
        proto = Py_NewRef(scheme);
        if (set_trusted(self, s_x_forwarded_proto, proto) < 0)
            goto fail_proto;
    }

    if (lists(self, &names, &values) < 0)
        goto fail_proto;
    int present = 0;
    for (i = 0; i < PyList_GET_SIZE(names) && !present; i++) {
        present = PySet_Contains(internal_only, PyList_GET_ITEM(names, i));
        if (present < 0)
            goto fail_proto;
    }
    if (present) {
        PyObject *it = PyObject_GetIter(internal_only), *name;
        if (it == NULL)
            goto fail_proto;
        while ((name = PyIter_Next(it)) != NULL) {
            int failed = remove_all(self, name) < 0;
            Py_DECREF(name);
            if (failed) {
                Py_DECREF(it);
                goto fail_proto;
            }
        }
        Py_DECREF(it);
        if (PyErr_Occurred())
            goto fail_proto;
    }

    PyObject *lower = lowered(proto);
    Py_DECREF(proto);
    if (lower == NULL)
        return NULL;
    int is_http = PyUnicode_Check(lower) && PyUnicode_Compare(lower, s_http) == 0;
    int is_https = !is_http && PyUnicode_Check(lower) && PyUnicode_Compare(lower, s_https) == 0;
    if (PyErr_Occurred()) {
        Py_DECREF(lower);
        return NULL;
    }
    int failed = set_trusted(self, s_scheme, is_http || is_https ? lower : s_http) < 0;
    Py_DECREF(lower);
    if (failed)
        return NULL;

    PyObject *request_id_value = lookup(self, s_x_request_id);
    if (request_id_value == NULL || request_id_value != Py_None || rng == Py_None)
        return request_id_value;
    Py_DECREF(request_id_value);
    PyObject *bits = PyObject_CallMethodOneArg(rng, s_getrandbits, s_bits_128);
    if (bits == NULL)
        return NULL;
    request_id_value = request_id(NULL, bits);
    Py_DECREF(bits);
    if (request_id_value == NULL)
        return NULL;
    if (set_trusted(self, s_x_request_id, request_id_value) < 0) {
        Py_DECREF(request_id_value);
        return NULL;
    }
    return request_id_value;

fail_proto:
    Py_DECREF(proto);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"request_id", (PyCFunction)request_id, METH_O,
     "request_id(bits): a 128-bit random int as a version 4 UUID string (x-request-id)."},
    {"mutate_plain", (PyCFunction)(void (*)(void))mutate_plain, METH_FASTCALL,
     "mutate_plain(headers, scheme, internal_only, rng): the connection manager's request-header "
     "mutation for its common configuration; returns the x-request-id or None."},
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
    s_x_envoy_internal = PyUnicode_InternFromString("x-envoy-internal");
    s_x_forwarded_proto = PyUnicode_InternFromString("x-forwarded-proto");
    s_scheme = PyUnicode_InternFromString(":scheme");
    s_x_request_id = PyUnicode_InternFromString("x-request-id");
    s_http = PyUnicode_InternFromString("http");
    s_https = PyUnicode_InternFromString("https");
    s_remove = PyUnicode_InternFromString("remove");
    s_getrandbits = PyUnicode_InternFromString("getrandbits");
    s_bits_128 = PyLong_FromLong(128);
    if (s_x_envoy_internal == NULL || s_x_forwarded_proto == NULL || s_scheme == NULL || s_x_request_id == NULL
        || s_http == NULL || s_https == NULL || s_remove == NULL || s_getrandbits == NULL || s_bits_128 == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    PyObject *type = PyType_FromSpec(&fields_spec);
    if (type == NULL || PyModule_AddObjectRef(m, "HeaderFields", type) < 0) {
        Py_XDECREF(type);
        Py_DECREF(m);
        return NULL;
    }
    fields_type = (PyTypeObject *)type; /* the module keeps its reference */
    Py_DECREF(type);
    return m;
}
