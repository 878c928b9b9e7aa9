/*
 * pyevent-envoy: pyevent_envoy._fields, base types whose instances start
 * with their attributes already set.
 *
 * A proxied request makes about eight objects (its stream, the stream's
 * info, the router filter, the upstream request, the two encoders...), and
 * each __init__ stored some twenty constants (None, False, 0, "") one by
 * one: three bytecodes per attribute, about a twentieth of a request's
 * interpreter work.  A type made here has those attributes as C slots, and
 * its tp_new fills them from a tuple of defaults in a C loop; the Python
 * class that subclasses it sets only what differs per instance.
 *
 * The slots are read-write object members (T_OBJECT_EX), exactly what
 * __slots__ makes, so CPython's specializing interpreter reads and writes
 * them as fast as a __slots__ field.  As with __slots__, a deleted attribute
 * reads as AttributeError.
 *
 *   make_type(name, fields, defaults) -> type
 *       name: "module.QualName"; fields: a tuple of str; defaults: a tuple
 *       of the same length.  The defaults are shared by every instance:
 *       pyevent_envoy._defaults.defaults_base() admits only immutable ones.
 *
 * The types support the garbage collector (a stream and its filters refer
 * to each other) and may be subclassed, also by classes with __slots__.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    Py_ssize_t nfields;  /* set by tp_new: what traverse, clear and dealloc walk */
    PyObject *fields[1]; /* really nfields of them */
} Fields;

/* Every type made here, with its defaults (kept for the process's life, as
 * the types are).  tp_new finds its own type's entry by walking the
 * subclass's bases: one or two steps. */
typedef struct {
    PyTypeObject *type;
    PyObject *defaults; /* tuple */
} Registered;

static Registered *registry;
static int registered, capacity;

static const Registered *lookup(PyTypeObject *type)
{
    for (PyTypeObject *t = type; t != NULL; t = t->tp_base)
        for (int i = 0; i < registered; i++)
            if (registry[i].type == t)
                return &registry[i];
    return NULL;
}

static PyObject *fields_new(PyTypeObject *subtype, PyObject *args, PyObject *kwargs)
{
    (void)args;
    (void)kwargs;
    const Registered *entry = lookup(subtype);
    if (entry == NULL) {
        PyErr_SetString(PyExc_TypeError, "not a pyevent_envoy._fields type");
        return NULL;
    }
    Fields *self = (Fields *)subtype->tp_alloc(subtype, 0);
    if (self == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(entry->defaults);
    for (Py_ssize_t i = 0; i < n; i++)
        self->fields[i] = Py_NewRef(PyTuple_GET_ITEM(entry->defaults, i));
    self->nfields = n;
    return (PyObject *)self;
}

static int fields_traverse(Fields *self, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < self->nfields; i++)
        Py_VISIT(self->fields[i]);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int fields_clear(Fields *self)
{
    for (Py_ssize_t i = 0; i < self->nfields; i++)
        Py_CLEAR(self->fields[i]);
    return 0;
}

static void fields_dealloc(Fields *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    fields_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *make_type(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || !PyUnicode_Check(args[0]) || !PyTuple_Check(args[1]) || !PyTuple_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "make_type(name: str, fields: tuple, defaults: tuple)");
        return NULL;
    }
    PyObject *names = args[1], *defaults = args[2];
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (n == 0 || n != PyTuple_GET_SIZE(defaults)) {
        PyErr_SetString(PyExc_ValueError, "make_type(): as many defaults as fields, at least one");
        return NULL;
    }
    if (registered == capacity) {
        int grown_capacity = capacity ? 2 * capacity : 16;
        Registered *grown = PyMem_Realloc(registry, (size_t)grown_capacity * sizeof(Registered));
        if (grown == NULL)
            return PyErr_NoMemory();
        registry = grown;
        capacity = grown_capacity;
    }
    /* The spec's strings and member table must outlive the type: they are
     * kept for the process's life, as the type is. */
    const char *name = PyUnicode_AsUTF8(args[0]);
    if (name == NULL)
        return NULL;
    char *spec_name = PyMem_Malloc(strlen(name) + 1);
    PyMemberDef *members = PyMem_Calloc((size_t)n + 1, sizeof(PyMemberDef));
    if (spec_name == NULL || members == NULL) {
        PyMem_Free(spec_name);
        PyMem_Free(members);
        return PyErr_NoMemory();
    }
    strcpy(spec_name, name);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *field = PyTuple_GET_ITEM(names, i);
        const char *field_name = PyUnicode_Check(field) ? PyUnicode_AsUTF8(field) : NULL;
        char *copy = field_name != NULL ? PyMem_Malloc(strlen(field_name) + 1) : NULL;
        if (copy == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "make_type(): field names must be str");
            for (Py_ssize_t j = 0; j < i; j++)
                PyMem_Free((void *)members[j].name);
            PyMem_Free(spec_name);
            PyMem_Free(members);
            return NULL;
        }
        strcpy(copy, field_name);
        members[i].name = copy;
        members[i].type = T_OBJECT_EX;
        members[i].offset = (Py_ssize_t)(offsetof(Fields, fields) + (size_t)i * sizeof(PyObject *));
        members[i].flags = 0;
        members[i].doc = NULL;
    }
    PyType_Slot slots[] = {
        {Py_tp_new, fields_new},
        {Py_tp_traverse, fields_traverse},
        {Py_tp_clear, fields_clear},
        {Py_tp_dealloc, fields_dealloc},
        {Py_tp_members, members},
        {0, NULL},
    };
    PyType_Spec spec = {
        spec_name,
        (int)(offsetof(Fields, fields) + (size_t)n * sizeof(PyObject *)),
        0,
        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
        slots,
    };
    PyObject *type = PyType_FromSpec(&spec);
    if (type == NULL) {
        for (Py_ssize_t i = 0; i < n; i++)
            PyMem_Free((void *)members[i].name);
        PyMem_Free(spec_name);
        PyMem_Free(members);
        return NULL;
    }
    registry[registered].type = (PyTypeObject *)Py_NewRef(type);
    registry[registered].defaults = Py_NewRef(defaults);
    registered++;
    return type;
}

static PyMethodDef module_methods[] = {
    {"make_type", (PyCFunction)(void (*)(void))make_type, METH_FASTCALL,
     "make_type(name, fields, defaults): a base type whose instances start with fields set to defaults."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pyevent_envoy._fields",
    "Base types whose instances start with their attributes set (see pyevent_envoy._defaults).",
    -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__fields(void)
{
    PyObject *m = PyModule_Create(&module_def);
#ifdef Py_GIL_DISABLED
    /* make_type() runs at import time, under the import lock; instances
     * are plain objects with slots. */
    if (m != NULL)
        PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    return m;
}
