/* tests/kqueue_emul/sys/event.h — a small kqueue emulation for Linux, so
 * that src/poller_kqueue.cpp can be built and tested where there is no
 * kqueue (Debian has no libkqueue). `make test-kqueue` puts this directory
 * on the include path and links kqueue_emul.cpp into the library.
 *
 * What it implements, with the semantics of the BSD kernels (FreeBSD's
 * kqueue(2) and socket filters) as far as they go here:
 *   filters  EVFILT_READ, EVFILT_WRITE (fds, via one epoll registration per
 *            fd carrying the union of the enabled filters) and EVFILT_USER
 *            (one eventfd per identifier)
 *   flags    EV_ADD, EV_DELETE, EV_ENABLE, EV_DISABLE, EV_ONESHOT, EV_CLEAR
 *            (edge-triggered), EV_RECEIPT; on output EV_ERROR (a failed
 *            change, or any change with EV_RECEIPT: errno or 0 in data)
 *   EV_EOF   EVFILT_READ: the read side is shut (peer's FIN, reset, own
 *            SHUT_RD; a pipe whose writers are gone). EVFILT_WRITE: the
 *            write side is shut (own FIN or SHUT_WR on TCP, reset, both
 *            sides shut; a pipe whose readers are gone). Both as they
 *            stand when the event is retrieved, so data and a FIN that
 *            arrived together come as one read event with EV_EOF.
 *   queue    an activated knote is queued once, and its filter runs again
 *            when kevent() hands it out: an event whose condition no
 *            longer holds is dropped, EV_DELETE/EV_DISABLE unqueue it, and
 *            what does not fit in the event list stays queued for the next
 *            call
 *   data     bytes readable (EVFILT_READ), 0 (EVFILT_WRITE)
 *   fflags   NOTE_TRIGGER, NOTE_FFNOP for EVFILT_USER
 *   timeout  a timespec, honoured with nanosecond resolution (ppoll on the
 *            epoll fd); NULL waits forever; EINVAL for a negative one, a bad
 *            tv_nsec, or more than 10^8 seconds (the most that some macOS
 *            kernels accept)
 * Where it differs from BSD:
 *   - fflags of EV_EOF events is 0, not the socket error: Linux cannot read
 *     a socket's pending error without clearing it, and BSD leaves it
 *     pending for getsockopt(SO_ERROR), which is what callers rely on.
 *   - An edge in one direction can also report the other filter of the fd
 *     when that one is ready (one epoll registration per fd).
 *   - EV_EOF on EVFILT_WRITE after the fd's own shutdown(SHUT_WR) is seen
 *     for TCP sockets only (from the TCP state), not for Unix sockets.
 * What it does not: other filters (EVFILT_TIMER, EVFILT_SIGNAL, EVFILT_VNODE,
 * EVFILT_PROC), EV_DISPATCH, NOTE_FFAND/FFOR/FFCOPY, NOTE_LOWAT, different
 * EV_CLEAR settings for the two filters of one fd (EINVAL), and fork
 * (kqueues are not inherited on BSD; here the epoll fd would be).
 * Closing a registered fd drops its knotes as on BSD: the emulation notices
 * by the file's identity (a later EV_ADD on the reused number starts afresh,
 * queued events for the old file are dropped).
 */
#ifndef COOP_KQUEUE_EMUL_SYS_EVENT_H
#define COOP_KQUEUE_EMUL_SYS_EVENT_H

#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kevent {
    uintptr_t ident;     /* fd, or the EVFILT_USER identifier */
    int16_t filter;      /* EVFILT_* */
    uint16_t flags;      /* EV_* */
    uint32_t fflags;     /* NOTE_* */
    intptr_t data;       /* errno with EV_ERROR */
    void* udata;         /* opaque, returned with the event */
};

#define EVFILT_READ  (-1)
#define EVFILT_WRITE (-2)
#define EVFILT_USER  (-11)

#define EV_ADD      0x0001
#define EV_DELETE   0x0002
#define EV_ENABLE   0x0004
#define EV_DISABLE  0x0008
#define EV_ONESHOT  0x0010
#define EV_CLEAR    0x0020
#define EV_RECEIPT  0x0040
#define EV_ERROR    0x4000
#define EV_EOF      0x8000

#define NOTE_FFNOP   0x00000000u
#define NOTE_TRIGGER 0x01000000u

#define EV_SET(kevp, a, b, c, d, e, f) do {  \
        struct kevent* ev_set_p_ = (kevp);    \
        ev_set_p_->ident = (a);               \
        ev_set_p_->filter = (b);              \
        ev_set_p_->flags = (c);               \
        ev_set_p_->fflags = (d);              \
        ev_set_p_->data = (e);                \
        ev_set_p_->udata = (f);               \
    } while (0)

int kqueue(void);
int kevent(int kq, const struct kevent* changelist, int nchanges,
           struct kevent* eventlist, int nevents, const struct timespec* timeout);

#ifdef __cplusplus
}
#endif

#endif
