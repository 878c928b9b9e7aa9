/*
 * pyevent-envoy: C methods on Python classes, reading their __slots__ in place.
 *
 * Some methods of the proxy's per-request classes are C (connection_io.c,
 * http1_codec.c).  Their classes stay Python classes with __slots__, whose
 * Python code reads the same attributes.  A slot is a member descriptor of
 * object type at a fixed offset in every instance of the class and of its
 * subclasses, so the C methods read and write it there: one load, where
 * getattr() would look the name up.  The offsets are found by name when the
 * methods are installed (a name that is not such a slot is a TypeError then),
 * and every method is a method descriptor of the class, so CPython checks
 * the type of self before the method runs.
 *
 * Everything here is static: each module that includes it keeps its own
 * offsets.
 */
#ifndef PYEVENT_ENVOY_SLOTS_H
#define PYEVENT_ENVOY_SLOTS_H

#include <Python.h>
#include <structmember.h>
#include <string.h>

/* The slot at offset in obj (borrowed; NULL when unset). */
#define PE_SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* The offset of cls's slot name (searched along the MRO). */
static inline int pe_slot_offset(PyTypeObject *cls, const char *name, Py_ssize_t *offset)
{
    PyObject *key = PyUnicode_InternFromString(name);
    if (key == NULL)
        return -1;
    PyObject *descr = _PyType_Lookup(cls, key);
    Py_DECREF(key);
    if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)
        || ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", cls->tp_name, name);
        return -1;
    }
    *offset = ((PyMemberDescrObject *)descr)->d_member->offset;
    return 0;
}

/* A slot's value (borrowed), or NULL with AttributeError when unset. */
static inline PyObject *pe_slot_get(PyObject *obj, Py_ssize_t offset, const char *name)
{
    PyObject *value = PE_SLOT(obj, offset);
    if (value == NULL)
        PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%s'", Py_TYPE(obj)->tp_name, name);
    return value;
}

/* Set a slot to value (a new reference, stolen; NULL leaves it unset). */
static inline void pe_slot_put(PyObject *obj, Py_ssize_t offset, PyObject *value)
{
    PyObject *old = PE_SLOT(obj, offset);
    PE_SLOT(obj, offset) = value;
    Py_XDECREF(old);
}

/* A value's truth, quick for the bools and None that slots mostly hold: 1, 0 or -1. */
static inline int pe_truth(PyObject *value)
{
    if (value == Py_True)
        return 1;
    if (value == Py_False || value == Py_None)
        return 0;
    return PyObject_IsTrue(value);
}

/* A slot's truth: 1, 0, or -1 with an exception set (unset included). */
static inline int pe_slot_truth(PyObject *obj, Py_ssize_t offset, const char *name)
{
    PyObject *value = pe_slot_get(obj, offset, name);
    return value == NULL ? -1 : pe_truth(value);
}

/* Install each of methods on cls as a method descriptor. */
static inline int pe_install_methods(PyTypeObject *cls, PyMethodDef *methods)
{
    for (PyMethodDef *def = methods; def->ml_name != NULL; def++) {
        PyObject *descr = PyDescr_NewMethod(cls, def);
        if (descr == NULL)
            return -1;
        int r = PyObject_SetAttrString((PyObject *)cls, def->ml_name, descr);
        Py_DECREF(descr);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* self.name(a, b, c), with the first nargs (0 to 3) of a, b, c. */
static inline PyObject *pe_call_method(PyObject *self, PyObject *name, size_t nargs, PyObject *a, PyObject *b, PyObject *c)
{
    PyObject *argv[5] = {NULL, self, a, b, c};
    return PyObject_VectorcallMethod(name, argv + 1, (nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* self.name(a, b, c) for its effect: 0, or -1 with an exception set. */
static inline int pe_run_method(PyObject *self, PyObject *name, size_t nargs, PyObject *a, PyObject *b, PyObject *c)
{
    PyObject *r = pe_call_method(self, name, nargs, a, b, c);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The exception being raised, when it is an Exception (not a BaseException
 * only, such as KeyboardInterrupt): handed to self.handler(exc) and
 * cleared, 0.  Otherwise, or when the handler raises, -1 with that set. */
static inline int pe_hand_exception(PyObject *self, PyObject *handler)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception))
        return -1;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    int r = pe_run_method(self, handler, 1, value, NULL, NULL);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return r;
}

/* An int slot += delta. */
static inline int pe_slot_add(PyObject *obj, Py_ssize_t offset, const char *name, Py_ssize_t delta)
{
    PyObject *value = pe_slot_get(obj, offset, name);
    if (value == NULL)
        return -1;
    PyObject *d = PyLong_FromSsize_t(delta);
    PyObject *sum = d == NULL ? NULL : PyNumber_Add(value, d);
    Py_XDECREF(d);
    if (sum == NULL)
        return -1;
    pe_slot_put(obj, offset, sum);
    return 0;
}

/* A table of slot names and where their offsets go, for pe_slot_offsets. */
typedef struct {
    const char *name;
    Py_ssize_t *offset;
} pe_slot_name;

static inline int pe_slot_offsets(PyTypeObject *cls, const pe_slot_name *slots, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (pe_slot_offset(cls, slots[i].name, slots[i].offset) < 0)
            return -1;
    return 0;
}

/* Fill a whole table (an array, not a pointer). */
#define PE_SLOT_OFFSETS(cls, table) pe_slot_offsets((cls), (table), sizeof(table) / sizeof((table)[0]))

/* *out = the interned text, once. */
static inline int pe_intern(PyObject **out, const char *text)
{
    if (*out == NULL)
        *out = PyUnicode_InternFromString(text);
    return *out == NULL ? -1 : 0;
}

/* *out = dict[name] (a new reference; KeyError naming it when missing). */
static inline int pe_dict_object(PyObject *dict, const char *name, PyObject **out)
{
    PyObject *value = PyDict_GetItemString(dict, name);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "%s missing", name);
        return -1;
    }
    Py_XSETREF(*out, Py_NewRef(value));
    return 0;
}

/* *out = dict[name], which must be a class. */
static inline int pe_dict_type(PyObject *dict, const char *name, PyTypeObject **out)
{
    PyObject *value = PyDict_GetItemString(dict, name);
    if (value == NULL || !PyType_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be a class", name);
        return -1;
    }
    Py_XSETREF(*out, (PyTypeObject *)Py_NewRef(value));
    return 0;
}

#endif
