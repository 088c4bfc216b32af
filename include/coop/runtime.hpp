// coop/runtime.hpp — a thread-per-core runtime: N reactors on N threads.
//
//   coop::runtime rt;                         // one reactor per online CPU
//   for (std::size_t i = 0; i < rt.size(); ++i)
//       rt.spawn_on(i, [i] { serve(i); });    // a task of reactor i
//   rt.run();                                 // until every task of every reactor is done
//
// Each reactor keeps to its thread: its tasks never move, and they talk to
// other reactors through shared channels (coop/shared_channel.hpp),
// spawn_on()/post(), or the offload pool (coop/offload.hpp). A reactor with
// nothing to do sleeps in the kernel until another thread hands it work.
//
// run() starts threads for reactors 1..N-1 and runs reactor 0 on the
// calling thread. It returns when the runtime has no work left (no live task
// and no posted callable on any reactor), or after stop(). An exception that
// escapes a detached task stops the runtime and is rethrown by run().
//
// Reactors are built in the constructor and destroyed in the destructor, on
// the thread that owns the runtime: tasks left after stop() are canceled and
// unwound there (see reactor.hpp, Teardown).
#ifndef COOP_RUNTIME_HPP
#define COOP_RUNTIME_HPP

#include <coop/export.h>
#include <coop/reactor.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <utility>

namespace coop {

struct runtime_options {
    // Reactors (and threads); 0: one per online CPU.
    std::size_t threads = 0;
    // Pin reactor i's thread to the i-th online CPU (modulo their number).
    bool pin = false;
    // How long a reactor with nothing to run spins, watching for work from
    // other reactors, before it sleeps in the kernel. A value handed to a
    // spinning reactor costs a cache-line transfer; to a sleeping one, a
    // system call and a thread wake-up. 0: sleep at once.
    std::chrono::nanoseconds idle_spin = std::chrono::microseconds(3);
};

class runtime {
public:
    COOP_API explicit runtime(runtime_options o = {});
    COOP_API ~runtime();               // std::abort()s while run() executes
    runtime(const runtime&) = delete;
    runtime& operator=(const runtime&) = delete;

    // Number of reactors.
    COOP_API std::size_t size() const noexcept;

    // From any thread, before or during run(): start fn() as a detached
    // task of reactor i (at once when called from a task of reactor i, else
    // through its inbox). std::out_of_range for a bad i.
    template <class F>
    void spawn_on(std::size_t i, F&& fn) {
        if (on_reactor(i))
            this_reactor().spawn(std::forward<F>(fn));
        else
            reactor_at(i).post(std::forward<F>(fn));
    }

    // From any thread: run fn() as a task of reactor i, through its inbox
    // even from reactor i itself (it runs after what is runnable now).
    template <class F>
    void post(std::size_t i, F&& fn) {
        reactor_at(i).post(std::forward<F>(fn));
    }

    // Run every reactor until no work is left or stop(); see above.
    COOP_API void run();
    // From any thread: make run() return soon; tasks stay as they are.
    COOP_API void stop() noexcept;

    // The runtime whose reactor runs the calling thread (null elsewhere).
    COOP_API static runtime* current() noexcept;
    // The index of that reactor; std::logic_error when current() is null.
    COOP_API static std::size_t current_index();

    struct impl;

private:
    COOP_API reactor& reactor_at(std::size_t i);
    COOP_API bool on_reactor(std::size_t i) const noexcept;
    std::unique_ptr<impl> impl_;
};

} // namespace coop

#endif
