// examples/kv/server.hpp — coop-kv's connections: one task per client
// connection, on the reactor the listener handed it to: read, run every
// complete command in what arrived, write all their replies at once, repeat.
//
// Commands whose key belongs to another reactor's shard travel there (see
// kv/store.hpp, keyspace::on_owner): a run of consecutive pipelined
// single-key commands for the same remote shard goes in one hop, and the
// replies are appended in command order, so a pipeline's replies keep their
// order whatever shards its keys live on.
//
// Memory per connection is bounded whatever the client does:
//   - the read buffer starts at conn_limits::read_buffer and grows (by
//     doubling, as bytes actually arrive) only while one command is
//     incomplete, up to max_request; a longer command is answered with an
//     error and the connection closed;
//   - replies pile up to flush_at bytes at most before the task writes them
//     out, and it runs no further command until the client has taken them:
//     a client that never reads stops being read from (its task parks in
//     the write, costing nobody else anything);
//   - a single reply above server_config::max_output closes the connection.
// When the server ends a connection itself (a protocol error, a limit, QUIT)
// it sends the replies due, shuts its side, and drains the client's input
// for up to a second before closing, so the client gets the error reply
// instead of a connection reset.
//
// Shutdown (server::shut_down_here, on every reactor) never cancels a
// connection's task: it shuts the connection's socket down, and the task
// finishes the command it is in (a hop to another reactor included), fails
// its next read or write, and ends. Why: see kv/server.cpp.
#ifndef COOP_KV_SERVER_HPP
#define COOP_KV_SERVER_HPP

#include "kv/commands.hpp"
#include "kv/resp.hpp"

#include <coop/channel.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace kv {

struct conn_limits {
    resp::limits proto;
    std::size_t read_buffer = 16 * 1024;
    // One command's bytes, framing included.
    std::size_t max_request = 64u << 20;
    // Pending replies are written out once they reach this size.
    std::size_t flush_at = 64 * 1024;
    // At most this many pipelined commands go to another reactor in one hop.
    std::size_t hop_commands = 256;
};

// Serve the connection on fd (non-blocking) until the client closes it,
// QUITs, breaks the protocol or a limit is hit. Does not close fd. Runs
// inside a reactor task; sess.fd, id and reactor are set by the caller.
void serve_connection(int fd, engine& eng, const conn_limits& lim, session& sess);

// The connections and background tasks of every reactor of a runtime.
class server {
public:
    server(engine& eng, conn_limits lim, std::size_t reactors);
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // In a task of reactor i (the listener's handler): serve the connection
    // on fd, then close it. A connection that starts after shut_down_here()
    // ran on its reactor is closed at once.
    void serve(int fd);

    // In a task of reactor i: active expiry of shard i, ten times a second,
    // at most 2 ms each time, until shut_down_here() on reactor i.
    void expire_loop(unsigned shard);

    // On reactor i (post it there): stop its expiry task and shut down
    // (SHUT_RDWR) each of its connections; their tasks end by themselves.
    void shut_down_here();

    // Connections being served, on all reactors (any thread).
    long live() const noexcept { return live_.load(std::memory_order_relaxed); }

private:
    // A connection being served, linked into its reactor's list; on the
    // connection task's stack.
    struct conn_link {
        int fd;
        conn_link* prev = nullptr;
        conn_link* next = nullptr;
    };
    // What reactor i alone touches (its thread only).
    struct alignas(64) reactor_local {
        conn_link* conns = nullptr;
        bool stopping = false;
        coop::channel<char> expiry_stop;   // closed by shut_down_here()
    };

    engine& eng_;
    conn_limits lim_;
    std::vector<std::unique_ptr<reactor_local>> locals_;
    // Statistics and the shutdown's wait: relaxed, nothing is published
    // through them.
    std::atomic<long> live_{0};
    std::atomic<std::uint64_t> next_id_{1};
};

} // namespace kv

#endif
