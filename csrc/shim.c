/*
 * pyevent-envoy: the C half of the libevent binding.
 *
 * Rules (see shim.h for the record protocol):
 *  - No function here touches a Python object; cffi releases the GIL around
 *    every call, so event_base_loop() waits without holding it.
 *  - Every libevent callback only appends a record.  Python runs the
 *    callbacks after event_base_loop() returns, so an exception can never
 *    unwind through libevent and a callback may free any event, its own
 *    included.
 *  - Return codes are checked by the Python caller right after each call.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "shim.h"

#if !defined(LIBEVENT_VERSION_NUMBER) || LIBEVENT_VERSION_NUMBER < 0x02010000
#error "pyevent-envoy needs libevent >= 2.1 (EV_CLOSED, EVLOOP_NO_EXIT_ON_EMPTY)"
#endif

#define PE_INITIAL_SLOTS 512

static int pe_initialized = 0;
static pthread_mutex_t pe_init_lock = PTHREAD_MUTEX_INITIALIZER;

/* Libevent::Global::initialize(): once, before the first event_base. */
static int pe_global_init(void)
{
    int rc = 0;
    pthread_mutex_lock(&pe_init_lock);
    if (!pe_initialized) {
        /* Without locking, event_active() from another thread neither locks
         * the base nor wakes a loop blocked in epoll_wait(). */
        rc = evthread_use_pthreads();
        if (rc == 0) {
            /* Writes to a closed peer must surface as EPIPE, not kill us. */
            signal(SIGPIPE, SIG_IGN);
            pe_initialized = 1;
        }
    }
    pthread_mutex_unlock(&pe_init_lock);
    return rc;
}

static void pe_push(pe_loop_t *loop, intptr_t id, intptr_t mask)
{
    if (loop->nrec + 2 > loop->cap) {
        int cap = loop->cap * 2;
        intptr_t *grown = realloc(loop->records, (size_t)cap * sizeof(intptr_t));
        if (grown == NULL) {
            loop->oom = 1;
            return;
        }
        loop->records = grown;
        loop->cap = cap;
    }
    loop->records[loop->nrec++] = id;
    loop->records[loop->nrec++] = mask;
}

static void pe_collect_cb(evutil_socket_t fd, short what, void *arg)
{
    pe_event_t *pe = (pe_event_t *)arg;
    intptr_t mask = 0;
    (void)fd;
    if (what & EV_READ)
        mask |= PE_READY_READ;
    if (what & EV_WRITE)
        mask |= PE_READY_WRITE;
    if (what & EV_CLOSED)
        mask |= PE_READY_CLOSED;
    if (what & (EV_TIMEOUT | EV_SIGNAL))
        mask |= PE_READY_TIMEOUT;
    pe_push(pe->loop, pe->id, mask);
}

static void pe_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pe_push((pe_loop_t *)arg, PE_WAKE_ID, 0);
}

/* The approximate clock: the same clock as Python's time.monotonic(). */
static void pe_refresh_now(pe_loop_t *loop)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    loop->now = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static pe_loop_t *pe_loop_new(int precise_timer)
{
    struct event_config *cfg;
    pe_loop_t *loop;

    if (pe_global_init() != 0)
        return NULL;
    loop = calloc(1, sizeof(*loop));
    if (loop == NULL)
        return NULL;
    loop->records = malloc(PE_INITIAL_SLOTS * sizeof(intptr_t));
    loop->cap = PE_INITIAL_SLOTS;
    cfg = event_config_new();
    if (loop->records == NULL || cfg == NULL)
        goto fail;
    if (precise_timer)
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    loop->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    cfg = NULL;
    if (loop->base == NULL)
        goto fail;
    if (event_assign(&loop->wake, loop->base, -1, 0, pe_wake_cb, loop) != 0)
        goto fail;
    pe_refresh_now(loop);
    return loop;

fail:
    if (cfg != NULL)
        event_config_free(cfg);
    if (loop->base != NULL)
        event_base_free(loop->base);
    free(loop->records);
    free(loop);
    return NULL;
}

/* Every struct event owned by Python must be deleted before this runs. */
static void pe_loop_free(pe_loop_t *loop)
{
    if (loop == NULL)
        return;
    event_del(&loop->wake);
    event_base_free(loop->base);
    free(loop->records);
    free(loop);
}

/* One pass of event_base_loop(); see the PE_RUN_* codes in shim.h. */
static int64_t pe_loop_run(pe_loop_t *loop, int flags)
{
    int rc;
    loop->nrec = 0;
    loop->oom = 0;
    rc = event_base_loop(loop->base, flags);
    pe_refresh_now(loop);
    if (rc < 0)
        return PE_RUN_ERROR;
    if (loop->oom)
        return PE_RUN_OOM;
    if (loop->nrec == 2)
        return ((int64_t)loop->records[0] << PE_RECORD_SHIFT) | loop->records[1];
    if (loop->nrec > 2)
        return PE_RUN_MANY - loop->nrec;
    return rc == 1 ? PE_RUN_EMPTY : PE_RUN_NONE;
}

/* Thread-safe: wakes a loop blocked in its poll and makes it run the Python
 * side of the wake record (posts, exit). */
static void pe_loop_wake(pe_loop_t *loop)
{
    event_active(&loop->wake, EV_TIMEOUT, 0);
}

static int pe_event_assign(pe_event_t *pe, pe_loop_t *loop, int fd, short flags)
{
    pe->loop = loop;
    pe->id = 0;
    if (event_assign(&pe->ev, loop->base, fd, flags, pe_collect_cb, pe) != 0)
        return -1;
    pe->assigned = 1;
    return 0;
}

static int pe_event_add(pe_event_t *pe, intptr_t id, double timeout)
{
    struct timeval tv;
    pe->id = id;
    if (timeout < 0)
        return event_add(&pe->ev, NULL);
    tv.tv_sec = (time_t)timeout;
    tv.tv_usec = (suseconds_t)((timeout - (double)tv.tv_sec) * 1e6);
    if (tv.tv_usec >= 1000000) {
        tv.tv_sec += 1;
        tv.tv_usec -= 1000000;
    }
    return event_add(&pe->ev, &tv);
}

/* A timer is assigned lazily on its first arming: creating one costs no C
 * call, arming costs exactly one. */
static int pe_timer_add(pe_event_t *pe, pe_loop_t *loop, intptr_t id, double timeout)
{
    if (!pe->assigned) {
        pe->loop = loop;
        if (event_assign(&pe->ev, loop->base, -1, 0, pe_collect_cb, pe) != 0)
            return -1;
        pe->assigned = 1;
    }
    return pe_event_add(pe, id, timeout);
}

static int pe_event_del(pe_event_t *pe)
{
    pe->id = 0;
    if (!pe->assigned)
        return 0;
    return event_del(&pe->ev);
}

/* Sets the calling thread's OS-visible name (15 bytes on Linux). */
static int pe_set_thread_name(const char *name)
{
    char buf[16];
    strncpy(buf, name, sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
#if defined(__APPLE__)
    return pthread_setname_np(buf);
#elif defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__)
    return pthread_setname_np(pthread_self(), buf);
#else
    (void)buf;
    return ENOSYS;
#endif
}

static int pe_get_thread_name(char *buf, size_t len)
{
#if defined(__APPLE__) || defined(__linux__)
    return pthread_getname_np(pthread_self(), buf, len);
#else
    if (len > 0)
        buf[0] = '\0';
    return ENOSYS;
#endif
}

/* ---- sockets for the network layer -----------------------------------------
 * Returning errno values instead of raising keeps EAGAIN -- the normal end
 * of every accept loop -- off Python's exception path.  (Reads and writes
 * are in sockio_module.c: they return Python objects.)
 */

/* accept4() a non-blocking, close-on-exec socket and describe its peer.
 * Returns the fd, or -1 with *err set (EAGAIN when the queue is empty). */
static int pe_accept(int lfd, char *ip, size_t iplen, int *port, int nodelay, int *err)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd;
    for (;;) {
#ifdef __linux__
        fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
        fd = accept(lfd, (struct sockaddr *)&ss, &sl);
        if (fd >= 0) {
            evutil_make_socket_nonblocking(fd);
            evutil_make_socket_closeonexec(fd);
        }
#endif
        if (fd >= 0)
            break;
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        *err = (errno == EWOULDBLOCK) ? EAGAIN : errno;
        return -1;
    }
    ip[0] = '\0';
    *port = 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in4->sin_addr, ip, (socklen_t)iplen);
        *port = ntohs(in4->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)iplen);
        *port = ntohs(in6->sin6_port);
    }
    if (nodelay && (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    *err = 0;
    return fd;
}

/* The pending error of a socket (SO_ERROR), e.g. after a non-blocking connect. */
static int pe_socket_error(int fd)
{
    int error = 0;
    socklen_t len = sizeof(error);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0)
        return errno;
    return error;
}

/* The host's own address as Envoy's LocalInfo finds it at start-up
 * (Network::Utility::getLocalAddress): the first address of `family` in
 * getifaddrs() order that is not the loopback address itself (127.0.0.1 or
 * ::1), written to ip as text.  Returns 1 when one was found, 0 when there is
 * none (the caller falls back to loopback, as Envoy does), -1 with errno set
 * when getifaddrs() fails.  getifaddrs() is one netlink round trip to the
 * kernel: call it once, at start-up, never per request. */
static int pe_local_address(int family, char *ip, size_t iplen)
{
    struct ifaddrs *all, *ifa;
    int found = 0;
    if (getifaddrs(&all) != 0)
        return -1;
    for (ifa = all; ifa != NULL && !found; ifa = ifa->ifa_next) {
        if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != family)
            continue;
        if (family == AF_INET) {
            const struct in_addr *a = &((const struct sockaddr_in *)ifa->ifa_addr)->sin_addr;
            if (a->s_addr == htonl(INADDR_LOOPBACK))
                continue;
            found = inet_ntop(AF_INET, a, ip, (socklen_t)iplen) != NULL;
        } else if (family == AF_INET6) {
            /* Text without the scope id, as Envoy's addressWithoutScopeId(). */
            const struct in6_addr *a = &((const struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr;
            if (IN6_IS_ADDR_LOOPBACK(a))
                continue;
            found = inet_ntop(AF_INET6, a, ip, (socklen_t)iplen) != NULL;
        }
    }
    freeifaddrs(all);
    return found;
}

/* Tune glibc's malloc for a proxy's allocation pattern: every request body
 * chunk is a short-lived allocation of up to 64 KiB (a read, a join).  With
 * the defaults, freeing them leaves more than 128 KiB free at the top of the
 * heap, glibc returns it to the kernel, and the next request faults the pages
 * in again: about a third of the CPU of a 64 KiB proxied response.  Keeping
 * up to trim_threshold free bytes, and serving allocations below
 * mmap_threshold from the heap, stops that churn.  Returns 1 when applied,
 * 0 where the C library is not glibc. */
int pe_tune_malloc(size_t trim_threshold, size_t mmap_threshold)
{
#ifdef __GLIBC__
    int ok = mallopt(M_TRIM_THRESHOLD, (int)trim_threshold);
    ok &= mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold);
    return ok ? 1 : 0;
#else
    (void)trim_threshold;
    (void)mmap_threshold;
    return 0;
#endif
}
