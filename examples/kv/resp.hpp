// examples/kv/resp.hpp — RESP2, the Redis protocol: requests in (arrays of
// bulk strings, and inline commands), replies out.
//
// Requests. parser::next() takes the unconsumed bytes of a connection's read
// buffer and finds the next complete command in them. Arguments are views
// into that buffer (no copy) for multi-bulk requests; inline commands, whose
// quoting and escapes change the bytes, are unquoted into the parser's own
// storage. A command that has not fully arrived is remembered where parsing
// stopped, so a request trickling in byte by byte costs linear time.
//
// What the parser accepts is Redis's request syntax, with the same error
// messages, and these differences: a length line or bulk must end in "\r\n"
// (Redis skips the two bytes without looking); one argument is at most
// limits::max_bulk bytes and one command at most limits::max_args arguments
// (Redis: 512 MiB and 2^31 - 1). Every protocol error ends the connection
// after its error reply, as in Redis.
//
// Replies. outbuf is a growable byte buffer with one append per RESP type;
// a connection's replies to a whole batch of pipelined commands go out of it
// in one write.
#ifndef COOP_KV_RESP_HPP
#define COOP_KV_RESP_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kv::resp {

struct limits {
    // An inline command line, or the "*N" / "$N" line of a multi-bulk
    // request, must end within this many bytes (Redis's 64 KiB).
    std::size_t max_inline = 64 * 1024;
    // One bulk argument (Redis's proto-max-bulk-len, 512 MiB there).
    std::size_t max_bulk = 16u << 20;
    // Arguments of one command.
    std::size_t max_args = 1u << 20;
};

class parser {
public:
    enum class status {
        command,     // args() holds a command (possibly empty: ignore it), consumed() bytes long
        need_more,   // a command has started and is not complete yet
        error,       // malformed: reply error_message(), then close the connection
    };

    explicit parser(const limits& lim = {}) : lim_(lim) {}

    // Looks for the next command at the start of [data, data + len). `data`
    // must be the first unconsumed byte; when the previous call returned
    // need_more, the same bytes again (the buffer may have moved) plus what
    // arrived since.
    status next(const char* data, std::size_t len);

    // After status::command: the arguments, valid until the buffer changes
    // or next() is called again, and the bytes the command took.
    std::span<const std::string_view> args() const noexcept { return {argv_.data(), argv_.size()}; }
    std::size_t consumed() const noexcept { return consumed_; }

    // After status::error: the error reply's text, e.g.
    // "ERR Protocol error: invalid bulk length" (no '-', no CRLF).
    const std::string& error_message() const noexcept { return error_; }

    // True while a command has started and not completed.
    bool pending() const noexcept { return mode_ != mode::none; }

private:
    enum class mode : std::uint8_t { none, inline_cmd, multibulk };

    status parse_inline(const char* data, std::size_t len);
    status parse_multibulk(const char* data, std::size_t len);
    status fail(const char* msg);
    status done(std::size_t consumed);
    void reset() noexcept;

    limits lim_;
    mode mode_ = mode::none;
    // Where the search for the next line end resumes (offset from the
    // command's first byte), so partial lines are not rescanned.
    std::size_t scan_ = 0;
    // Multi-bulk: arguments announced by "*N" (-1: not read yet), offset of
    // the next element, and the length announced by its "$N" (-1: not read).
    std::int64_t expect_args_ = -1;
    std::size_t pos_ = 0;
    std::int64_t bulk_len_ = -1;
    // Where data pointed when argv_ was filled (argv_ views are rebased if
    // the buffer moved between calls).
    const char* base_ = nullptr;
    std::vector<std::string_view> argv_;
    std::string inline_store_;
    std::size_t consumed_ = 0;
    std::string error_;
};

// Strict decimal integer, as Redis parses numbers in commands and protocol
// headers: optional '-', no '+', no spaces, no leading zeros, no "-0", must
// fit in int64. Returns false otherwise.
bool parse_int64(std::string_view s, std::int64_t& out) noexcept;

// Decimal digits of v into buf (at least 20 bytes); returns the length.
std::size_t format_int64(std::int64_t v, char* buf) noexcept;

// Reply buffer.
class outbuf {
public:
    outbuf() = default;
    outbuf(const outbuf&) = delete;
    outbuf& operator=(const outbuf&) = delete;
    ~outbuf() { delete[] data_; }

    const char* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return cap_; }
    bool empty() const noexcept { return size_ == 0; }
    void clear() noexcept { size_ = 0; }
    // Drop what was appended after the first n bytes.
    void truncate(std::size_t n) noexcept {
        if (n < size_) size_ = n;
    }
    // Give back memory after a large reply (capacity above `keep`).
    void shrink(std::size_t keep);

    void raw(const char* p, std::size_t n) {
        char* w = reserve(n);
        std::memcpy(w, p, n);
        size_ += n;
    }
    void raw(std::string_view s) { raw(s.data(), s.size()); }
    // "+s\r\n"
    void simple(std::string_view s);
    // "-msg\r\n"; msg starts with the error code ("ERR ...", "NOPROTO ..."),
    // and CR/LF in it become spaces (as Redis does).
    void error(std::string_view msg);
    // ":v\r\n"
    void integer(std::int64_t v);
    // "$len\r\ns\r\n"
    void bulk(std::string_view s);
    // "$-1\r\n"
    void null_bulk() { raw("$-1\r\n", 5); }
    // "*n\r\n"
    void array(std::size_t n);

    // At least n writable bytes at data() + size(); commit with commit(n).
    char* reserve(std::size_t n) {
        if (cap_ - size_ < n) grow(n);
        return data_ + size_;
    }
    void commit(std::size_t n) noexcept { size_ += n; }

private:
    void grow(std::size_t n);
    // "<c><v>\r\n"
    void prefixed_number(char c, std::int64_t v);
    char* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t cap_ = 0;
};

} // namespace kv::resp

#endif
