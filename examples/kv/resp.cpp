// examples/kv/resp.cpp — RESP2 request parser and reply buffer.
#include "kv/resp.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <new>

namespace kv::resp {

// ---------------------------------------------------------------- numbers

bool parse_int64(std::string_view s, std::int64_t& out) noexcept {
    const std::size_t n = s.size();
    if (n == 0 || n > 20) return false;
    if (n == 1 && s[0] == '0') {
        out = 0;
        return true;
    }
    std::size_t i = 0;
    const bool neg = s[0] == '-';
    if (neg && ++i == n) return false;
    if (s[i] < '1' || s[i] > '9') return false;     // no leading zero, no '+', no space
    // Accumulate as unsigned; the magnitude of INT64_MIN is one above INT64_MAX.
    std::uint64_t v = static_cast<std::uint64_t>(s[i] - '0');
    for (++i; i < n; ++i) {
        const char c = s[i];
        if (c < '0' || c > '9') return false;
        const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
        if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
        v = v * 10 + d;
    }
    constexpr std::uint64_t max_pos = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (neg) {
        if (v > max_pos + 1) return false;
        out = v == max_pos + 1 ? std::numeric_limits<std::int64_t>::min() : -static_cast<std::int64_t>(v);
    } else {
        if (v > max_pos) return false;
        out = static_cast<std::int64_t>(v);
    }
    return true;
}

std::size_t format_int64(std::int64_t v, char* buf) noexcept {
    std::uint64_t u = v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
    char tmp[20];
    std::size_t n = 0;
    do {
        tmp[n++] = static_cast<char>('0' + u % 10);
        u /= 10;
    } while (u);
    std::size_t k = 0;
    if (v < 0) buf[k++] = '-';
    while (n) buf[k++] = tmp[--n];
    return k;
}

// ---------------------------------------------------------------- parser

namespace {

bool is_inline_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Splits an inline command line into arguments with Redis's quoting rules:
// whitespace separates; "double quotes" understand \n \r \t \b \a \xHH and
// backslash before any other byte; 'single quotes' understand \' only; a
// closing quote must be followed by whitespace or the end of the line. A NUL
// byte ends the line. Unquoted bytes go to `store` as they are. Returns
// false on unbalanced quotes. `store` must have capacity for the whole line
// (argument views point into it).
bool split_inline(std::string_view line, std::string& store, std::vector<std::string_view>& argv) {
    const char* p = line.data();
    const char* end = p + line.size();
    if (const void* nul = std::memchr(p, '\0', line.size())) end = static_cast<const char*>(nul);
    store.clear();
    for (;;) {
        while (p < end && is_inline_space(*p)) ++p;
        if (p == end) return true;
        const std::size_t start = store.size();
        bool in_dq = false, in_sq = false;
        for (;;) {
            if (in_dq) {
                if (p == end) return false;
                if (p[0] == '\\' && end - p >= 4 && p[1] == 'x' && hex_value(p[2]) >= 0 && hex_value(p[3]) >= 0) {
                    store.push_back(static_cast<char>(hex_value(p[2]) * 16 + hex_value(p[3])));
                    p += 4;
                } else if (p[0] == '\\' && end - p >= 2) {
                    char c = p[1];
                    switch (c) {
                        case 'n': c = '\n'; break;
                        case 'r': c = '\r'; break;
                        case 't': c = '\t'; break;
                        case 'b': c = '\b'; break;
                        case 'a': c = '\a'; break;
                        default: break;
                    }
                    store.push_back(c);
                    p += 2;
                } else if (p[0] == '"') {
                    if (p + 1 < end && !is_inline_space(p[1])) return false;
                    ++p;
                    break;
                } else {
                    store.push_back(*p++);
                }
            } else if (in_sq) {
                if (p == end) return false;
                if (p[0] == '\\' && end - p >= 2 && p[1] == '\'') {
                    store.push_back('\'');
                    p += 2;
                } else if (p[0] == '\'') {
                    if (p + 1 < end && !is_inline_space(p[1])) return false;
                    ++p;
                    break;
                } else {
                    store.push_back(*p++);
                }
            } else {
                if (p == end || *p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') break;
                if (*p == '"') {
                    in_dq = true;
                } else if (*p == '\'') {
                    in_sq = true;
                } else {
                    store.push_back(*p);
                }
                ++p;
            }
        }
        argv.emplace_back(store.data() + start, store.size() - start);
    }
}

} // namespace

void parser::reset() noexcept {
    mode_ = mode::none;
    scan_ = 0;
    expect_args_ = -1;
    pos_ = 0;
    bulk_len_ = -1;
    base_ = nullptr;
}

parser::status parser::fail(const char* msg) {
    error_ = msg;
    reset();
    argv_.clear();
    return status::error;
}

parser::status parser::done(std::size_t consumed) {
    consumed_ = consumed;
    reset();
    return status::command;
}

parser::status parser::next(const char* data, std::size_t len) {
    if (mode_ == mode::none) {
        argv_.clear();
        if (len == 0) return status::need_more;
        mode_ = data[0] == '*' ? mode::multibulk : mode::inline_cmd;
    }
    return mode_ == mode::multibulk ? parse_multibulk(data, len) : parse_inline(data, len);
}

parser::status parser::parse_inline(const char* data, std::size_t len) {
    const void* nl = std::memchr(data + scan_, '\n', len - scan_);
    if (!nl) {
        if (len > lim_.max_inline) return fail("ERR Protocol error: too big inline request");
        scan_ = len;
        return status::need_more;
    }
    const std::size_t eol = static_cast<std::size_t>(static_cast<const char*>(nl) - data);
    if (eol > lim_.max_inline) return fail("ERR Protocol error: too big inline request");
    std::size_t line_len = eol;
    if (line_len > 0 && data[line_len - 1] == '\r') --line_len;
    // Views into inline_store_ stay valid only if it never reallocates
    // while splitting: an argument is never longer than the line.
    inline_store_.reserve(line_len);
    argv_.clear();
    if (!split_inline(std::string_view(data, line_len), inline_store_, argv_))
        return fail("ERR Protocol error: unbalanced quotes in request");
    return done(eol + 1);
}

parser::status parser::parse_multibulk(const char* data, std::size_t len) {
    // The previous call stored views into a buffer that has moved since.
    if (base_ && base_ != data && !argv_.empty()) {
        for (auto& a : argv_) a = std::string_view(data + (a.data() - base_), a.size());
    }
    base_ = data;

    // Reads the "*N" or "$N" line at pos_ into value and line_end.
    enum class line { ok, incomplete, malformed, too_long };
    auto header = [&](std::int64_t& value, std::size_t& line_end) -> line {
        // Fast path for what clients send: 1 to 9 digits, no leading zero
        // (or a lone "0"), then "\r\n", all already here.
        if (scan_ == 0 && len - pos_ >= 4) {
            const char* p = data + pos_ + 1;
            const char* end = data + std::min(len, pos_ + 12);
            std::int64_t v = *p - '0';
            if (v >= 1 && v <= 9) {
                for (++p; p < end && *p >= '0' && *p <= '9'; ++p) v = v * 10 + (*p - '0');
            } else if (v == 0) {
                ++p;
            }
            if (p > data + pos_ + 1 && p + 1 < end && p[0] == '\r' && p[1] == '\n' && p - data - pos_ <= 10) {
                value = v;
                line_end = static_cast<std::size_t>(p - data) + 2;
                return line::ok;
            }
        }
        const std::size_t from = std::max(scan_, pos_ + 1);
        const void* cr = from < len ? std::memchr(data + from, '\r', len - from) : nullptr;
        if (!cr) {
            if (len - pos_ > lim_.max_inline) return line::too_long;
            scan_ = len;
            return line::incomplete;
        }
        const std::size_t r = static_cast<std::size_t>(static_cast<const char*>(cr) - data);
        if (r + 1 >= len) {
            scan_ = r;          // the '\n' has not arrived
            return line::incomplete;
        }
        scan_ = 0;
        if (data[r + 1] != '\n' || !parse_int64(std::string_view(data + pos_ + 1, r - pos_ - 1), value))
            return line::malformed;
        line_end = r + 2;
        return line::ok;
    };

    if (expect_args_ < 0) {
        std::int64_t n = 0;
        std::size_t line_end = 0;
        switch (header(n, line_end)) {
            case line::ok: break;
            case line::incomplete: return status::need_more;
            case line::malformed: return fail("ERR Protocol error: invalid multibulk length");
            case line::too_long: return fail("ERR Protocol error: too big mbulk count string");
        }
        if (n > static_cast<std::int64_t>(lim_.max_args)) return fail("ERR Protocol error: invalid multibulk length");
        if (n <= 0) return done(line_end);                        // "*0", "*-1": nothing to run
        expect_args_ = n;
        pos_ = line_end;
        argv_.reserve(static_cast<std::size_t>(std::min<std::int64_t>(n, 1024)));
    }

    while (static_cast<std::int64_t>(argv_.size()) < expect_args_) {
        if (bulk_len_ < 0) {
            if (pos_ >= len) return status::need_more;
            if (data[pos_] != '$') {
                char msg[64];
                std::snprintf(msg, sizeof msg, "ERR Protocol error: expected '$', got '%c'", data[pos_]);
                return fail(msg);
            }
            std::int64_t n = 0;
            std::size_t line_end = 0;
            switch (header(n, line_end)) {
                case line::ok: break;
                case line::incomplete: return status::need_more;
                case line::malformed: return fail("ERR Protocol error: invalid bulk length");
                case line::too_long: return fail("ERR Protocol error: too big bulk count string");
            }
            if (n < 0 || static_cast<std::uint64_t>(n) > lim_.max_bulk)
                return fail("ERR Protocol error: invalid bulk length");
            bulk_len_ = n;
            pos_ = line_end;
        }
        const std::size_t blen = static_cast<std::size_t>(bulk_len_);
        if (len - pos_ < blen + 2) return status::need_more;
        if (data[pos_ + blen] != '\r' || data[pos_ + blen + 1] != '\n')
            return fail("ERR Protocol error: bulk data not followed by CRLF");
        argv_.emplace_back(data + pos_, blen);
        pos_ += blen + 2;
        bulk_len_ = -1;
    }
    return done(pos_);
}

// ---------------------------------------------------------------- replies

void outbuf::grow(std::size_t n) {
    std::size_t cap = cap_ ? cap_ : 4096;
    while (cap - size_ < n) cap *= 2;
    char* d = new char[cap];
    if (size_) std::memcpy(d, data_, size_);
    delete[] data_;
    data_ = d;
    cap_ = cap;
}

void outbuf::shrink(std::size_t keep) {
    if (cap_ <= keep || size_ > keep) return;
    char* d = new (std::nothrow) char[keep];
    if (!d) return;
    if (size_) std::memcpy(d, data_, size_);
    delete[] data_;
    data_ = d;
    cap_ = keep;
}

void outbuf::prefixed_number(char c, std::int64_t v) {
    char* w = reserve(24);
    w[0] = c;
    std::size_t n = 1 + format_int64(v, w + 1);
    w[n] = '\r';
    w[n + 1] = '\n';
    size_ += n + 2;
}

void outbuf::simple(std::string_view s) {
    char* w = reserve(s.size() + 3);
    w[0] = '+';
    std::memcpy(w + 1, s.data(), s.size());
    w[s.size() + 1] = '\r';
    w[s.size() + 2] = '\n';
    size_ += s.size() + 3;
}

void outbuf::error(std::string_view msg) {
    char* w = reserve(msg.size() + 3);
    w[0] = '-';
    for (std::size_t i = 0; i < msg.size(); ++i) {
        const char c = msg[i];
        w[i + 1] = (c == '\r' || c == '\n') ? ' ' : c;
    }
    w[msg.size() + 1] = '\r';
    w[msg.size() + 2] = '\n';
    size_ += msg.size() + 3;
}

void outbuf::integer(std::int64_t v) { prefixed_number(':', v); }

void outbuf::array(std::size_t n) { prefixed_number('*', static_cast<std::int64_t>(n)); }

void outbuf::bulk(std::string_view s) {
    char* w = reserve(s.size() + 32);
    w[0] = '$';
    std::size_t n = 1 + format_int64(static_cast<std::int64_t>(s.size()), w + 1);
    w[n++] = '\r';
    w[n++] = '\n';
    std::memcpy(w + n, s.data(), s.size());
    n += s.size();
    w[n++] = '\r';
    w[n++] = '\n';
    size_ += n;
}

} // namespace kv::resp
