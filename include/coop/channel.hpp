// coop/channel.hpp — typed channels between the tasks of one reactor.
//
//   coop::channel<int> ch(16);        // bounded: up to 16 values in flight
//   coop::channel<job> rv;            // capacity 0: a rendezvous
//   ch.send(42);                      // parks while the channel is full
//   int v; ch.recv(v, 100ms);         // parks while it is empty
//   ch.close();                       // every parked sender and receiver wakes
//
// Semantics (Go's, with error codes instead of panics):
//   - send() completes when the value is in the buffer or, with capacity 0
//     or when a receiver is already waiting, handed straight to a receiver.
//     Parked senders and receivers are served first-come first-served.
//   - recv() takes the oldest value. After close(), values still buffered
//     are delivered; then recv() fails with EPIPE.
//   - send() on a closed channel fails with EPIPE, and so do senders parked
//     when it closes (their values are not delivered).
//   - ETIMEDOUT when the deadline passes, ECANCELED when the calling task is
//     canceled (checked before anything else).
//   - A send that fails leaves the value with the caller: send(std::move(v))
//     moves from v only when the value is delivered (as Rust's and Tokio's
//     try_send hand it back), send(v) copies it only then.
//   - try_send()/try_recv() never park: EAGAIN instead.
// A call that would park outside a reactor task throws std::logic_error.
// A channel belongs to one reactor thread (hand values to other threads with
// reactor::post). It must outlive the calls parked on it; destroying it
// closes it first. T must be move-constructible and move-assignable.
#ifndef COOP_CHANNEL_HPP
#define COOP_CHANNEL_HPP

#include <coop/deadline.hpp>
#include <coop/detail/error.hpp>
#include <coop/detail/task.hpp>
#include <coop/detail/value_ring.hpp>

#include <cerrno>
#include <cstddef>
#include <memory>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

namespace coop {

template <class T>
class channel {
public:
    explicit channel(std::size_t capacity = 0) : buf_(capacity) {}
    channel(const channel&) = delete;
    channel& operator=(const channel&) = delete;
    ~channel() { close(); }

    // Deliver value (moved from only on success; see above).
    std::error_code send(T&& value, deadline d = {}) { return send_from(value, false, d); }
    // Deliver a copy of value (made only on success).
    std::error_code send(const T& value, deadline d = {}) {
        return send_from(const_cast<T&>(value), true, d);
    }

    std::error_code recv(T& out, deadline d = {}) {
        if (int e = gate(); e) return detail::errc_of(e);
        if (int e = take(out); e != EAGAIN) return detail::errc_of(e);
        detail::task_block* t = detail::current_task("coop::channel::recv");
        detail::wait_node node;
        node.data = &out;
        return detail::errc_of(detail::park(t, &receivers_, &node, d.ns()));
    }

    std::error_code try_send(T&& value) { return try_from(value, false); }
    std::error_code try_send(const T& value) { return try_from(const_cast<T&>(value), true); }
    std::error_code try_recv(T& out) {
        if (canceled()) return detail::errc_of(ECANCELED);
        return detail::errc_of(take(out));
    }

    // Wake every parked sender and receiver (EPIPE). Idempotent.
    void close() noexcept {
        closed_ = true;
        detail::wake_all(senders_, EPIPE);
        detail::wake_all(receivers_, EPIPE);
    }

    bool closed() const noexcept { return closed_; }
    std::size_t capacity() const noexcept { return buf_.capacity(); }
    // Values buffered now.
    std::size_t size() const noexcept { return buf_.size(); }

private:
    // What a parked sender offers: its value, to move or to copy.
    struct offer {
        T* value;
        bool copy;
        T release() const { return detail::take_value(value, copy); }
    };

    static bool canceled() noexcept {
        detail::task_block* t = detail::current_task_or_null();
        return t && t->canceled;
    }
    // A canceled task's blocking call: ECANCELED (through the scheduler
    // during teardown; see detail::park_canceled).
    static int gate() {
        detail::task_block* t = detail::current_task_or_null();
        return (t && t->canceled) ? detail::park_canceled(t) : 0;
    }

    std::error_code send_from(T& value, bool copy, deadline d) {
        if (int e = gate(); e) return detail::errc_of(e);
        if (int e = give(value, copy); e != EAGAIN) return detail::errc_of(e);
        detail::task_block* t = detail::current_task("coop::channel::send");
        offer o{&value, copy};
        detail::wait_node node;
        node.data = &o;
        return detail::errc_of(detail::park(t, &senders_, &node, d.ns()));
    }

    std::error_code try_from(T& value, bool copy) {
        if (canceled()) return detail::errc_of(ECANCELED);
        return detail::errc_of(give(value, copy));
    }

    // Deliver without parking: 0, EPIPE, or EAGAIN (would park).
    int give(T& value, bool copy) {
        if (closed_) return EPIPE;
        const offer o{&value, copy};
        if (detail::wait_node* n = receivers_.head) {       // the buffer is empty
            *static_cast<T*>(n->data) = o.release();
            detail::wake(n->task, 0);
            return 0;
        }
        if (!buf_.full()) {
            buf_.push(o.release());
            return 0;
        }
        return EAGAIN;
    }

    // Take without parking: 0, EPIPE, or EAGAIN (would park).
    int take(T& out) {
        if (!buf_.empty()) {
            out = std::move(buf_.front());
            buf_.pop();
            if (detail::wait_node* n = senders_.head) {     // room again: admit the oldest sender
                buf_.push(static_cast<const offer*>(n->data)->release());
                detail::wake(n->task, 0);
            }
            return 0;
        }
        if (detail::wait_node* n = senders_.head) {         // rendezvous
            out = static_cast<const offer*>(n->data)->release();
            detail::wake(n->task, 0);
            return 0;
        }
        return closed_ ? EPIPE : EAGAIN;
    }

    detail::value_ring<T> buf_;
    bool closed_ = false;
    detail::wait_list senders_;
    detail::wait_list receivers_;
};

} // namespace coop

#endif
