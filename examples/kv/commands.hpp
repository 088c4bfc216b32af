// examples/kv/commands.hpp — the command engine of coop-kv: looks a command
// up, checks its arity and runs it against the keyspace, appending the reply.
//
// Commands: PING ECHO GET SET DEL EXISTS INCR DECR MGET MSET EXPIRE PEXPIRE
// EXPIREAT PEXPIREAT TTL PTTL PERSIST DBSIZE FLUSHALL FLUSHDB SELECT QUIT
// HELLO CLIENT CONFIG COMMAND. Replies and error texts are Redis 7.0's,
// byte for byte, except where the server differs: the names HELLO reports,
// one database (SELECT 0 only), RESP2 only (HELLO 3 answers NOPROTO),
// CONFIG SET changes nothing (it accepts a parameter's current value, as
// in "CONFIG SET save ''"), and COMMAND INFO/DOCS describe these commands
// only.
#ifndef COOP_KV_COMMANDS_HPP
#define COOP_KV_COMMANDS_HPP

#include "kv/resp.hpp"
#include "kv/store.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace kv {

// Per-connection state the commands see.
struct session {
    std::uint64_t id = 0;            // CLIENT ID, HELLO's id
    std::string name;                // CLIENT SETNAME
    bool close_after_reply = false;  // QUIT: send the replies so far, then close
    bool reply_overflow = false;     // a reply outgrew server_config::max_output:
                                     // close without sending it
};

// What CONFIG GET reports and the limits commands enforce.
struct server_config {
    std::string bind = "127.0.0.1";
    unsigned port = 0;
    std::size_t max_bulk = resp::limits{}.max_bulk;
    // A reply buffer growing past this in one command (MGET of many large
    // values) is abandoned and the connection closed.
    std::size_t max_output = 64u << 20;
};

class engine {
public:
    engine(keyspace& ks, server_config cfg);

    // Run one command (argv not empty) and append its reply to out.
    // `now` is the Unix time in ms the command runs at.
    void execute(std::span<const std::string_view> argv, session& s, resp::outbuf& out, millis now);

    keyspace& keys() noexcept { return ks_; }
    const server_config& config() const noexcept { return cfg_; }

private:
    keyspace& ks_;
    server_config cfg_;
};

} // namespace kv

#endif
