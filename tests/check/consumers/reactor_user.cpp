// tests/check/consumers/reactor_user.cpp — a C++ program using the installed
// headers the way users do (coroutine, generator, reactor, channel, io), built
// against an installed coop with pkg-config. Exits 0 when everything ran.
#include <coop/channel.hpp>
#include <coop/coroutine.hpp>
#include <coop/generator.hpp>
#include <coop/io.hpp>
#include <coop/reactor.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>

using namespace std::chrono_literals;

int main() {
    int sum = 0;
    coop::generator<int> g([](coop::generator<int>::sink& out) {
        for (int i = 1; i <= 4; ++i) out(i);
    });
    for (int v : g) sum += v;
    if (sum != 10) return 1;

    // An exception thrown inside a task crosses the library and is caught by
    // the joiner: the exception types' typeinfo must be one across libcoop.so.
    coop::reactor r;
    coop::channel<int> ch(1);
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) return 1;
    bool caught = false;
    char got = 0;
    r.spawn([&] {
        coop::task t = coop::this_reactor().spawn([] { throw std::runtime_error("x"); });
        try {
            t.join();
        } catch (const std::runtime_error&) {
            caught = true;
        }
        coop::sleep_for(1ms);
        (void)ch.send(7);
        (void)coop::io::write_all(fds[0], "k", 1);
    });
    r.spawn([&] {
        int v = 0;
        (void)ch.recv(v, 1s);
        sum += v;
        (void)coop::io::read_exact(fds[1], &got, 1, 1s);
    });
    r.run();
    coop::close(fds[0]);
    coop::close(fds[1]);
    if (!caught || sum != 17 || got != 'k') return 1;
    std::printf("reactor_user: ok (%s)\n", r.backend());
    return 0;
}
