// coop/shared_channel.hpp — typed channels between the tasks of different
// reactors (and threads).
//
//   coop::shared_channel<request> to_owner(64);   // bounded, 0 = rendezvous
//   // a task of reactor 0:                        // a task of reactor 1:
//   to_owner.send(std::move(req), 1s);             request r; to_owner.recv(r);
//
// The same semantics and error codes as coop::channel (channel.hpp): FIFO
// values and waiters; send() completes when the value is buffered or handed
// to a waiting receiver; after close() buffered values are still received,
// then recv() fails with EPIPE; send() on a closed channel, and senders
// parked when it closes, fail with EPIPE; ETIMEDOUT at the deadline;
// ECANCELED when the calling task is canceled (checked first); a failed send
// leaves the value with the caller (moved from only on success, copied only
// on success for an lvalue); try_send()/try_recv() never park (EAGAIN).
//
// Senders and receivers park their tasks, never their threads. A value
// handed to a task of another reactor wakes that task through its reactor's
// inbox (coop/detail/remote.hpp): the poller is woken only if that reactor
// sleeps, once per burst. try_*, close(), size() and closed() may be called
// from any thread, in a task or not; send()/recv() may be called outside a
// task only when they need not park (std::logic_error otherwise).
//
// One mutex guards the channel; the value moves under it. A shared_channel
// must outlive every call in progress on it; destroying it closes it first.
#ifndef COOP_SHARED_CHANNEL_HPP
#define COOP_SHARED_CHANNEL_HPP

#include <coop/deadline.hpp>
#include <coop/detail/error.hpp>
#include <coop/detail/remote.hpp>
#include <coop/detail/task.hpp>
#include <coop/detail/value_ring.hpp>

#include <cerrno>
#include <cstddef>
#include <memory>
#include <mutex>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

namespace coop {

template <class T>
class shared_channel {
public:
    explicit shared_channel(std::size_t capacity = 0) : buf_(capacity) {}
    shared_channel(const shared_channel&) = delete;
    shared_channel& operator=(const shared_channel&) = delete;
    ~shared_channel() { close(); }

    std::error_code send(T&& value, deadline d = {}) { return send_from(value, false, d); }
    std::error_code send(const T& value, deadline d = {}) {
        return send_from(const_cast<T&>(value), true, d);
    }
    std::error_code recv(T& out, deadline d = {}) { return recv_into(out, d); }

    std::error_code try_send(T&& value) { return try_from(value, false); }
    std::error_code try_send(const T& value) { return try_from(const_cast<T&>(value), true); }
    std::error_code try_recv(T& out) {
        if (canceled()) return detail::errc_of(ECANCELED);
        std::lock_guard<std::mutex> lk(mu_);
        return detail::errc_of(take(out));
    }

    // Wake every parked sender and receiver (EPIPE). Idempotent.
    void close() noexcept {
        std::lock_guard<std::mutex> lk(mu_);
        closed_ = true;
        while (waiter* w = senders_.pop()) complete(w, EPIPE);
        while (waiter* w = receivers_.pop()) complete(w, EPIPE);
    }

    bool closed() const noexcept {
        std::lock_guard<std::mutex> lk(mu_);
        return closed_;
    }
    std::size_t capacity() const noexcept { return buf_.capacity(); }
    std::size_t size() const noexcept {
        std::lock_guard<std::mutex> lk(mu_);
        return buf_.size();
    }

private:
    // A parked sender or receiver, on its own stack.
    struct waiter {
        detail::remote_waiter rw;
        T* value = nullptr;          // sender: what it offers; receiver: where the value goes
        bool copy = false;           // sender: copy instead of move
        bool queued = false;
        waiter* prev = nullptr;
        waiter* next = nullptr;
    };
    struct queue {
        waiter* head = nullptr;
        waiter* tail = nullptr;
        void push(waiter* w) noexcept {
            w->queued = true;
            w->next = nullptr;
            w->prev = tail;
            if (tail) tail->next = w; else head = w;
            tail = w;
        }
        void remove(waiter* w) noexcept {
            if (w->prev) w->prev->next = w->next; else head = w->next;
            if (w->next) w->next->prev = w->prev; else tail = w->prev;
            w->prev = w->next = nullptr;
            w->queued = false;
        }
        waiter* pop() noexcept {
            waiter* w = head;
            if (w) remove(w);
            return w;
        }
    };

    static bool canceled() noexcept {
        detail::task_block* t = detail::current_task_or_null();
        return t && t->canceled;
    }
    static int gate() {
        detail::task_block* t = detail::current_task_or_null();
        return (t && t->canceled) ? detail::park_canceled(t) : 0;
    }
    // Under mu_: hand the result to a waiter taken out of its queue.
    static void complete(waiter* w, int result) noexcept {
        w->rw.result = result;
        detail::deliver_remote(&w->rw);
    }

    // Under mu_. 0, EPIPE or EAGAIN.
    int give(T& value, bool copy) {
        if (closed_) return EPIPE;
        if (waiter* r = receivers_.pop()) {       // the buffer is empty
            *r->value = detail::take_value(&value, copy);
            complete(r, 0);
            return 0;
        }
        if (!buf_.full()) {
            buf_.push(detail::take_value(&value, copy));
            return 0;
        }
        return EAGAIN;
    }
    // Under mu_. 0, EPIPE or EAGAIN.
    int take(T& out) {
        if (!buf_.empty()) {
            out = std::move(buf_.front());
            buf_.pop();
            if (waiter* s = senders_.pop()) {     // room again: admit the oldest sender
                buf_.push(detail::take_value(s->value, s->copy));
                complete(s, 0);
            }
            return 0;
        }
        if (waiter* s = senders_.pop()) {         // rendezvous
            out = detail::take_value(s->value, s->copy);
            complete(s, 0);
            return 0;
        }
        return closed_ ? EPIPE : EAGAIN;
    }

    // Park the calling task as w in q (mu_ is held through lk); returns the
    // call's result once a completer delivered it or the park ended locally.
    int wait_in(queue& q, waiter& w, std::unique_lock<std::mutex>& lk, deadline d, const char* what) {
        detail::task_block* t = detail::current_task(what);
        w.rw.task = t;
        q.push(&w);
        lk.unlock();
        struct unqueue {             // forced_unwind out of park(): leave no waiter behind
            shared_channel* ch;
            queue& q;
            waiter& w;
            bool armed = true;
            ~unqueue() {
                if (!armed) return;
                std::lock_guard<std::mutex> g(ch->mu_);
                if (w.queued) q.remove(&w);   // else its delivery is dropped with the reactor
            }
        } guard{this, q, w};
        const int local = detail::park(t, nullptr, nullptr, d.ns());
        guard.armed = false;
        if (w.rw.delivered) return w.rw.result;
        lk.lock();                    // woken here (deadline, cancel): still queued?
        if (w.queued) {
            q.remove(&w);
            return local;
        }
        lk.unlock();                  // a completer took it: its delivery is on the way
        detail::await_delivery(&w.rw);
        return w.rw.result;
    }

    std::error_code send_from(T& value, bool copy, deadline d) {
        if (int e = gate()) return detail::errc_of(e);
        std::unique_lock<std::mutex> lk(mu_);
        if (int e = give(value, copy); e != EAGAIN) return detail::errc_of(e);
        waiter w;
        w.value = &value;
        w.copy = copy;
        return detail::errc_of(wait_in(senders_, w, lk, d, "coop::shared_channel::send"));
    }
    std::error_code try_from(T& value, bool copy) {
        if (canceled()) return detail::errc_of(ECANCELED);
        std::lock_guard<std::mutex> lk(mu_);
        return detail::errc_of(give(value, copy));
    }
    std::error_code recv_into(T& out, deadline d) {
        if (int e = gate()) return detail::errc_of(e);
        std::unique_lock<std::mutex> lk(mu_);
        if (int e = take(out); e != EAGAIN) return detail::errc_of(e);
        waiter w;
        w.value = &out;
        return detail::errc_of(wait_in(receivers_, w, lk, d, "coop::shared_channel::recv"));
    }

    mutable std::mutex mu_;
    detail::value_ring<T> buf_;        // under mu_
    bool closed_ = false;
    queue senders_;
    queue receivers_;
};

} // namespace coop

#endif
