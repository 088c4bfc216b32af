// src/timer_heap.cpp — see timer_heap.hpp.
#include "timer_heap.hpp"

namespace coop::detail {

void timer_heap::push(task_block* t, std::int64_t when) {
    COOP_ASSERT(t->heap_index == no_heap_index);   // at most one entry per task
    entry e{when, seq_++, t};
    v_.push_back(e);
    sift_up(v_.size() - 1, e);
}

void timer_heap::sift_up(std::size_t i, entry e) noexcept {
    while (i > 0) {
        std::size_t parent = (i - 1) / 2;
        if (!before(e, v_[parent])) break;
        place(i, v_[parent]);
        i = parent;
    }
    place(i, e);
}

void timer_heap::sift_down(std::size_t i, entry e) noexcept {
    const std::size_t n = v_.size();
    for (;;) {
        std::size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(v_[c + 1], v_[c])) ++c;
        if (!before(v_[c], e)) break;
        place(i, v_[c]);
        i = c;
    }
    place(i, e);
}

void timer_heap::remove(task_block* t) noexcept {
    const std::size_t i = t->heap_index;
    COOP_ASSERT(i < v_.size() && v_[i].t == t);
    t->heap_index = no_heap_index;
    entry last = v_.back();
    v_.pop_back();
    if (i == v_.size()) return;            // it was the last slot
    if (i > 0 && before(last, v_[(i - 1) / 2]))
        sift_up(i, last);
    else
        sift_down(i, last);
}

task_block* timer_heap::pop() noexcept {
    task_block* t = v_.front().t;
    remove(t);
    return t;
}

} // namespace coop::detail
