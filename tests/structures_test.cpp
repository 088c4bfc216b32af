// tests/structures_test.cpp — the scheduler's data structures on their own:
// the timer heap (src/timer_heap.hpp) against a reference model, the wait
// list and the run queue (coop/detail/task.hpp). No reactor involved.
#include "../src/timer_heap.hpp"

#include <coop/detail/task.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <utility>
#include <vector>

namespace {

using coop::detail::no_heap_index;
using coop::detail::run_queue;
using coop::detail::task_block;
using coop::detail::timer_heap;
using coop::detail::wait_list;
using coop::detail::wait_node;

// ---------------------------------------------------------------- timer heap

TEST(TimerHeap, PopsInDeadlineOrderAndEqualDeadlinesFirstInFirstOut) {
    timer_heap h;
    std::vector<task_block> t(6);
    const std::int64_t when[] = {50, 10, 30, 10, 50, 20};
    for (std::size_t i = 0; i < t.size(); ++i) h.push(&t[i], when[i]);
    EXPECT_EQ(h.size(), 6u);
    std::vector<task_block*> order;
    while (!h.empty()) {
        task_block* top = h.top();
        EXPECT_EQ(h.pop(), top);
        EXPECT_EQ(top->heap_index, no_heap_index);
        order.push_back(top);
    }
    EXPECT_EQ(order, (std::vector<task_block*>{&t[1], &t[3], &t[5], &t[2], &t[0], &t[4]}));
}

TEST(TimerHeap, RemoveFromAnywhereKeepsTheOrderAndTheIndices) {
    timer_heap h;
    std::vector<task_block> t(9);
    for (std::size_t i = 0; i < t.size(); ++i) h.push(&t[i], static_cast<std::int64_t>((i * 7) % 9));
    h.remove(&t[4]);                  // somewhere in the middle
    h.remove(&t[0]);                  // the root (deadline 0)
    h.remove(&t[8]);
    EXPECT_EQ(t[4].heap_index, no_heap_index);
    EXPECT_EQ(h.size(), 6u);
    std::int64_t last = -1;
    while (!h.empty()) {
        const std::int64_t w = h.next();
        EXPECT_GE(w, last);
        last = w;
        task_block* x = h.pop();
        EXPECT_NE(x, &t[4]);
        EXPECT_NE(x, &t[0]);
        EXPECT_NE(x, &t[8]);
    }
}

// Random pushes, pops and removals against a std::set of (deadline, order):
// the heap must agree with the model at every step, and every task in the
// heap must know its slot.
TEST(TimerHeap, AgreesWithAReferenceModelUnderRandomOperations) {
    std::mt19937 rng(12345);
    timer_heap h;
    std::vector<task_block> t(300);
    std::set<std::pair<std::int64_t, std::uint64_t>> model;   // (when, seq)
    std::map<std::uint64_t, task_block*> by_seq;
    std::map<task_block*, std::pair<std::int64_t, std::uint64_t>> key;
    std::uint64_t seq = 0;
    for (int step = 0; step < 20000; ++step) {
        const unsigned op = rng() % 3;
        if (op == 0 || model.empty()) {                        // push a task not in the heap
            task_block* x = &t[rng() % t.size()];
            if (x->heap_index != no_heap_index) continue;
            const std::int64_t w = static_cast<std::int64_t>(rng() % 64);
            h.push(x, w);
            model.insert({w, seq});
            by_seq[seq] = x;
            key[x] = {w, seq};
            ++seq;
        } else if (op == 1) {                                  // pop the earliest
            auto first = *model.begin();
            ASSERT_EQ(h.next(), first.first);
            task_block* x = h.pop();
            ASSERT_EQ(x, by_seq[first.second]);
            model.erase(model.begin());
            key.erase(x);
        } else {                                               // remove a random member
            auto it = key.begin();
            std::advance(it, static_cast<long>(rng() % key.size()));
            task_block* x = it->first;
            h.remove(x);
            EXPECT_EQ(x->heap_index, no_heap_index);
            model.erase(it->second);
            key.erase(it);
        }
        ASSERT_EQ(h.size(), model.size());
        for (auto& [x, k] : key) ASSERT_NE(x->heap_index, no_heap_index);
    }
}

// ---------------------------------------------------------------- wait list

TEST(WaitList, KeepsFifoOrderAndRemovesFromAnyPlace) {
    wait_list l;
    wait_node n[4];
    EXPECT_TRUE(l.empty());
    for (auto& x : n) l.push_back(&x);
    for (auto& x : n) EXPECT_EQ(x.owner, &l);
    l.remove(&n[1]);                  // middle
    EXPECT_EQ(n[1].owner, nullptr);
    EXPECT_EQ(n[1].prev, nullptr);
    EXPECT_EQ(n[1].next, nullptr);
    l.remove(&n[0]);                  // head
    l.remove(&n[3]);                  // tail
    EXPECT_EQ(l.head, &n[2]);
    EXPECT_EQ(l.tail, &n[2]);
    l.push_back(&n[1]);               // a removed node can be queued again
    EXPECT_EQ(l.head, &n[2]);
    EXPECT_EQ(l.head->next, &n[1]);
    EXPECT_EQ(l.tail, &n[1]);
    l.remove(&n[2]);
    l.remove(&n[1]);
    EXPECT_TRUE(l.empty());
    EXPECT_EQ(l.tail, nullptr);
}

TEST(RunQueue, IsFifoAndEmptiesCleanly) {
    run_queue q;
    task_block t[3];
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.pop(), nullptr);
    for (auto& x : t) q.push(&x);
    EXPECT_EQ(q.pop(), &t[0]);
    q.push(&t[0]);                    // to the back again
    EXPECT_EQ(q.pop(), &t[1]);
    EXPECT_EQ(q.pop(), &t[2]);
    EXPECT_EQ(q.pop(), &t[0]);
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.tail, nullptr);
}

} // namespace
