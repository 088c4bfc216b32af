// examples/kv/server.hpp — one coop-kv client connection, served by one
// task: read, run every complete command in what arrived, write all their
// replies at once, repeat.
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
#ifndef COOP_KV_SERVER_HPP
#define COOP_KV_SERVER_HPP

#include "kv/commands.hpp"
#include "kv/resp.hpp"

#include <cstddef>
#include <cstdint>

namespace kv {

struct conn_limits {
    resp::limits proto;
    std::size_t read_buffer = 16 * 1024;
    // One command's bytes, framing included.
    std::size_t max_request = 64u << 20;
    // Pending replies are written out once they reach this size.
    std::size_t flush_at = 64 * 1024;
};

// Serve the connection on fd (non-blocking) until the client closes it,
// QUITs, breaks the protocol or a limit is hit; then close it with
// coop::close. Runs inside a reactor task.
void serve_connection(int fd, engine& eng, const conn_limits& lim, std::uint64_t id);

} // namespace kv

#endif
