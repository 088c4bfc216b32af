// coop/detail/remote.hpp — waking a task from another thread: what shared
// channels (shared_channel.hpp) and the offload pool (offload.hpp) build on.
// Not a public interface.
//
// A task never leaves its reactor's thread, and only that thread may touch
// its state. Another thread that completes what a task waits for hands a
// remote_waiter to the task's reactor (deliver_remote): it goes into the
// reactor's inbox, and the reactor's loop wakes the task with the waiter's
// result. Deliveries are batched: the poller is woken only when the reactor
// sleeps in the kernel and only once per burst, and a busy reactor picks
// them up at its next look at the loop.
//
// The protocol that keeps a waiter valid until it is delivered (it lives on
// the parked task's stack):
//   1. The task publishes its waiter in some shared structure under that
//      structure's mutex and parks (with its deadline, if any).
//   2. A completer, under the same mutex, takes the waiter out of the
//      structure, sets its result and calls deliver_remote(). From then on
//      the delivery is certain: the inbox holds the waiter.
//   3. When the park ends by a local wake-up instead (deadline, cancel), the
//      task takes the mutex: if its waiter is still in the structure, it
//      removes it and returns the local error; if a completer took it, the
//      task waits for the delivery (await_delivery), which cannot fail.
// So a waiter's memory is never released while the inbox still refers to it.
#ifndef COOP_DETAIL_REMOTE_HPP
#define COOP_DETAIL_REMOTE_HPP

#include <coop/detail/task.hpp>
#include <coop/export.h>

namespace coop::detail {

struct remote_waiter {
    task_block* task = nullptr;       // the waiting task
    remote_waiter* next = nullptr;    // inbox link (under the inbox mutex)
    int result = 0;                   // what the waiting call returns (set by the completer)
    bool delivered = false;           // the home thread has handled the inbox entry
};

// From any thread (under the mutex of the structure w was taken from): make
// w->task's reactor wake it with w->result. On the task's own reactor
// thread this wakes it at once.
COOP_API void deliver_remote(remote_waiter* w) noexcept;

// On the task's thread, after its park ended locally although a completer
// has already taken w: park until the delivery arrives (it cannot be
// canceled: it is already on its way).
COOP_API void await_delivery(remote_waiter* w) noexcept;

} // namespace coop::detail

#endif
