/*
 * pyevent-envoy: C types shared by the cffi declarations and shim.c.
 *
 * The binding never calls Python from inside libevent.  Every libevent
 * callback is pe_collect_cb (or a few internal ones), which appends one
 * record -- (arming id, ready mask) -- to the loop's record buffer.  After
 * event_base_loop() returns, Python reads the records in one call and runs
 * the callbacks in libevent's order.  This keeps Python exceptions out of
 * libevent entirely and costs one C->Python crossing per loop pass instead of
 * one per event.
 *
 * Arming ids make stale records harmless: every event_add gets a fresh id,
 * and Python forgets the id when the event is disabled, re-armed or closed.
 * A record whose id is unknown is skipped, which reproduces libevent's own
 * rule that event_del/event_add removes an already-activated event from the
 * active queue.
 */
#ifndef PYEVENT_ENVOY_SHIM_H
#define PYEVENT_ENVOY_SHIM_H

#include <stdint.h>
#include <event2/event.h>
#include <event2/event_struct.h>

/* Ready bits as Python sees them (FileReadyType); libevent's differ. */
#define PE_READY_READ 0x1
#define PE_READY_WRITE 0x2
#define PE_READY_CLOSED 0x4
#define PE_READY_TIMEOUT 0x8

/* Record id reserved for the loop's wake-up event (posts, exit).  Arming
 * ids start above it; 0 means "not armed". */
#define PE_WAKE_ID 1

/* pe_loop_run() return values.  One record -- the common case -- comes back
 * encoded in the return value, (id << PE_RECORD_SHIFT) | mask, which saves
 * reading the buffer from Python; several come back as
 * PE_RUN_MANY - (number of slots). */
#define PE_RECORD_SHIFT 4
#define PE_RECORD_MASK 0xf
#define PE_RUN_NONE 0
#define PE_RUN_ERROR (-1)
#define PE_RUN_EMPTY (-2)
#define PE_RUN_OOM (-3)
#define PE_RUN_MANY (-16)

typedef struct pe_loop {
    struct event_base *base;
    intptr_t *records;      /* pairs: arming id, ready mask */
    int nrec;               /* number of intptr_t slots used (2 per record) */
    int cap;                /* capacity in intptr_t slots */
    int oom;                /* a record was dropped for lack of memory */
    double now;             /* CLOCK_MONOTONIC seconds after the last poll */
    struct event wake;      /* activated from any thread; never added */
} pe_loop_t;

typedef struct pe_event {
    struct event ev;        /* by value, as Envoy's ImplBase holds it */
    pe_loop_t *loop;
    intptr_t id;            /* current arming id; 0 while not armed */
    int assigned;
} pe_event_t;

#endif
