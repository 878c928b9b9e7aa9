/*
 * pyevent-envoy: pyevent_envoy._event, the event layer's per-event methods
 * in C.
 *
 * Every proxied request fires two file events and schedules three
 * callbacks for the loop's current iteration.  Each of those is a few reads
 * and writes of the event's own attributes around one call; as Python they
 * were each a frame.  bind() installs these C methods on the classes of
 * pyevent_envoy/event:
 *
 *   SchedulableCallbackImpl.schedule_callback_current_iteration()
 *   SchedulableCallbackImpl.schedule_callback_next_iteration()
 *   FileEventImpl._fire(ready)
 *
 * They keep the classes' contracts exactly (see their docstrings there and
 * here); attributes are the classes' __slots__, read in place (slots.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "slots.h"

static struct {
    Py_ssize_t scheduler, closed, scheduled, token;
} callback_at;
static struct {
    Py_ssize_t current, next;
} scheduler_at;
static struct {
    Py_ssize_t cb, injected, activation;
} file_event_at;

static PyTypeObject *scheduler_type;
static PyObject *ready_types; /* READY_TYPES: the FileReadyType of each bit set */
static PyObject *queued[3];   /* the _scheduled values as objects: _IDLE, _CURRENT, _NEXT */
static PyObject *s_check_open, *s_cancel;

/* schedule_callback_current_iteration / _next_iteration */

/* Queue (self, token) on the scheduler's queue at offset, unless already queued there. */
static PyObject *schedule(PyObject *self, int which, Py_ssize_t queue_offset)
{
    PyObject *scheduled = pe_slot_get(self, callback_at.scheduled, "_scheduled");
    if (scheduled == NULL)
        return NULL;
    if (scheduled == queued[which]
        || (PyLong_CheckExact(scheduled) && PyObject_RichCompareBool(scheduled, queued[which], Py_EQ) == 1))
        Py_RETURN_NONE;
    int closed = pe_slot_truth(self, callback_at.closed, "_closed");
    if (closed < 0)
        return NULL;
    if (closed) {
        /* Raises DispatcherClosedError. */
        PyObject *r = pe_call_method(self, s_check_open, 0, NULL, NULL, NULL);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    PyObject *scheduler = pe_slot_get(self, callback_at.scheduler, "_scheduler");
    PyObject *token = pe_slot_get(self, callback_at.token, "_token");
    if (scheduler == NULL || token == NULL)
        return NULL;
    if (!PyObject_TypeCheck(scheduler, scheduler_type)) {
        PyErr_SetString(PyExc_TypeError, "the callback's scheduler is not a LibeventScheduler");
        return NULL;
    }
    PyObject *queue = pe_slot_get(scheduler, queue_offset, "_current or _next");
    if (queue == NULL)
        return NULL;
    PyObject *one = PyLong_FromLong(1);
    PyObject *next = one == NULL ? NULL : PyNumber_Add(token, one);
    Py_XDECREF(one);
    if (next == NULL)
        return NULL;
    PyObject *entry = PyTuple_Pack(2, self, next);
    if (entry == NULL) {
        Py_DECREF(next);
        return NULL;
    }
    pe_slot_put(self, callback_at.token, next);
    pe_slot_put(self, callback_at.scheduled, Py_NewRef(queued[which]));
    int r;
    if (PyList_CheckExact(queue))
        r = PyList_Append(queue, entry);
    else {
        /* A closed scheduler's queue refuses (DispatcherClosedError). */
        PyObject *result = PyObject_CallMethod(queue, "append", "(O)", entry);
        r = result == NULL ? -1 : 0;
        Py_XDECREF(result);
    }
    Py_DECREF(entry);
    return r < 0 ? NULL : Py_NewRef(Py_None);
}

PyDoc_STRVAR(current_doc,
    "schedule_callback_current_iteration(): run the callback in this loop iteration (once however\n"
    "often scheduled); DispatcherClosedError once closed.");

static PyObject *schedule_current(PyObject *self, PyObject *unused)
{
    return schedule(self, 1, scheduler_at.current);
}

PyDoc_STRVAR(next_doc,
    "schedule_callback_next_iteration(): run the callback in the next loop iteration (once however\n"
    "often scheduled); DispatcherClosedError once closed.");

static PyObject *schedule_next(PyObject *self, PyObject *unused)
{
    return schedule(self, 2, scheduler_at.next);
}

/* FileEventImpl._fire */

PyDoc_STRVAR(fire_doc,
    "_fire(ready): the event fired with ready (an int of FileReadyType bits); events injected by\n"
    "activate() since are added, their own activation cancelled, and the callback runs once\n"
    "with the FileReadyType of them all.");

static PyObject *fire(PyObject *self, PyObject *ready_obj)
{
    long ready = PyLong_AsLong(ready_obj);
    if (ready == -1 && PyErr_Occurred())
        return NULL;
    PyObject *injected = pe_slot_get(self, file_event_at.injected, "_injected");
    if (injected == NULL)
        return NULL;
    long extra = PyLong_AsLong(injected);
    if (extra == -1 && PyErr_Occurred())
        return NULL;
    if (extra) {
        pe_slot_put(self, file_event_at.injected, PyLong_FromLong(0));
        PyObject *activation = pe_slot_get(self, file_event_at.activation, "_activation");
        if (activation == NULL)
            return NULL;
        Py_INCREF(activation);
        PyObject *r = pe_call_method(activation, s_cancel, 0, NULL, NULL, NULL);
        Py_DECREF(activation);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
        ready |= extra;
    }
    if (ready < 0 || ready >= PyTuple_GET_SIZE(ready_types)) {
        PyErr_Format(PyExc_ValueError, "_fire(): no FileReadyType for %ld", ready);
        return NULL;
    }
    PyObject *cb = pe_slot_get(self, file_event_at.cb, "_cb");
    if (cb == NULL)
        return NULL;
    Py_INCREF(cb);
    PyObject *args[2] = {NULL, PyTuple_GET_ITEM(ready_types, ready)};
    PyObject *r = PyObject_Vectorcall(cb, args + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(cb);
    return r;
}

/* binding */

static PyMethodDef callback_methods[] = {
    {"schedule_callback_current_iteration", (PyCFunction)schedule_current, METH_NOARGS, current_doc},
    {"schedule_callback_next_iteration", (PyCFunction)schedule_next, METH_NOARGS, next_doc},
    {NULL, NULL, 0, NULL},
};
static PyMethodDef file_event_methods[] = {
    {"_fire", (PyCFunction)fire, METH_O, fire_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(bind_doc,
    "bind(callback_cls, scheduler_cls, file_event_cls, ready_types, scheduled_values): install\n"
    "the methods above.  ready_types is file_event_impl.READY_TYPES; scheduled_values the\n"
    "callbacks' (_IDLE, _CURRENT, _NEXT).  A slot the methods read that a class lacks is a\n"
    "TypeError.");

static PyObject *bind(PyObject *module, PyObject *args)
{
    PyTypeObject *callback, *scheduler, *file_event;
    PyObject *types, *values;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!:bind", &PyType_Type, &callback, &PyType_Type, &scheduler, &PyType_Type,
                          &file_event, &PyTuple_Type, &types, &PyTuple_Type, &values))
        return NULL;
    if (PyTuple_GET_SIZE(values) != 3) {
        PyErr_SetString(PyExc_ValueError, "bind(): scheduled_values is (_IDLE, _CURRENT, _NEXT)");
        return NULL;
    }
    if (pe_slot_offset(callback, "_scheduler", &callback_at.scheduler) < 0
        || pe_slot_offset(callback, "_closed", &callback_at.closed) < 0
        || pe_slot_offset(callback, "_scheduled", &callback_at.scheduled) < 0
        || pe_slot_offset(callback, "_token", &callback_at.token) < 0
        || pe_slot_offset(scheduler, "_current", &scheduler_at.current) < 0
        || pe_slot_offset(scheduler, "_next", &scheduler_at.next) < 0
        || pe_slot_offset(file_event, "_cb", &file_event_at.cb) < 0
        || pe_slot_offset(file_event, "_injected", &file_event_at.injected) < 0
        || pe_slot_offset(file_event, "_activation", &file_event_at.activation) < 0)
        return NULL;
    for (int i = 0; i < 3; i++)
        Py_XSETREF(queued[i], Py_NewRef(PyTuple_GET_ITEM(values, i)));
    Py_XSETREF(ready_types, Py_NewRef(types));
    Py_XSETREF(scheduler_type, (PyTypeObject *)Py_NewRef(scheduler));
    if (pe_install_methods(callback, callback_methods) < 0 || pe_install_methods(file_event, file_event_methods) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"bind", bind, METH_VARARGS, bind_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pyevent_envoy._event",
    "The event layer's per-event methods in C (see the source).",
    -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__event(void)
{
    if ((s_check_open == NULL && (s_check_open = PyUnicode_InternFromString("_check_open")) == NULL)
        || (s_cancel == NULL && (s_cancel = PyUnicode_InternFromString("cancel")) == NULL))
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
#ifdef Py_GIL_DISABLED
    PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    return m;
}
