// coop/generator.hpp — a typed, lazily evaluated sequence on a stackful
// coroutine. The body pushes values into a sink from any call depth:
//
//   coop::generator<int> squares([](coop::generator<int>::sink& out) {
//       for (int i = 0; i < 5; ++i) out(i * i);
//   });
//   for (int v : squares) std::printf("%d\n", v);
//
// A value is handed over by address: it stays alive on the generator's stack
// until the consumer asks for the next one. An rvalue is handed over as it
// is, and the consumer may move from it (next() does). An lvalue is copied
// once, onto the generator's stack, and the copy is handed over (as
// std::generator does): the producer's own objects are never moved from or
// modified, const or not.
//
// Single pass. Every value is delivered once, whatever mix of next(),
// begin(), ++ and range-for loops consumes the sequence: a value counts as
// delivered when an iterator is dereferenced at it or next() returns it, and
// the next begin() or next() starts after it. A second range-for after a
// `break` continues with the value after the last one the loop saw.
// next() and ++ on one iterator move the generator on; an iterator that was
// not the one moved on is then stale, and dereferencing it throws
// std::logic_error.
#ifndef COOP_GENERATOR_HPP
#define COOP_GENERATOR_HPP

#include <coop/coroutine.hpp>

#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace coop {

template <class T>
class generator {
    static_assert(std::is_object_v<T> && !std::is_const_v<T> && !std::is_volatile_v<T>,
                  "coop::generator<T>: T must be a non-const object type");

public:
    class sink {
    public:
        // Hand a copy of v to the consumer; returns when it asks for the
        // next value. v itself is left alone.
        void operator()(const T& v) {
            T copy(v);
            y_.yield(std::addressof(copy));
        }
        // Hand v to the consumer, which may move from it.
        void operator()(T&& v) { y_.yield(std::addressof(v)); }

    private:
        friend class generator;
        explicit sink(yielder& y) noexcept : y_(y) {}
        yielder& y_;
    };

    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = T;
        using difference_type = std::ptrdiff_t;
        using pointer = T*;
        using reference = T&;

        iterator() noexcept = default;
        // The current value; marks it delivered. Throws std::logic_error if
        // this iterator is stale.
        T& operator*() const { return *g_->deliver(pos_); }
        T* operator->() const { return g_->deliver(pos_); }
        // Runs the body to its next value (rethrowing what escapes it).
        iterator& operator++() {
            g_->check(pos_);
            g_->advance();
            pos_ = g_->pos_;
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
            return it.at_end();
        }

    private:
        friend class generator;
        iterator(generator* g, std::uint64_t pos) noexcept : g_(g), pos_(pos) {}
        bool at_end() const noexcept { return !g_ || g_->cur_ == nullptr; }
        generator* g_ = nullptr;
        std::uint64_t pos_ = 0;     // the generator's pos_ this iterator stands at
    };

    // fn takes (generator<T>::sink&).
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, generator>>>
    explicit generator(F&& fn, const coroutine_options& opts = {})
        : co_(
              [fn = std::forward<F>(fn)](yielder& y) mutable {
                  sink s(y);
                  fn(s);
              },
              opts) {}

    generator(generator&&) noexcept = default;
    generator& operator=(generator&&) noexcept = default;

    // An iterator at the first value not yet delivered (starting the
    // generator if it has not started).
    iterator begin() {
        if (!co_.started() || delivered_) advance();
        return iterator(this, pos_);
    }
    std::default_sentinel_t end() const noexcept { return {}; }

    // The next value not yet delivered, moved out; nullopt when the body has
    // returned.
    std::optional<T> next() {
        if (!co_.started() || delivered_ || !cur_) advance();
        if (!cur_) return std::nullopt;
        delivered_ = true;
        ++pos_;   // iterators at this value are stale: it has been moved out
        return std::optional<T>(std::move(*cur_));
    }

    bool done() const noexcept { return co_.done(); }

private:
    void check(std::uint64_t pos) const {
        if (pos != pos_)
            throw std::logic_error(
                "coop::generator: stale iterator (the generator moved on through next() or "
                "another iterator)");
    }
    T* deliver(std::uint64_t pos) {
        check(pos);
        delivered_ = true;
        return cur_;
    }
    void advance() {
        delivered_ = false;
        ++pos_;
        cur_ = nullptr;   // stays null if the body ends or throws
        if (co_.done()) return;
        T* v = static_cast<T*>(co_.resume());
        if (!co_.done()) cur_ = v;
    }

    coroutine co_;
    T* cur_ = nullptr;            // the current value, on the body's stack; null at the end
    bool delivered_ = false;      // cur_ was handed out (dereferenced or returned by next())
    std::uint64_t pos_ = 0;       // counts advances and next() results
};

} // namespace coop

#endif
