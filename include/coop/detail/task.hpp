// coop/detail/task.hpp — the reactor's task control block, its run queue,
// and the parking and switching primitives the inline parts (spawn, yield,
// channels, join) build on. Not a public interface: names here may change.
//
// A task is a fiber (detail/fiber.hpp) whose callable holds a task_block.
//
// Task states (task_block::state) and where a task is in each:
//   runnable  in its reactor's run queue, exactly once; in no wait list and
//             not in the timer heap. Its fiber is created or suspended.
//   running   the one task whose fiber runs on the reactor's thread; in no
//             queue, list or heap. Its fiber is running.
//   parked    not in the run queue; in at most one wait list (wait == its
//             node, node->owner == that list) and in the timer heap iff it
//             has a deadline (heap_index != no_heap_index). Its fiber is
//             suspended. Only wake() (an event, a deadline, cancel) makes it
//             runnable again.
//   done      its callable has ended; in no queue, list or heap. Its fiber
//             is finished (or abandoned, when it could not be unwound).
// Transitions:
//   runnable -> running   the scheduler switches to it (switch_away, run loop)
//   running  -> runnable  coop::yield(): to the back of the queue
//   running  -> parked    park()
//   parked   -> runnable  wake(): to the back of the queue
//   running  -> done      task_ended() (or teardown, for an unwound task)
//
// Scheduling is hand-off: a task that yields or parks switches straight to
// the next runnable task (switch_away). The loop in reactor::run() runs
// only when nothing is runnable, when poll_interval hand-offs have happened
// since it last looked at timers and the kernel, or when it has work only
// it can do (posts, stop(), an error to rethrow).
#ifndef COOP_DETAIL_TASK_HPP
#define COOP_DETAIL_TASK_HPP

#include <coop/deadline.hpp>
#include <coop/detail/assert.hpp>
#include <coop/detail/error.hpp>
#include <coop/detail/fiber.hpp>
#include <coop/export.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <type_traits>

namespace coop::detail {

struct task_block;
struct wait_list;
struct scheduler;

// A parked task's entry in a wait list (fd waiters, channel queues,
// joiners). Lives on the parked task's own stack.
struct wait_node {
    wait_node* prev = nullptr;
    wait_node* next = nullptr;
    wait_list* owner = nullptr;      // the list it is in, null when in none
    task_block* task = nullptr;      // the parked task
    void* data = nullptr;            // what the waiter offers or expects (channels)
};

// Intrusive FIFO of parked tasks; O(1) insert and removal.
// Invariant: head == nullptr iff tail == nullptr; every node in the list has
// owner == this.
struct wait_list {
    wait_node* head = nullptr;
    wait_node* tail = nullptr;

    bool empty() const noexcept { return head == nullptr; }
    void push_back(wait_node* n) noexcept {
        COOP_ASSERT(n->owner == nullptr);
        n->owner = this;
        n->next = nullptr;
        n->prev = tail;
        if (tail) tail->next = n; else head = n;
        tail = n;
    }
    void remove(wait_node* n) noexcept {
        COOP_ASSERT(n->owner == this);
        if (n->prev) n->prev->next = n->next; else head = n->next;
        if (n->next) n->next->prev = n->prev; else tail = n->prev;
        n->prev = n->next = nullptr;
        n->owner = nullptr;
        COOP_ASSERT((head == nullptr) == (tail == nullptr));
    }
};

enum class task_state : unsigned char { runnable, running, parked, done };

// FIFO of runnable tasks (intrusive through task_block::next).
struct run_queue {
    task_block* head = nullptr;
    task_block* tail = nullptr;
    bool empty() const noexcept { return head == nullptr; }
    inline void push(task_block* t) noexcept;
    inline task_block* pop() noexcept;
};

inline constexpr std::uint32_t no_heap_index = 0xffffffffu;

// One per task, in its fiber's sched_space, i.e. in the control block at the
// top of the task's own stack: spawning allocates nothing else, and between
// a task's block and its fiber is a fixed offset (fib(), task_of()).
struct task_block {
    scheduler* owner = nullptr;           // its reactor; null once the reactor is gone
    task_block* next = nullptr;           // run queue link (runnable)
    std::uint32_t slot = 0;               // its place in the reactor's table of live tasks
    wait_node* wait = nullptr;            // the wait list entry it is parked on (parked)
    std::uint32_t heap_index = no_heap_index;  // its timer heap slot (parked with a deadline)
    int wake_err = 0;                     // what the pending park() returns
    task_state state = task_state::runnable;
    bool canceled = false;                // task::cancel(): blocking calls fail with ECANCELED
    bool has_handle = false;              // a coop::task refers to this block
    bool joining = false;                 // a task is parked in join() on the handle
    wait_list joiners;                    // tasks parked in join()
    std::exception_ptr error;             // escaped the task's callable

    inline fiber* fib() const noexcept;   // the task's fiber
};
static_assert(sizeof(task_block) <= fiber_sched_space && alignof(task_block) <= 16,
              "task_block must fit in a fiber's sched_space");

inline fiber* task_block::fib() const noexcept {
    return reinterpret_cast<fiber*>(reinterpret_cast<std::uintptr_t>(this) - offsetof(fiber, sched_space));
}
// The task block of a fiber that is a reactor task (fiber::scheduled).
inline task_block* task_of(fiber* f) noexcept {
    return std::launder(reinterpret_cast<task_block*>(f->sched_space));
}

inline void run_queue::push(task_block* t) noexcept {
    t->next = nullptr;
    if (tail) tail->next = t; else head = t;
    tail = t;
}
inline task_block* run_queue::pop() noexcept {
    task_block* t = head;
    if (t) {
        head = t->next;
        if (!head) tail = nullptr;
    }
    return t;
}

// The part of a reactor that inline code (yield, park, spawn) touches; the
// rest is in src/reactor_impl.hpp, which derives from it. The fields hand-off
// reads at every switch sit together at the front.
struct scheduler {
    // Hand-offs between two looks at timers and the kernel.
    static constexpr std::uint32_t poll_interval = 64;

    run_queue rq;                         // runnable tasks, FIFO
    std::uint32_t hops_left = 0;          // hand-offs left before the loop must run
    bool tearing_down = false;            // ~reactor is cancelling and unwinding tasks
    task_block* reap = nullptr;           // a detached task that has ended, whose stack the
                                          // next code to run on another stack frees
    // The loop has work only it can do: set by other threads (post(),
    // deliveries, stop()) and by this one (an error to rethrow). Relaxed: the
    // data it announces is handed over under the inbox mutex or by its own
    // flags; this only makes the next hand-off go to the loop early.
    std::atomic<bool> attention{false};
    fiber_ctx loop;                       // the run() loop while a task runs
    std::size_t live = 0;                 // tasks spawned and not done

    // Switch away from t, the running task, which is already queued
    // (runnable) or parked: to the next runnable task, or to the loop.
    // Returns when t is switched to again.
    [[gnu::always_inline]] inline void switch_away(task_block* t) noexcept { switch_away(t, this_thread()); }
    [[gnu::always_inline]] inline void switch_away(task_block* t, thread_state* ts) noexcept;
    // Free the stack of `reap` (out of line; we run on another stack now).
    COOP_API void reap_now() noexcept;
    // Where a task that has ended goes next; also takes its block off the
    // reactor's books (out of line).
    COOP_API void task_ended(task_block* t) noexcept;
};

[[gnu::always_inline]] inline void scheduler::switch_away(task_block* t, thread_state* ts) noexcept {
    COOP_ASSERT(t->state == task_state::runnable || t->state == task_state::parked);
    COOP_ASSERT(t->fib()->state == fiber_state::running);
    fiber_ctx* to = &loop;
    if (hops_left != 0 && !attention.load(std::memory_order_relaxed)) [[likely]] {
        --hops_left;
        if (task_block* n = rq.pop()) {
            if (n == t) {                 // it yielded and is the only runnable task
                t->state = task_state::running;
                return;
            }
            if (task_block* after = rq.head)
                __builtin_prefetch(after);    // its block shares a page with the next switch's target
            COOP_ASSERT(n->state == task_state::runnable);
            n->state = task_state::running;
            n->fib()->state = fiber_state::running;
            to = &n->fib()->self;
        }
    }
    t->fib()->state = fiber_state::suspended;
    (void)switch_to(ts, t->fib()->self, *to, nullptr);
    if (reap) [[unlikely]]
        reap_now();
}

[[noreturn]] COOP_API void throw_not_in_task(const char* what);

// The task running on this thread; throws std::logic_error (naming `what`)
// outside a reactor task.
inline task_block* current_task(const char* what, thread_state* ts) {
    fiber* f = ts->current;
    if (!f || !f->scheduled) [[unlikely]]
        throw_not_in_task(what);
    return task_of(f);
}
inline task_block* current_task(const char* what) {
    fiber* f = this_thread()->current;
    if (!f || !f->scheduled) [[unlikely]]
        throw_not_in_task(what);
    return task_of(f);
}
inline task_block* current_task_or_null() noexcept {
    fiber* f = this_thread()->current;
    return f && f->scheduled ? task_of(f) : nullptr;
}

// Out-of-line parts of park(): arm the timer (ETIMEDOUT if the deadline
// has passed already, else 0); undo a park that unwinding ends; a canceled
// task's park during teardown, which passes through the scheduler once so
// that a task ignoring ECANCELED cannot hold the teardown.
COOP_API int park_timer(task_block* t, std::int64_t deadline_ns);
COOP_API void park_unwound(task_block* t, wait_node* node) noexcept;
COOP_API int park_canceled(task_block* t);

// Park t (the calling task) in `list` (may be null) until wake(), its
// deadline (ns on the steady clock, no_deadline_ns for none) or cancel().
// Returns 0, ETIMEDOUT or ECANCELED, or what the waker passed. Inline, so
// that every blocking call site has its own switch (fiber_switch.hpp).
[[gnu::always_inline]] inline int park(task_block* t, wait_list* list, wait_node* node,
                                       std::int64_t deadline_ns) {
    fiber* f = t->fib();
    if (f->unwinding) [[unlikely]] {
        unwind_point(f);                  // throws, unless inside a destructor
        return ECANCELED;
    }
    if (t->canceled) [[unlikely]]
        return park_canceled(t);
    if (deadline_ns != no_deadline_ns) {
        if (int e = park_timer(t, deadline_ns)) return e;
    }
    if (list) {
        node->task = t;
        list->push_back(node);
        t->wait = node;
    }
    COOP_ASSERT(t->state == task_state::running);
    t->state = task_state::parked;
    t->owner->switch_away(t);
    if (f->unwinding) [[unlikely]] {
        park_unwound(t, node);
        unwind_point(f);
        return ECANCELED;
    }
    return t->wake_err;
}

// Make a parked task runnable; park() returns err. No-op unless t is parked.
COOP_API void wake(task_block* t, int err) noexcept;

// Wake every task parked in l with err (a node whose task is not parked on
// it any more is just dropped, so the loop always ends).
inline void wake_all(wait_list& l, int err) noexcept {
    while (wait_node* n = l.head) {
        if (n->task->state == task_state::parked && n->task->wait == n)
            wake(n->task, err);
        else
            l.remove(n);
    }
}

// A task's callable as stored in its fiber (its block is in sched_space).
template <class Fn>
struct task_body {
    Fn fn;

    template <class G>
    explicit task_body(G&& g) : fn(std::forward<G>(g)) {}

    // The fiber's body (fiber_run).
    static void* run(fiber* f, void*) {
        task_body& self = static_cast<fiber_with<task_body>*>(f)->value;
        task_block& b = *task_of(f);
        if (b.owner->reap) b.owner->reap_now();   // a task that ended may have handed off to us
        try {
            (void)self.fn();
        } catch (const forced_unwind&) {
            throw;
        } catch (...) {
            b.error = std::current_exception();
        }
        b.owner->task_ended(&b);              // sets where the fiber goes next
        return nullptr;
    }
};

// Free a task that is done (or never started): its block, then its fiber.
COOP_API void destroy_task(task_block* t) noexcept;

} // namespace coop::detail

#endif
