// coop/listener.hpp — accepting TCP connections on every reactor of a
// runtime.
//
//   coop::runtime rt;
//   coop::listener l(rt, {.host = "127.0.0.1", .port = 0}, [](int fd) {
//       serve(fd);                          // a task of the reactor that got fd
//       coop::close(fd);
//   });
//   std::printf("listening on %s:%u\n", l.host().c_str(), l.port());
//   rt.run();                               // until l.close() and the connections end
//
// Two ways to spread connections:
//   - reuseport: every reactor has its own listening socket on the same
//     address (SO_REUSEPORT, Linux and the BSDs); the kernel picks one per
//     connection by a hash of its addresses, and that reactor accepts it.
//     No cross-thread hand-off, but no balance either: with few connections
//     one reactor may get most of them (Seastar measured the same,
//     scylladb/seastar#3514).
//   - round_robin: one socket, accepted by reactor 0, which hands connection
//     k to reactor k mod N through its inbox. Even spread; one hand-off per
//     connection.
// accept_mode::automatic is round_robin: bench/runtime_bench.cpp measures
// both (BM_AcceptSpread), and on the development machine round_robin spread
// connections evenly where reuseport left reactors idle, at a cost per
// connection that a connection of more than a few requests does not notice
// (see README, Many cores). Where SO_REUSEPORT is missing, reuseport falls
// back to round_robin.
//
// The handler gets a non-blocking, close-on-exec fd (TCP_NODELAY set) and
// owns it. Handlers run as detached tasks: an exception escaping one is a
// detached task's (it stops the runtime). close() (any thread) stops
// accepting: the listening sockets are closed on their reactors; handlers
// already running go on.
#ifndef COOP_LISTENER_HPP
#define COOP_LISTENER_HPP

#include <coop/export.h>
#include <coop/runtime.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace coop {

enum class accept_mode { automatic, reuseport, round_robin };

struct listen_options {
    std::string host = "127.0.0.1";  // numeric IPv4 or IPv6 address
    std::uint16_t port = 0;          // 0: any free port (see port())
    int backlog = 1024;
    accept_mode mode = accept_mode::automatic;
};

class listener {
public:
    // Binds and listens (std::system_error when the kernel refuses: address
    // in use, bad host, ...) and starts an accepting task on each reactor
    // that accepts. Call before or during rt.run().
    COOP_API listener(runtime& rt, listen_options o, std::function<void(int fd)> handler);
    // Closes (see close()). Must not outlive the runtime's run() while
    // accepting tasks still run: close() first and let run() end.
    COOP_API ~listener();
    listener(const listener&) = delete;
    listener& operator=(const listener&) = delete;

    // The bound address (the port is the real one when 0 was asked).
    COOP_API std::uint16_t port() const noexcept;
    COOP_API const std::string& host() const noexcept;
    // The mode in effect (automatic resolved).
    COOP_API accept_mode mode() const noexcept;
    // Connections accepted so far that went to reactor i.
    COOP_API std::uint64_t accepted(std::size_t i) const noexcept;
    // From any thread: stop accepting; idempotent.
    COOP_API void close() noexcept;

    struct state;

private:
    std::shared_ptr<state> s_;
};

} // namespace coop

#endif
