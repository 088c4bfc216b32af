// examples/kv/server.cpp — the connection loop of coop-kv, and what each
// reactor keeps of the server: its connections, its expiry task, shutdown.
//
// Cancellation. A connection's task hands other reactors closures
// (keyspace::on_owner, which is coop::runtime::call_on) that use what lives
// on its stack and in its buffers: the arguments (views into the read
// buffer), the reply buffer, the session. call_on returns ECANCELED at once
// when the waiting task is canceled, while the closure may still be running
// on the owner, which would then write into freed memory. Making every
// closure own its inputs and outputs would cost an allocation and a copy
// per hop, of the arguments and again of the replies (a 16 MiB SET copied
// once more on its way). coop-kv instead makes sure the case never arises:
//   1. nothing cancels a connection's task while the runtime runs: shutdown
//      shuts the connections' sockets down (server::shut_down_here), and
//      each task finishes the command it is in, a hop in progress included,
//      then fails its next read or write and ends by itself;
//   2. closures never park (store operations and reply formatting only: no
//      I/O, no waiting), so one that has started on the owner finishes
//      before that reactor runs anything else or stops;
//   3. tasks are canceled only by the runtime's teardown (main stops the
//      runtime when a shutdown takes longer than its grace period), which
//      runs after every reactor thread has left run(): no closure runs any
//      more then, and one still queued belongs to a call its caller has
//      withdrawn, which is dropped unrun.
// tests/kv_test.cpp shuts the server down with pipelines of cross-shard
// commands in flight, under ASan in `make check-asan`.
#include "kv/server.hpp"

#include <coop/io.hpp>
#include <coop/reactor.hpp>
#include <coop/runtime.hpp>

#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace kv {

namespace {

// The bytes read from a client and not yet consumed: [start, end) of data.
class inbuf {
public:
    explicit inbuf(std::size_t cap) : data_(alloc(cap)), cap_(cap) {}
    ~inbuf() { std::free(data_); }
    inbuf(const inbuf&) = delete;
    inbuf& operator=(const inbuf&) = delete;

    const char* begin() const noexcept { return data_ + start_; }
    std::size_t size() const noexcept { return end_ - start_; }
    std::size_t capacity() const noexcept { return cap_; }
    char* tail() noexcept { return data_ + end_; }
    std::size_t room() const noexcept { return cap_ - end_; }
    void filled(std::size_t n) noexcept { end_ += n; }
    void clear() noexcept { start_ = end_ = 0; }
    void consume(std::size_t n) noexcept {
        start_ += n;
        if (start_ == end_) start_ = end_ = 0;     // empty: the next read starts at the front
    }

    // Room for the next read: moves the unconsumed bytes to the front when
    // less than a quarter of the buffer is free, and doubles the buffer (up
    // to max) when one unfinished command fills more than three quarters of
    // it. Returns false when that command has filled max bytes.
    bool make_room(std::size_t max) {
        if (room() >= cap_ / 4) return true;
        if (start_ > 0) {
            std::memmove(data_, data_ + start_, size());
            end_ -= start_;
            start_ = 0;
            if (room() >= cap_ / 4) return true;
        }
        if (cap_ >= max) return room() > 0;
        const std::size_t cap = cap_ * 2 < max ? cap_ * 2 : max;
        char* d = alloc(cap);
        std::memcpy(d, data_, end_);
        std::free(data_);
        data_ = d;
        cap_ = cap;
        return true;
    }

    // Back to `cap` bytes once empty, when a large request left the buffer
    // above `above` bytes.
    void shrink(std::size_t above, std::size_t cap) noexcept {
        if (cap_ <= above || size() != 0) return;
        if (char* d = static_cast<char*>(std::malloc(cap))) {
            std::free(data_);
            data_ = d;
            cap_ = cap;
            start_ = end_ = 0;
        }
    }

private:
    static char* alloc(std::size_t n) {
        auto* p = static_cast<char*>(std::malloc(n));
        if (!p) throw std::bad_alloc();
        return p;
    }
    char* data_;
    std::size_t cap_;
    std::size_t start_ = 0;
    std::size_t end_ = 0;
};

} // namespace

void serve_connection(int fd, engine& eng, const conn_limits& lim, session& sess) {
    inbuf in(lim.read_buffer);
    resp::outbuf out;
    resp::parser parser(lim.proto);
    keyspace& keys = eng.keys();
    millis now = 0;

    // Pipelined single-key commands for one shard of another reactor,
    // parsed and not run yet: the run goes there in one hop. Their
    // arguments are views into `in`, copied out of the parser; they stay
    // valid because the run is over before the next read.
    struct queued {
        std::size_t first_arg;
        std::size_t args;
        prepared p;
    };
    std::vector<std::string_view> run_args;
    std::vector<queued> run;
    unsigned run_shard = 0;

    // Writes the pending replies; false if the client is gone.
    auto flush = [&]() -> bool {
        if (out.empty()) return true;
        const bool ok = !coop::io::write_all(fd, out.data(), out.size()).error;
        out.clear();
        return ok;
    };
    // Replies that reached flush_at go out before another command runs:
    // the task parks until the client has taken them, and is not reading
    // from it meanwhile, so a client that never reads stops here.
    auto flush_if_due = [&]() -> bool {
        if (out.size() < lim.flush_at) return true;
        if (!flush()) return false;
        now = unix_millis();
        return true;
    };

    // Runs the queued run on its shard's reactor, in order: one hop, or
    // more when the replies reach flush_at first (they are written out here
    // between hops). False if the client is gone.
    auto run_queued = [&]() -> bool {
        std::size_t i = 0;
        while (i < run.size()) {
            i += keys.on_owner(run_shard, [&]() -> std::size_t {
                std::size_t k = i;
                while (k < run.size()) {
                    const queued& q = run[k++];
                    eng.run(q.p, {run_args.data() + q.first_arg, q.args}, sess, out, now);
                    if (out.size() >= lim.flush_at) break;
                }
                return k - i;
            });
            if (!flush_if_due()) return false;
        }
        run.clear();
        run_args.clear();
        return true;
    };

    // Ends a connection the server gives up on while the client may still
    // be sending: the last replies go out, then our side of the stream is
    // shut, and what the client still sends is read and dropped (for a
    // second at most) before the close. Closing with unread input would
    // reset the connection, and a reset can destroy the error reply before
    // the client has read it.
    auto close_gently = [&] {
        if (!flush()) return;
        ::shutdown(fd, SHUT_WR);
        in.clear();
        const coop::deadline until(std::chrono::seconds(1));
        for (;;) {
            const coop::io::result r = coop::io::read(fd, in.tail(), in.room(), until);
            if (r.error || r.size == 0) return;
        }
    };

    for (;;) {
        if (!in.make_room(lim.max_request)) {
            out.error("ERR Protocol error: request too large");
            return close_gently();
        }
        const coop::io::result r = coop::io::read(fd, in.tail(), in.room());
        if (r.error || r.size == 0) return;              // reset, EOF, shutdown
        in.filled(r.size);

        now = unix_millis();
        while (in.size() > 0) {
            const resp::parser::status st = parser.next(in.begin(), in.size());
            if (st == resp::parser::status::need_more) break;
            if (st == resp::parser::status::error) {
                if (!run_queued()) return;
                out.error(parser.error_message());
                return close_gently();
            }
            const std::span<const std::string_view> argv = parser.args();
            if (argv.empty()) {
                in.consume(parser.consumed());
                continue;
            }
            const prepared p = eng.prepare(argv);
            if (p.single_key && !keys.is_local(p.key.shard) && !parser.args_in_parser()) {
                if (!run.empty() && run_shard != p.key.shard && !run_queued()) return;
                run_shard = p.key.shard;
                run.push_back({run_args.size(), argv.size(), p});
                run_args.insert(run_args.end(), argv.begin(), argv.end());
                in.consume(parser.consumed());
                if (run.size() >= lim.hop_commands && !run_queued()) return;
                continue;
            }
            // Everything else runs here, after the run before it. An inline
            // command's arguments are the parser's and change with the next
            // parse, so it is not queued: its key, if remote, is its own hop.
            if (!run_queued()) return;
            const std::size_t replies_before = out.size();
            eng.run(p, argv, sess, out, now);
            in.consume(parser.consumed());
            if (sess.reply_overflow) {
                out.truncate(replies_before);       // the unfinished reply is not sent
                return close_gently();
            }
            if (sess.close_after_reply) return close_gently();
            if (!flush_if_due()) return;
        }
        if (!run_queued()) return;
        if (!flush()) return;
        out.shrink(lim.flush_at * 2);
        in.shrink(lim.read_buffer * 4, lim.read_buffer);
    }
}

// ---------------------------------------------------------------- server

server::server(engine& eng, conn_limits lim, std::size_t reactors) : eng_(eng), lim_(lim) {
    locals_.reserve(reactors);
    for (std::size_t i = 0; i < reactors; ++i) locals_.push_back(std::make_unique<reactor_local>());
}

void server::serve(int fd) {
    reactor_local& local = *locals_[coop::runtime::current_index()];
    if (local.stopping) {
        coop::close(fd);
        return;
    }
    // Registered while served; unlinked and closed however the task ends
    // (forced_unwind at teardown included). Unlinked before the close, so
    // shut_down_here() never reaches a reused fd number.
    struct registration {
        server& srv;
        reactor_local& local;
        conn_link link;
        registration(server& s, reactor_local& l, int fd) : srv(s), local(l), link{fd} {
            link.next = local.conns;
            if (link.next) link.next->prev = &link;
            local.conns = &link;
            srv.live_.fetch_add(1, std::memory_order_relaxed);
        }
        ~registration() {
            if (link.prev) link.prev->next = link.next; else local.conns = link.next;
            if (link.next) link.next->prev = link.prev;
            srv.live_.fetch_sub(1, std::memory_order_relaxed);
            coop::close(link.fd);
        }
    } reg(*this, local, fd);

    session sess;
    sess.id = next_id_.fetch_add(1, std::memory_order_relaxed);
    sess.fd = fd;
    sess.reactor = static_cast<unsigned>(coop::runtime::current_index());
    // Out of memory serving one client costs that client its connection,
    // not the server. coop::forced_unwind is no std::exception and passes
    // through.
    try {
        serve_connection(fd, eng_, lim_, sess);
    } catch (const shard_unreachable&) {
        // The runtime is being torn down: the connection just ends.
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coop-kv: connection %llu closed: %s\n", static_cast<unsigned long long>(sess.id),
                     e.what());
    }
}

void server::expire_loop(unsigned shard) {
    reactor_local& local = *locals_[shard];
    store& st = eng_.keys().shard(shard);
    for (;;) {
        char none;
        // Ten times a second (Redis's default hz); ends when the channel
        // closes (shut_down_here) or the task is canceled (teardown).
        if (local.expiry_stop.recv(none, std::chrono::milliseconds(100)) != std::errc::timed_out) return;
        st.expire_cycle(unix_millis(), std::chrono::steady_clock::now() + std::chrono::milliseconds(2));
    }
}

void server::shut_down_here() {
    reactor_local& local = *locals_[coop::runtime::current_index()];
    local.stopping = true;
    local.expiry_stop.close();
    // Each connection's next read or write fails (its task may be parked in
    // one: the kernel reports the shutdown to the poller), and its task
    // ends after the command it is running.
    for (conn_link* c = local.conns; c; c = c->next) ::shutdown(c->fd, SHUT_RDWR);
}

} // namespace kv
