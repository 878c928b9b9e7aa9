/*
 * pyevent-envoy: what the two halves of pyevent_envoy._sockio share.
 *
 * sockio_module.c has the socket calls (and the module's functions read,
 * write and writev); connection_io.c has the plaintext connection's I/O
 * methods, which make the same calls without a Python call in between.
 */
#ifndef PYEVENT_ENVOY_SOCKIO_H
#define PYEVENT_ENVOY_SOCKIO_H

#include <Python.h>
#include <stddef.h>
#include <sys/uio.h>

/* read()'s codes besides 0 (would block) and an errno. */
#define READ_EOF (-1)
#define READ_FULL (-2)
/* Chunks one gathered send takes; the caller loops for more. */
#define WRITEV_MAX 64

/* This thread's scratch buffer of at least cap bytes (NULL: out of memory). */
char *pe_thread_scratch(size_t cap);

/* Read into buf until EAGAIN, EOF, an error or cap bytes (a short read ends
 * it too unless until_eof); *got is what was read.  Returns 0, READ_EOF,
 * READ_FULL or an errno.  Runs without the GIL. */
long pe_read_loop(int fd, char *buf, size_t cap, int until_eof, size_t *got);

/* Send iov[0..count) until all is sent, EAGAIN or an error; returns the bytes
 * sent, *code is 0, EAGAIN or an errno.  Moves iov past what went out.  Runs
 * without the GIL. */
size_t pe_send_all(int fd, struct iovec *iov, int count, long *code);

/* Adds bind_connection() to the module (connection_io.c). */
int pe_connection_io_init(PyObject *module);

#endif
