// examples/rendezvous.cpp — a coroutine that yields "Hello" and finishes
// with "World", driven by hand the way one calls next(it) on an iterator.
//
//   $ build/x86_64/bin/coop-rendezvous
//   Hello
//   World
#include <coop/coroutine.hpp>

#include <cstdio>

namespace {

// One step of the awaitable: run it to its next yield or to its end, and
// return what it produced there.
const char* next(coop::coroutine& it) {
    return static_cast<const char*>(it.resume());
}

} // namespace

int main() {
    // The body yields its first word and returns its last one: resume()
    // hands back the yielded pointer first and the returned one at the end.
    coop::coroutine greeting([](coop::yielder& yield) -> const char* {
        yield(const_cast<char*>("Hello"));
        return "World";
    });

    std::puts(next(greeting));   // runs the body up to its yield
    std::puts(next(greeting));   // resumes it; the body returns
    return greeting.done() ? 0 : 1;
}
