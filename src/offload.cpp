// src/offload.cpp — the offload pool (coop/offload.hpp): worker threads, a
// FIFO of jobs under one mutex, and the hand-back to the waiting task.
#include "coop/offload.hpp"

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace coop {
namespace detail {

namespace {

// The pool lives for the whole process and is never destroyed: its workers
// may be inside a blocking call at exit, and joining them then could hang.
// Workers are detached; exit ends them.
struct pool {
    std::mutex mu;
    std::condition_variable ready;
    offload_job* head = nullptr;      // queued jobs, FIFO
    offload_job* tail = nullptr;
    std::size_t want = 0;             // target number of workers
    std::size_t workers = 0;          // running now

    void worker() {
        std::unique_lock<std::mutex> lk(mu);
        for (;;) {
            ready.wait(lk, [&] { return head || workers > want; });
            if (workers > want) {     // set_offload_threads() lowered the count
                --workers;
                return;
            }
            offload_job* j = head;
            head = j->next;
            if (!head) tail = nullptr;
            j->st = offload_job::state::running;
            lk.unlock();
            j->run();
            lk.lock();
            if (j->st == offload_job::state::abandoned) {
                delete j;             // nobody waits for it any more
                continue;
            }
            j->st = offload_job::state::done;
            deliver_remote(&j->waiter);   // under mu: see offload_withdraw()
        }
    }

    void grow_locked() {
        while (workers < want) {
            std::thread(&pool::worker, this).detach();
            ++workers;
        }
        ready.notify_all();           // surplus workers (if lowered) look again
    }
};

std::size_t initial_threads() {
    if (const char* v = std::getenv("COOP_OFFLOAD_THREADS")) {
        char* end = nullptr;
        const unsigned long n = std::strtoul(v, &end, 10);
        if (end != v && *end == '\0' && n > 0 && n <= 1024) return n;
    }
    return 4;
}

pool& the_pool() {
    static pool* p = [] {
        auto* q = new pool;
        q->want = initial_threads();
        return q;
    }();
    return *p;
}

} // namespace

void offload_submit(offload_job* job) {
    pool& p = the_pool();
    std::lock_guard<std::mutex> lk(p.mu);
    if (p.workers < p.want) p.grow_locked();
    job->next = nullptr;
    if (p.tail) p.tail->next = job; else p.head = job;
    p.tail = job;
    p.ready.notify_one();
}

void offload_withdraw(offload_job* job, int) noexcept {
    pool& p = the_pool();
    std::unique_lock<std::mutex> lk(p.mu);
    switch (job->st) {
    case offload_job::state::queued: {    // never started: take it out and drop it
        offload_job** at = &p.head;
        offload_job* prev = nullptr;
        while (*at != job) {
            prev = *at;
            at = &(*at)->next;
        }
        *at = job->next;
        if (p.tail == job) p.tail = prev;
        lk.unlock();
        delete job;
        return;
    }
    case offload_job::state::running:     // its worker deletes it when it returns
        job->st = offload_job::state::abandoned;
        return;
    case offload_job::state::done:        // delivered under the mutex, not yet handled:
    case offload_job::state::abandoned:   // wait for it (it cannot fail), then drop it
        break;
    }
    lk.unlock();
    await_delivery(&job->waiter);
    delete job;
}

} // namespace detail

void set_offload_threads(std::size_t n) {
    detail::pool& p = detail::the_pool();
    std::lock_guard<std::mutex> lk(p.mu);
    p.want = n ? n : 1;
    p.grow_locked();
}

std::size_t offload_threads() noexcept {
    detail::pool& p = detail::the_pool();
    std::lock_guard<std::mutex> lk(p.mu);
    return p.want;
}

} // namespace coop
