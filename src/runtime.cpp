// src/runtime.cpp — coop::runtime: reactors on threads, and the shared work
// count that tells when all of them are done.
#include "coop/runtime.hpp"

#include "reactor_impl.hpp"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace coop {

namespace detail {

namespace {
// The task on the target reactor that runs a remote call. Moved into the
// task; if the task is dropped unstarted (its reactor torn down), the call
// ends with ECANCELED for its caller.
struct remote_runner {
    remote_call* c;
    explicit remote_runner(remote_call* x) noexcept : c(x) {}
    remote_runner(remote_runner&& o) noexcept : c(std::exchange(o.c, nullptr)) {}
    remote_runner& operator=(remote_runner&&) = delete;
    ~remote_runner() {
        if (!c) return;
        {
            std::lock_guard<std::mutex> lk(c->mu);
            if (c->st == remote_call::state::queued) {   // the caller still waits: tell it
                c->st = remote_call::state::done;
                c->err = ECANCELED;
                deliver_remote(&c->waiter);
            }
        }
        c->release();
    }
    void operator()() {
        remote_call* x = std::exchange(c, nullptr);
        bool abandoned;
        {
            std::lock_guard<std::mutex> lk(x->mu);
            abandoned = x->st == remote_call::state::abandoned;
            if (!abandoned) x->st = remote_call::state::running;
        }
        if (abandoned) {              // released after the unlock: it may free x, mutex and all
            x->release();
            return;
        }
        x->run();
        {
            std::lock_guard<std::mutex> lk(x->mu);
            if (x->st != remote_call::state::abandoned) {
                x->st = remote_call::state::done;
                deliver_remote(&x->waiter);                // under mu: see remote_call_withdraw()
            }
        }
        x->release();
    }
};
} // namespace

void remote_call_post(runtime& rt, std::size_t i, remote_call* c) {
    rt.post(i, remote_runner(c));
}

void remote_call_withdraw(remote_call* c) noexcept {
    bool wait = false;
    {
        std::lock_guard<std::mutex> lk(c->mu);
        if (c->st == remote_call::state::done) wait = true;   // delivered under mu, not yet handled
        else c->st = remote_call::state::abandoned;
    }
    if (wait) await_delivery(&c->waiter);   // cannot fail (returns at once while unwinding)
    c->release();
}

void runtime_shared::all_done() noexcept {
    finished.store(true, std::memory_order_release);   // read with acquire by each loop
    for (reactor_impl* r : reactors) r->wake_loop();
}

} // namespace detail

namespace {
constinit thread_local runtime* t_runtime = nullptr;
constinit thread_local std::size_t t_index = 0;

std::vector<int> online_cpus() {
    std::vector<int> cpus;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
    return cpus;
}
} // namespace

struct runtime::impl {
    runtime_options opts;
    detail::runtime_shared shared;
    std::vector<std::unique_ptr<reactor>> reactors;
    std::vector<int> cpus;
    bool running = false;
    std::mutex error_mu;
    std::exception_ptr error;          // the first exception out of a reactor's run()
};

runtime::runtime(runtime_options o) : impl_(new impl) {
    impl_->opts = o;
    impl_->cpus = online_cpus();
    impl_->shared.idle_spin_ns = o.idle_spin.count() > 0 ? o.idle_spin.count() : 0;
    std::size_t n = o.threads;
    if (n == 0) {
        const long c = ::sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? static_cast<std::size_t>(c) : 1;
    }
    impl_->reactors.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        impl_->reactors.push_back(std::make_unique<reactor>());
        detail::reactor_impl* r = impl_->reactors.back()->impl();
        detail::unbind_from_thread(r);     // bound to its thread while run() runs it
        r->rt = &impl_->shared;
        impl_->shared.reactors.push_back(r);
    }
}

runtime::~runtime() {
    if (impl_->running) {
        std::fputs("coop: a runtime was destroyed while its run() executes\n", stderr);
        std::abort();
    }
    // Teardown on this thread (see the header); posts still queued count as
    // work until the teardown drops them.
    // The reactors leave the runtime first: the work count means nothing
    // any more, and one reactor's teardown must not signal another, gone one.
    for (auto& r : impl_->reactors) {
        r->impl()->rt = nullptr;
        detail::bind_to_thread(r->impl());
    }
    impl_->reactors.clear();
}

std::size_t runtime::size() const noexcept { return impl_->reactors.size(); }

reactor& runtime::reactor_at(std::size_t i) {
    if (i >= impl_->reactors.size())
        throw std::out_of_range("coop::runtime: reactor " + std::to_string(i) + " of " +
                                std::to_string(impl_->reactors.size()));
    return *impl_->reactors[i];
}

bool runtime::on_reactor(std::size_t i) const noexcept {
    return t_runtime == this && t_index == i && detail::current_task_or_null() != nullptr;
}

runtime* runtime::current() noexcept { return t_runtime; }

std::size_t runtime::current_index() {
    if (!t_runtime) throw std::logic_error("coop::runtime::current_index: not on a runtime's reactor thread");
    return t_index;
}

void runtime::stop() noexcept {
    for (auto& r : impl_->reactors) r->stop();
}

void runtime::run() {
    if (detail::this_thread()->current)
        throw std::logic_error("coop::runtime::run: called from inside a coroutine or task");
    if (impl_->running) throw std::logic_error("coop::runtime::run: already running");
    impl_->running = true;
    impl_->error = nullptr;
    detail::runtime_shared& sh = impl_->shared;
    sh.finished.store(sh.work.load(std::memory_order_acquire) == 0, std::memory_order_release);

    auto serve = [this](std::size_t i) {
        reactor& r = *impl_->reactors[i];
        detail::bind_to_thread(r.impl());
        t_runtime = this;
        t_index = i;
        if (impl_->opts.pin && !impl_->cpus.empty()) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(impl_->cpus[i % impl_->cpus.size()], &set);
            (void)::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);   // best effort
        }
        try {
            r.run();
        } catch (...) {
            {
                std::lock_guard<std::mutex> lk(impl_->error_mu);
                if (!impl_->error) impl_->error = std::current_exception();
            }
            stop();
        }
        // One reactor returning by stop() or an error ends the runtime's run().
        if (!impl_->shared.finished.load(std::memory_order_acquire)) stop();
        t_runtime = nullptr;
        detail::unbind_from_thread(r.impl());
    };

    std::vector<std::thread> threads;
    threads.reserve(impl_->reactors.size() - 1);
    try {
        for (std::size_t i = 1; i < impl_->reactors.size(); ++i) threads.emplace_back(serve, i);
    } catch (...) {
        stop();
        for (auto& t : threads) t.join();
        impl_->running = false;
        throw;
    }
    serve(0);
    for (auto& t : threads) t.join();
    if (impl_->opts.pin) {   // the calling thread gets its own affinity back
        cpu_set_t set;
        CPU_ZERO(&set);
        for (int c : impl_->cpus) CPU_SET(c, &set);
        (void)::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
    }
    impl_->running = false;
    if (impl_->error) std::rethrow_exception(std::exchange(impl_->error, nullptr));
}

} // namespace coop
