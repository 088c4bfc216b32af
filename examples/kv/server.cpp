// examples/kv/server.cpp — the connection loop of coop-kv.
#include "kv/server.hpp"

#include <coop/io.hpp>
#include <coop/reactor.hpp>

#include <sys/socket.h>

#include <chrono>
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

struct fd_guard {
    int fd;
    ~fd_guard() { coop::close(fd); }
};

} // namespace

void serve_connection(int fd, engine& eng, const conn_limits& lim, std::uint64_t id) {
    fd_guard guard{fd};
    inbuf in(lim.read_buffer);
    resp::outbuf out;
    resp::parser parser(lim.proto);
    session sess;
    sess.id = id;

    // Writes the pending replies; false if the client is gone.
    auto flush = [&]() -> bool {
        if (out.empty()) return true;
        const bool ok = !coop::io::write_all(fd, out.data(), out.size()).error;
        out.clear();
        return ok;
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
        if (r.error || r.size == 0) return;              // reset, EOF, cancel, shutdown
        in.filled(r.size);

        millis now = unix_millis();
        while (in.size() > 0) {
            const resp::parser::status st = parser.next(in.begin(), in.size());
            if (st == resp::parser::status::need_more) break;
            if (st == resp::parser::status::error) {
                out.error(parser.error_message());
                return close_gently();
            }
            const std::size_t replies_before = out.size();
            if (!parser.args().empty()) eng.execute(parser.args(), sess, out, now);
            in.consume(parser.consumed());
            if (sess.reply_overflow) {
                out.truncate(replies_before);       // the unfinished reply is not sent
                return close_gently();
            }
            if (sess.close_after_reply) return close_gently();
            if (out.size() >= lim.flush_at) {
                // Park until the client has taken these; it is not read
                // from meanwhile, so a client that never reads stops here.
                if (!flush()) return;
                now = unix_millis();
            }
        }
        if (!flush()) return;
        out.shrink(lim.flush_at * 2);
        in.shrink(lim.read_buffer * 4, lim.read_buffer);
    }
}

} // namespace kv
