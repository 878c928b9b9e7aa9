/*
 * pyevent-envoy: what the two halves of pyevent_envoy._http1 share.
 *
 * http1_module.c has the module's head functions; http1_codec.c the codec's
 * C methods, which call those functions directly (module may be NULL: they
 * keep no state).
 */
#ifndef PYEVENT_ENVOY_HTTP1_MODULE_H
#define PYEVENT_ENVOY_HTTP1_MODULE_H

#include <Python.h>

PyObject *pe_http1_parse_request(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *pe_http1_parse_response_start(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *pe_http1_encode_request(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *pe_http1_encode_response(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* Adds bind_codec() to the module (http1_codec.c). */
int pe_http1_codec_init(PyObject *module);

#endif
