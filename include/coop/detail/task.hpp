// coop/detail/task.hpp — the reactor's task control block and the parking
// primitives the header-only parts (spawn, channels) build on. Not a public
// interface: names here may change.
#ifndef COOP_DETAIL_TASK_HPP
#define COOP_DETAIL_TASK_HPP

#include <coop/coroutine.hpp>

#include <cerrno>
#include <cstdint>
#include <exception>

namespace coop::detail {

class reactor_impl;
struct task_cb;
struct wait_list;

// A parked task's entry in a wait list (fd waiters, channel queues,
// joiners). Lives on the parked task's own stack.
struct wait_node {
    wait_node* prev = nullptr;
    wait_node* next = nullptr;
    wait_list* owner = nullptr;
    task_cb* task = nullptr;
    void* data = nullptr;        // what the waiter offers or expects (channels)
};

// Intrusive FIFO of parked tasks; O(1) insert and removal.
struct wait_list {
    wait_node* head = nullptr;
    wait_node* tail = nullptr;

    bool empty() const noexcept { return head == nullptr; }
    void push_back(wait_node* n) noexcept {
        n->owner = this;
        n->next = nullptr;
        n->prev = tail;
        if (tail) tail->next = n; else head = n;
        tail = n;
    }
    void remove(wait_node* n) noexcept {
        if (n->prev) n->prev->next = n->next; else head = n->next;
        if (n->next) n->next->prev = n->prev; else tail = n->prev;
        n->prev = n->next = nullptr;
        n->owner = nullptr;
    }
};

enum class task_state : unsigned char { runnable, running, parked, done };

// The reactor's FIFO of runnable tasks (intrusive through task_cb::next).
struct run_queue {
    task_cb* head = nullptr;
    task_cb* tail = nullptr;
    inline void push(task_cb* t) noexcept;
    task_cb* pop() noexcept;
};

inline constexpr std::uint32_t no_heap_index = 0xffffffffu;

// One per task, stored inside the task's callable, i.e. in the coroutine
// frame at the top of the task's own stack: spawning allocates nothing else.
struct task_cb {
    frame* f = nullptr;
    reactor_impl* r = nullptr;            // null once the reactor is gone
    run_queue* rq = nullptr;              // r's run queue
    task_cb* next = nullptr;              // run queue link
    task_cb* all_prev = nullptr;          // the reactor's list of live tasks
    task_cb* all_next = nullptr;
    wait_node* wait = nullptr;            // the list the task is parked in, if any
    std::uint32_t heap_index = no_heap_index;  // timer heap slot while parked with a deadline
    int wake_err = 0;                     // what the last park returns
    task_state state = task_state::runnable;
    bool canceled = false;
    bool has_handle = false;              // a coop::task refers to this block
    wait_list joiners;
    std::exception_ptr error;             // escaped the task's callable
};

inline void run_queue::push(task_cb* t) noexcept {
    t->next = nullptr;
    if (tail) tail->next = t; else head = t;
    tail = t;
}
inline task_cb* run_queue::pop() noexcept {
    task_cb* t = head;
    if (t) {
        head = t->next;
        if (!head) tail = nullptr;
    }
    return t;
}

[[noreturn]] void throw_not_in_task(const char* what);

// The task running on this thread; throws std::logic_error (naming `what`)
// outside a reactor task.
inline task_cb* current_task(const char* what) {
    frame* f = t_current;
    if (!f || !f->user) [[unlikely]]
        throw_not_in_task(what);
    return static_cast<task_cb*>(f->user);
}
inline task_cb* current_task_or_null() noexcept {
    frame* f = t_current;
    return f ? static_cast<task_cb*>(f->user) : nullptr;
}

// Out-of-line parts of park(): arm the timer (ETIMEDOUT if the deadline
// has passed already, else 0), and undo a park that forced_unwind ends.
int park_timer(task_cb* t, std::int64_t deadline_ns);
void park_unwound(task_cb* t, wait_node* node) noexcept;

inline constexpr std::int64_t no_deadline_ns = INT64_MAX;

// Park t (the calling task) in `list` (may be null) until wake(), its
// deadline (ns on the steady clock, INT64_MAX for none) or cancel().
// Returns 0, ETIMEDOUT or ECANCELED, or what the waker passed.
//
// Inline on purpose: the switch inside returns to the scheduler with `ret`,
// which the return predictor gets right only when no call frame of ours
// sits between the task's code and the switch.
inline int park(task_cb* t, wait_list* list, wait_node* node, std::int64_t deadline_ns) {
    if (t->canceled) [[unlikely]]
        return ECANCELED;
    frame* f = t->f;
    if (f->unwinding) [[unlikely]]
        return ECANCELED;
    if (deadline_ns != no_deadline_ns) {
        if (int e = park_timer(t, deadline_ns)) return e;
    }
    if (list) {
        node->task = t;
        list->push_back(node);
        t->wait = node;
    }
    t->state = task_state::parked;
    try {
        detail::yield(f, nullptr);
    } catch (...) {
        park_unwound(t, list ? node : nullptr);   // forced_unwind: the reactor is going away
        throw;
    }
    return t->wake_err;
}

// Make a parked task runnable; park() returns err. No-op unless t is parked.
void wake(task_cb* t, int err) noexcept;

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

// The task's callable as stored in the coroutine frame.
template <class Fn>
struct task_body {
    task_cb cb;
    Fn fn;

    template <class G>
    explicit task_body(G&& g) : fn(std::forward<G>(g)) {}

    void operator()() {
        try {
            (void)fn();
        } catch (const forced_unwind&) {
            throw;
        } catch (...) {
            cb.error = std::current_exception();
        }
    }
};

} // namespace coop::detail

#endif
