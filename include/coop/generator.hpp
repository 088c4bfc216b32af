// coop/generator.hpp — a typed, lazily evaluated sequence on a stackful
// coroutine. The body pushes values into a sink from any call depth:
//
//   coop::generator<int> squares([](coop::generator<int>::sink& out) {
//       for (int i = 0; i < 5; ++i) out(i * i);
//   });
//   for (int v : squares) std::printf("%d\n", v);
//
// A value is handed over by address: it stays alive on the generator's stack
// until the consumer asks for the next one, so nothing is copied.
#ifndef COOP_GENERATOR_HPP
#define COOP_GENERATOR_HPP

#include <coop/coroutine.hpp>

#include <iterator>
#include <optional>
#include <utility>

namespace coop {

template <class T>
class generator {
public:
    class sink {
    public:
        // Hand v to the consumer; returns when it asks for the next value.
        void operator()(const T& v) { y_.yield(const_cast<T*>(std::addressof(v))); }
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
        T& operator*() const noexcept { return *g_->cur_; }
        T* operator->() const noexcept { return g_->cur_; }
        iterator& operator++() {
            g_->advance();
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
            return it.at_end();
        }

    private:
        friend class generator;
        explicit iterator(generator* g) noexcept : g_(g) {}
        bool at_end() const noexcept { return !g_ || g_->cur_ == nullptr; }
        generator* g_ = nullptr;
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

    // Starts the generator if it has not started; iterating twice continues
    // where the first loop stopped (it is a single-pass sequence).
    iterator begin() {
        if (!co_.started()) advance();
        return iterator(this);
    }
    std::default_sentinel_t end() const noexcept { return {}; }

    // The next value, or nullopt when the body has returned.
    std::optional<T> next() {
        if (co_.done()) return std::nullopt;
        advance();
        if (!cur_) return std::nullopt;
        return std::optional<T>(std::move(*cur_));
    }

    bool done() const noexcept { return co_.done(); }

private:
    void advance() {
        if (co_.done()) {
            cur_ = nullptr;
            return;
        }
        cur_ = static_cast<T*>(co_.resume());
        if (co_.done()) cur_ = nullptr;
    }

    coroutine co_;
    T* cur_ = nullptr;
};

} // namespace coop

#endif
