// examples/kv/commands.hpp — the command engine of coop-kv: looks a command
// up, checks its arity and runs it against the keyspace, appending the reply.
// Commands reach a key's shard through keyspace::on_shard(), on whichever
// reactor they run; multi-key commands (MGET, MSET, DEL, EXISTS) group their
// keys by shard and make one hop per shard (per 1024 keys of a shard).
//
// Commands: PING ECHO GET SET DEL EXISTS INCR DECR MGET MSET EXPIRE PEXPIRE
// EXPIREAT PEXPIREAT TTL PTTL PERSIST DBSIZE FLUSHALL FLUSHDB SELECT QUIT
// HELLO CLIENT CONFIG COMMAND. Replies and error texts are Redis 7.0's,
// byte for byte, except where the server differs: the names HELLO reports,
// one database (SELECT 0 only), RESP2 only (HELLO 3 answers NOPROTO),
// CONFIG SET changes nothing (it accepts a parameter's current value, as
// in "CONFIG SET save ''"), COMMAND INFO/DOCS describe these commands
// only, and CLIENT INFO gives a few of Redis's fields plus reactor=N.
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
    int fd = -1;                     // CLIENT INFO's addresses
    unsigned reactor = 0;            // the reactor serving the connection (CLIENT INFO)
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

struct command_def;

// A command looked up, and where it must run.
struct prepared {
    const command_def* def = nullptr;  // null: unknown (run() replies the error)
    // A command of one key (GET, SET, INCR, EXPIRE, TTL, ...) with a valid
    // argument count: it touches that key only, so it may run entirely on
    // the reactor that owns the key's shard. Others (no key, several keys,
    // an error reply) run where the connection is, and reach shards
    // themselves.
    bool single_key = false;
    keyspace::route key{};            // argv[1]'s route, when single_key
};

class engine {
public:
    engine(keyspace& ks, server_config cfg);

    // Look the command up (argv not empty). Cheap: no shard is touched.
    prepared prepare(std::span<const std::string_view> argv) const noexcept;

    // Run a prepared command and append its reply to out. `now` is the
    // Unix time in ms the command runs at. A single-key command may run on
    // its shard's reactor (with the connection's session and buffer, the
    // connection's task waiting); anything else runs on the connection's
    // reactor.
    void run(const prepared& p, std::span<const std::string_view> argv, session& s, resp::outbuf& out, millis now);

    // prepare() and run().
    void execute(std::span<const std::string_view> argv, session& s, resp::outbuf& out, millis now) {
        run(prepare(argv), argv, s, out, now);
    }

    keyspace& keys() noexcept { return ks_; }
    const server_config& config() const noexcept { return cfg_; }
    // The port CONFIG GET reports (known once the server listens).
    void set_port(unsigned port) noexcept { cfg_.port = port; }

private:
    keyspace& ks_;
    server_config cfg_;
};

} // namespace kv

#endif
