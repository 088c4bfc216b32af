// coop/detail/value_ring.hpp — the bounded FIFO of values behind
// coop::channel and coop::shared_channel, and how a sender's value leaves
// its hands. Not a public interface.
#ifndef COOP_DETAIL_VALUE_RING_HPP
#define COOP_DETAIL_VALUE_RING_HPP

#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace coop::detail {

// A sender's value, taken only when it is delivered: moved, or copied when
// the sender passed an lvalue (copy), so that a failed send loses nothing.
template <class T>
T take_value(T* v, bool copy) {
    if constexpr (std::is_copy_constructible_v<T>) {
        if (copy) return T(*v);
    }
    return T(std::move(*v));
}

// Up to capacity values, oldest first, in one allocation made up front.
template <class T>
class value_ring {
public:
    explicit value_ring(std::size_t capacity)
        : cap_(capacity), buf_(capacity ? std::allocator<T>().allocate(capacity) : nullptr) {}
    value_ring(const value_ring&) = delete;
    value_ring& operator=(const value_ring&) = delete;
    ~value_ring() {
        while (count_) pop();
        if (buf_) std::allocator<T>().deallocate(buf_, cap_);
    }

    std::size_t capacity() const noexcept { return cap_; }
    std::size_t size() const noexcept { return count_; }
    bool full() const noexcept { return count_ == cap_; }
    bool empty() const noexcept { return count_ == 0; }
    T& front() noexcept { return buf_[head_]; }

    void push(T&& v) {                 // precondition: !full()
        std::size_t i = head_ + count_;
        if (i >= cap_) i -= cap_;
        ::new (static_cast<void*>(buf_ + i)) T(std::move(v));
        ++count_;
    }
    void pop() noexcept {              // precondition: !empty()
        buf_[head_].~T();
        if (++head_ == cap_) head_ = 0;
        --count_;
    }

private:
    const std::size_t cap_;
    T* const buf_;
    std::size_t head_ = 0;
    std::size_t count_ = 0;
};

} // namespace coop::detail

#endif
