/*
 * pyevent-envoy: pyevent_envoy._stats, a histogram's per-thread bin counts.
 *
 * Every proxied request records three durations (the downstream request
 * time, the upstream request time and its internal or external twin).  In
 * Python each was a frame plus bisect.bisect_right over 1,171 float edges,
 * whose eleven or so steps each compare two Python floats the generic way:
 * about 1,500 CPU instructions per value.  Here a value is one C call, a
 * binary search over a double array and one increment.
 *
 * The type is the base of pyevent_envoy.stats.histogram.HistogramRecorder,
 * which documents the contract; in short:
 *
 *   - the bins' upper edges are histogram.py's own (set_upper_edges() hands
 *     them over once, at import), so Python and C agree on every edge;
 *   - a value goes in bin bisect_right(edges, value): the number of edges
 *     at most value.  NaN compares false with every edge and so lands in
 *     the last (overflow) bin, as it did with bisect;
 *   - the counts are allocated on the first value (a histogram that never
 *     sees one costs a few dozen bytes) and are cumulative: never reset;
 *   - only the owner thread records; the stats flush on the main thread
 *     reads `counts`, a new list each time, made while the GIL is held, so
 *     it is a consistent view as the Python list copy was.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

static double *upper_edges;   /* ascending; NULL until set_upper_edges() */
static Py_ssize_t num_edges;  /* the bins are num_edges + 1 */

typedef struct {
    PyObject_HEAD
    unsigned long long *counts;  /* num_edges + 1 counts, or NULL before the first value */
} Recorder;

/* bisect_right over the edges: how many edges are <= value (NaN: all of them). */
static Py_ssize_t bin_of(double value)
{
    Py_ssize_t lo = 0, hi = num_edges;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (value < upper_edges[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/*
 * The stats flush may read the pointer from another thread on builds without
 * a GIL: publish the zeroed array with a release store, read it with an
 * acquire load.  (With the GIL these are plain moves on x86-64.)
 */
static unsigned long long *load_counts(Recorder *self)
{
    return __atomic_load_n(&self->counts, __ATOMIC_ACQUIRE);
}

static int count(Recorder *self, double value)
{
    unsigned long long *counts = self->counts;
    if (counts == NULL) {
        if (upper_edges == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "the histogram bins are not set (set_upper_edges)");
            return -1;
        }
        counts = PyMem_Calloc((size_t)num_edges + 1, sizeof(*counts));
        if (counts == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        __atomic_store_n(&self->counts, counts, __ATOMIC_RELEASE);
    }
    counts[bin_of(value)] += 1;
    return 0;
}

static PyObject *recorder_record(Recorder *self, PyObject *value)
{
    double v = PyFloat_AsDouble(value);
    if (v == -1.0 && PyErr_Occurred())
        return NULL;
    if (count(self, v) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *recorder_record_duration(Recorder *self, PyObject *seconds)
{
    double v = PyFloat_AsDouble(seconds);
    if (v == -1.0 && PyErr_Occurred())
        return NULL;
    /* Whole milliseconds, rounded down, as Envoy's timespans.  As Python's
     * x // 1.0, an infinite x gives NaN: the overflow bin, either sign. */
    double ms = v * 1000.0;
    if (count(self, isinf(ms) ? NAN : floor(ms)) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *recorder_get_counts(Recorder *self, void *closure)
{
    (void)closure;
    unsigned long long *counts = load_counts(self);
    if (counts == NULL)
        return PyList_New(0);
    PyObject *list = PyList_New(num_edges + 1);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i <= num_edges; i++) {
        PyObject *n = PyLong_FromUnsignedLongLong(counts[i]);
        if (n == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, n);
    }
    return list;
}

static int recorder_bool(Recorder *self)
{
    return load_counts(self) != NULL;
}

static void recorder_dealloc(Recorder *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyMem_Free(self->counts);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyMethodDef recorder_methods[] = {
    {"record", (PyCFunction)recorder_record, METH_O,
     "record(value): count a number (>= 0, in the histogram's unit)."},
    {"record_duration", (PyCFunction)recorder_record_duration, METH_O,
     "record_duration(seconds): count a duration in whole milliseconds, rounded down."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef recorder_getset[] = {
    {"counts", (getter)recorder_get_counts, NULL,
     "A count per bin, as a new list ([] before the first value).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot recorder_slots[] = {
    {Py_tp_doc, "One thread's bin counts of one histogram (the base of HistogramRecorder)."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, recorder_dealloc},
    {Py_tp_methods, recorder_methods},
    {Py_tp_getset, recorder_getset},
    {Py_nb_bool, recorder_bool},
    {0, NULL},
};

static PyType_Spec recorder_spec = {
    "pyevent_envoy._stats.Recorder",
    sizeof(Recorder),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    recorder_slots,
};

static PyObject *set_upper_edges(PyObject *module, PyObject *edges)
{
    (void)module;
    PyObject *seq = PySequence_Fast(edges, "the upper edges must be a sequence of floats");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    double *values = n > 0 ? PyMem_Malloc((size_t)n * sizeof(double)) : NULL;
    if (n == 0 || values == NULL) {
        Py_DECREF(seq);
        if (n == 0)
            PyErr_SetString(PyExc_ValueError, "no upper edges");
        else
            PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        values[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if ((values[i] == -1.0 && PyErr_Occurred()) || (i > 0 && !(values[i] > values[i - 1]))) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "the upper edges must be strictly ascending");
            PyMem_Free(values);
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    if (upper_edges != NULL) {
        /* Recorders may already hold counts for these bins: only the same
         * edges again (histogram.py imported anew) are accepted. */
        int same = n == num_edges && memcmp(values, upper_edges, (size_t)n * sizeof(double)) == 0;
        PyMem_Free(values);
        if (!same) {
            PyErr_SetString(PyExc_RuntimeError, "the histogram bins are already set to other edges");
            return NULL;
        }
        Py_RETURN_NONE;
    }
    upper_edges = values;
    num_edges = n;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"set_upper_edges", set_upper_edges, METH_O,
     "set_upper_edges(edges): the bins' exclusive upper edges, ascending (before any value; the same edges only, after)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pyevent_envoy._stats",
    "A histogram's per-thread bin counts in C (the base of HistogramRecorder).",
    -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__stats(void)
{
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
#ifdef Py_GIL_DISABLED
    /* One writer per recorder (its owner thread); the flush only reads,
     * and the counts array is published with a release store. */
    PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    PyObject *type = PyType_FromSpec(&recorder_spec);
    int added = type != NULL ? PyModule_AddObjectRef(m, "Recorder", type) : -1;
    Py_XDECREF(type);
    if (added < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
