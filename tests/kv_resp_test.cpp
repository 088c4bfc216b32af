// tests/kv_resp_test.cpp — coop-kv's RESP2 parser and reply buffer
// (examples/kv/resp.*) on their own: every way a request can be split
// across reads, buffers that move between reads, and the protocol errors.
#include "kv/resp.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

namespace {

using kv::resp::outbuf;
using kv::resp::parser;
using status = parser::status;

using args_t = std::vector<std::string>;

// Everything the parser makes of `input` given in one piece: the commands
// (empty ones included), and the error text if it stopped on one.
struct parsed {
    std::vector<args_t> commands;
    std::string error;
    std::size_t left = 0;      // bytes of an unfinished command
};

parsed parse_all(const std::string& input, const kv::resp::limits& lim = {}) {
    parser p(lim);
    parsed r;
    std::size_t pos = 0;
    while (pos < input.size()) {
        const status st = p.next(input.data() + pos, input.size() - pos);
        if (st == status::need_more) break;
        if (st == status::error) {
            r.error = p.error_message();
            return r;
        }
        args_t a;
        for (auto v : p.args()) a.emplace_back(v);
        r.commands.push_back(a);
        pos += p.consumed();
    }
    r.left = input.size() - pos;
    return r;
}

// The same input fed in pieces of `step` bytes through a buffer that is
// reallocated before every call (so views into the old one would dangle:
// ASan and Valgrind see it).
parsed parse_in_pieces(const std::string& input, std::size_t step) {
    parser p;
    parsed r;
    std::string pending;          // unconsumed bytes, as a connection keeps them
    for (std::size_t fed = 0; fed < input.size();) {
        const std::size_t n = std::min(step, input.size() - fed);
        std::string moved = pending;  // a fresh allocation every round
        moved.append(input, fed, n);
        fed += n;
        pending.swap(moved);
        moved.clear();
        moved.shrink_to_fit();
        std::size_t pos = 0;
        while (pos < pending.size()) {
            const status st = p.next(pending.data() + pos, pending.size() - pos);
            if (st == status::need_more) break;
            if (st == status::error) {
                r.error = p.error_message();
                return r;
            }
            args_t a;
            for (auto v : p.args()) a.emplace_back(v);
            r.commands.push_back(a);
            pos += p.consumed();
        }
        pending.erase(0, pos);
    }
    r.left = pending.size();
    return r;
}

std::string resp_cmd(const args_t& args) {
    std::string s = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& a : args) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    return s;
}

} // namespace

TEST(KvResp, MultiBulkCommandsWithBinaryArguments) {
    const std::string bin("a\0b\r\nc", 6);
    const std::string in = resp_cmd({"SET", "key", bin}) + resp_cmd({"GET", "key"}) + resp_cmd({"ECHO", ""});
    parsed r = parse_all(in);
    EXPECT_EQ(r.error, "");
    ASSERT_EQ(r.commands.size(), 3u);
    EXPECT_EQ(r.commands[0], (args_t{"SET", "key", bin}));
    EXPECT_EQ(r.commands[1], (args_t{"GET", "key"}));
    EXPECT_EQ(r.commands[2], (args_t{"ECHO", ""}));
    EXPECT_EQ(r.left, 0u);
}

TEST(KvResp, EveryFragmentationGivesTheSameCommands) {
    const std::string in = resp_cmd({"SET", "k", std::string(300, 'v')}) + "PING\r\n" + resp_cmd({"MGET", "a", "b", "c"}) +
                           "set 'x y' \"a\\x41\\n\"\n" + "*0\r\n" + resp_cmd({"DEL", "k"});
    const parsed whole = parse_all(in);
    ASSERT_EQ(whole.error, "");
    ASSERT_EQ(whole.commands.size(), 6u);
    EXPECT_EQ(whole.commands[3], (args_t{"set", "x y", "aA\n"}));
    EXPECT_TRUE(whole.commands[4].empty());
    for (std::size_t step : {1u, 2u, 3u, 5u, 7u, 64u, 301u}) {
        const parsed r = parse_in_pieces(in, step);
        EXPECT_EQ(r.error, "") << "step " << step;
        EXPECT_EQ(r.commands, whole.commands) << "step " << step;
        EXPECT_EQ(r.left, 0u) << "step " << step;
    }
}

TEST(KvResp, IncompleteCommandWaitsForMore) {
    for (const std::string in : {"*2\r\n$3\r\nGET\r\n$1\r\nk", "*2\r\n$3\r\nGET\r\n$1\r\n", "*2\r\n$3\r\nGET\r\n$1",
                                 "*2\r\n$3\r\nGET\r\n$1\r", "*2\r", "*", "PING", "PING\r", "set \"a b"}) {
        const parsed r = parse_all(in);
        EXPECT_EQ(r.error, "") << in;
        EXPECT_TRUE(r.commands.empty()) << in;
        EXPECT_EQ(r.left, in.size()) << in;
    }
}

TEST(KvResp, ProtocolErrorsUseRedisMessages) {
    struct tc {
        std::string in, error;
    };
    const tc cases[] = {
        {"*x\r\n", "ERR Protocol error: invalid multibulk length"},
        {"*01\r\n", "ERR Protocol error: invalid multibulk length"},
        {"*+1\r\n", "ERR Protocol error: invalid multibulk length"},
        {"*1\rX", "ERR Protocol error: invalid multibulk length"},
        {"*3000000000\r\n", "ERR Protocol error: invalid multibulk length"},
        {"*1\r\n:4\r\n", "ERR Protocol error: expected '$', got ':'"},
        {"*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"},
        {"*1\r\n$01\r\n", "ERR Protocol error: invalid bulk length"},
        {"*1\r\n$ 1\r\n", "ERR Protocol error: invalid bulk length"},
        {"*1\r\n$536870912\r\n", "ERR Protocol error: invalid bulk length"},
        {"*1\r\n$4\r\nPINGxx", "ERR Protocol error: bulk data not followed by CRLF"},
        {"set \"a b\r\n", "ERR Protocol error: unbalanced quotes in request"},
        {"set 'a\r\n", "ERR Protocol error: unbalanced quotes in request"},
        {"set \"a\"b\r\n", "ERR Protocol error: unbalanced quotes in request"},
        {std::string(70000, 'a'), "ERR Protocol error: too big inline request"},
        {"*" + std::string(70000, '1'), "ERR Protocol error: too big mbulk count string"},
        {"*1\r\n$" + std::string(70000, '1'), "ERR Protocol error: too big bulk count string"},
    };
    for (const tc& c : cases) {
        EXPECT_EQ(parse_all(c.in).error, c.error) << c.in.substr(0, 40);
        // (The long ones in larger pieces: this test copies its buffer at
        // every step.)
        EXPECT_EQ(parse_in_pieces(c.in, c.in.size() < 100 ? 1 : 7).error, c.error) << c.in.substr(0, 40);
    }
}

TEST(KvResp, LimitsAreConfigurable) {
    kv::resp::limits lim;
    lim.max_bulk = 10;
    lim.max_args = 3;
    EXPECT_EQ(parse_all(resp_cmd({"SET", "k", std::string(10, 'v')}), lim).commands.size(), 1u);
    EXPECT_EQ(parse_all(resp_cmd({"SET", "k", std::string(11, 'v')}), lim).error,
              "ERR Protocol error: invalid bulk length");
    EXPECT_EQ(parse_all(resp_cmd({"MGET", "a", "b", "c"}), lim).error, "ERR Protocol error: invalid multibulk length");
}

TEST(KvResp, InlineCommandsFollowRedisQuoting) {
    const parsed r = parse_all("  get   a\r\n\r\n\n"
                               "set k \"tab\\there\\\\ \\\"q\\\" \\x4a\"\n"
                               "set k 'it\\'s \"raw\"'\n"
                               "echo a\"b c\" d\n"
                               "echo \"\\xZZ\"\n");
    ASSERT_EQ(r.error, "");
    ASSERT_EQ(r.commands.size(), 7u);
    EXPECT_EQ(r.commands[0], (args_t{"get", "a"}));
    EXPECT_TRUE(r.commands[1].empty());       // empty lines: nothing to run
    EXPECT_TRUE(r.commands[2].empty());
    EXPECT_EQ(r.commands[3], (args_t{"set", "k", "tab\there\\ \"q\" J"}));
    EXPECT_EQ(r.commands[4], (args_t{"set", "k", "it's \"raw\""}));
    // A quote may open inside an argument; it must close at its end.
    EXPECT_EQ(r.commands[5], (args_t{"echo", "ab c", "d"}));
    EXPECT_EQ(r.commands[6], (args_t{"echo", "xZZ"}));
}

TEST(KvResp, StrictIntegers) {
    std::int64_t v = 0;
    EXPECT_TRUE(kv::resp::parse_int64("0", v));
    EXPECT_EQ(v, 0);
    EXPECT_TRUE(kv::resp::parse_int64("-9223372036854775808", v));
    EXPECT_EQ(v, std::numeric_limits<std::int64_t>::min());
    EXPECT_TRUE(kv::resp::parse_int64("9223372036854775807", v));
    EXPECT_EQ(v, std::numeric_limits<std::int64_t>::max());
    for (const char* bad : {"", "-", "+1", " 1", "1 ", "01", "-0", "1.0", "9223372036854775808",
                            "-9223372036854775809", "99999999999999999999", "123456789012345678901", "1x"})
        EXPECT_FALSE(kv::resp::parse_int64(bad, v)) << bad;
    char buf[24];
    for (std::int64_t x : {std::int64_t{0}, std::int64_t{-1}, std::int64_t{42}, std::numeric_limits<std::int64_t>::min(),
                           std::numeric_limits<std::int64_t>::max()})
        EXPECT_EQ(std::string(buf, kv::resp::format_int64(x, buf)), std::to_string(x));
}

TEST(KvResp, RepliesAreRespTwo) {
    outbuf o;
    o.simple("OK");
    o.error("ERR bad\r\nthing");
    o.integer(-7);
    o.bulk(std::string("a\0b", 3));
    o.bulk("");
    o.null_bulk();
    o.array(2);
    const std::string want("+OK\r\n-ERR bad  thing\r\n:-7\r\n$3\r\na\0b\r\n$0\r\n\r\n$-1\r\n*2\r\n", 51);
    EXPECT_EQ(std::string(o.data(), o.size()), want);
    // Growth keeps what was written.
    const std::string big(100000, 'z');
    o.bulk(big);
    EXPECT_EQ(o.size(), want.size() + 9 + big.size() + 2);
    EXPECT_EQ(std::string(o.data(), want.size()), want);
    EXPECT_EQ(std::string(o.data() + want.size(), 9), "$100000\r\n");
    o.clear();
    o.shrink(4096);
    EXPECT_EQ(o.capacity(), 4096u);
    EXPECT_TRUE(o.empty());
}
