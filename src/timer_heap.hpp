// src/timer_heap.hpp — deadlines of parked tasks: a binary min-heap keyed by
// (deadline, insertion order), so equal deadlines fire first-in first-out.
// Each task has at most one entry; its slot index lives in the task's
// control block, which makes removal (wake-up by an event, cancel) O(log n).
// Storage grows geometrically and is reused: no allocation per timer.
#ifndef COOP_SRC_TIMER_HEAP_HPP
#define COOP_SRC_TIMER_HEAP_HPP

#include <coop/detail/task.hpp>

#include <cstdint>
#include <vector>

namespace coop::detail {

class timer_heap {
public:
    bool empty() const noexcept { return v_.empty(); }
    std::size_t size() const noexcept { return v_.size(); }
    // Earliest deadline (precondition: not empty).
    std::int64_t next() const noexcept { return v_.front().when; }
    task_block* top() const noexcept { return v_.front().t; }

    void push(task_block* t, std::int64_t when);   // may throw std::bad_alloc
    void remove(task_block* t) noexcept;           // t must be in the heap
    task_block* pop() noexcept;

private:
    struct entry {
        std::int64_t when;
        std::uint64_t seq;
        task_block* t;
    };
    static bool before(const entry& a, const entry& b) noexcept {
        return a.when < b.when || (a.when == b.when && a.seq < b.seq);
    }
    void place(std::size_t i, const entry& e) noexcept {
        v_[i] = e;
        e.t->heap_index = static_cast<std::uint32_t>(i);
    }
    void sift_up(std::size_t i, entry e) noexcept;
    void sift_down(std::size_t i, entry e) noexcept;

    std::vector<entry> v_;
    std::uint64_t seq_ = 0;
};

} // namespace coop::detail

#endif
