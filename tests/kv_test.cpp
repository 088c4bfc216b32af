// tests/kv_test.cpp — coop-kv as a black box: the real binary, started as a
// child process (under $COOP_RUN_PREFIX when cross-running), driven over
// 127.0.0.1 by raw sockets, by redis-cli and redis-benchmark (Debian
// redis-tools), and compared byte for byte with a real redis-server when
// one is installed. Tests that need a missing program skip and say which.
//
// Replies are checked as exact bytes; where they are Redis's, the expected
// bytes were taken from redis-server 7.0 (and KvRedis.RepliesMatchRedisServer
// checks them again against whatever redis-server is installed).
#include <gtest/gtest.h>

#include "test_env.hpp"

#include "child_process.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#ifndef COOP_BIN_DIR
#  define COOP_BIN_DIR "build/x86_64/bin"
#endif

using namespace std::chrono_literals;

namespace {

// Generous: under qemu-user or a sanitizer everything is much slower.
constexpr auto kPatience = 60s;

// Fewer clients and requests under qemu (the server runs in the emulator),
// Valgrind (the clients run in it) and TSan (both are built with it).
bool slow_run() {
#if defined(__SANITIZE_THREAD__)
    return true;
#else
    return coop_test::under_emulator() || coop_test::under_valgrind() || std::getenv("COOP_SLOW_TESTS");
#endif
}
int scaled(int n) { return slow_run() ? std::max(1, n / 8) : n; }

using args_t = std::vector<std::string>;

std::string resp(const args_t& args) {
    std::string s = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& a : args) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    return s;
}

// Length of the first complete RESP2 reply in buf, or 0 if incomplete.
std::size_t reply_length(std::string_view buf, std::size_t at = 0) {
    if (at >= buf.size()) return 0;
    const std::size_t eol = buf.find("\r\n", at);
    if (eol == std::string_view::npos) return 0;
    const char type = buf[at];
    const std::size_t line = eol + 2 - at;
    if (type == '+' || type == '-' || type == ':') return line;
    const long n = std::strtol(std::string(buf.substr(at + 1, eol - at - 1)).c_str(), nullptr, 10);
    if (type == '$') {
        if (n < 0) return line;
        const std::size_t total = line + static_cast<std::size_t>(n) + 2;
        return buf.size() - at >= total ? total : 0;
    }
    if (type == '*') {
        std::size_t len = line;
        for (long i = 0; i < n; ++i) {
            const std::size_t e = reply_length(buf, at + len);
            if (e == 0) return 0;
            len += e;
        }
        return len;
    }
    return 0;   // not RESP: the caller's comparison will show it
}

// A blocking TCP client with timeouts, so that no test can hang.
class client {
public:
    explicit client(int port, bool nodelay = true) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        timeval tv{static_cast<time_t>(std::chrono::seconds(kPatience).count()), 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        const int one = 1;
        if (nodelay) ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    ~client() { close(); }
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    bool ok() const { return fd_ >= 0; }
    int fd() const { return fd_; }
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    bool send(std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t k = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (k <= 0) return false;
            bytes.remove_prefix(static_cast<std::size_t>(k));
        }
        return true;
    }

    // One complete reply's bytes; "" if the connection ended (or timed
    // out) first.
    std::string reply() {
        for (;;) {
            if (const std::size_t n = reply_length(buf_)) {
                std::string r = buf_.substr(0, n);
                buf_.erase(0, n);
                return r;
            }
            if (!fill()) return "";
        }
    }

    std::string cmd(const args_t& args) {
        if (!send(resp(args))) return "<send failed>";
        return reply();
    }

    // True when the server closes the connection (after any bytes still
    // unread, which are dropped), false on a timeout.
    bool closed_by_peer() {
        buf_.clear();
        for (;;) {
            char tmp[65536];
            const ssize_t k = ::recv(fd_, tmp, sizeof tmp, 0);
            if (k == 0) return true;
            if (k < 0) return errno == ECONNRESET;
        }
    }

    // Bytes received and not yet returned by reply().
    const std::string& unread() const { return buf_; }

private:
    bool fill() {
        char tmp[65536];
        const ssize_t k = ::recv(fd_, tmp, sizeof tmp, 0);
        if (k <= 0) return false;
        buf_.append(tmp, static_cast<std::size_t>(k));
        return true;
    }
    int fd_ = -1;
    std::string buf_;
};

using coop_test::wait_child;
using server_process = coop_test::child_process;

class kv_server : public server_process {
public:
    explicit kv_server(std::vector<std::string> extra = {"--threads", "2"})
        : server_process(make_words(std::move(extra)), true) {
        first_line_ = read_line();
        port_ = listening_port(first_line_);
    }
    int port() const { return port_; }
    const std::string& first_line() const { return first_line_; }

    // Sockets while serving, minus the connection used to make sure.
    int serving_socket_count() {
        client c(port_);
        if (c.cmd({"PING"}) != "+PONG\r\n") return -1;
        return socket_count() - 1;
    }
    bool sockets_back_to(int want) {
        const auto until = std::chrono::steady_clock::now() + kPatience;
        while (std::chrono::steady_clock::now() < until) {
            if (socket_count() <= want) return true;
            std::this_thread::sleep_for(10ms);
        }
        return false;
    }

private:
    static std::vector<std::string> make_words(std::vector<std::string> extra) {
        std::vector<std::string> w{std::string(COOP_BIN_DIR) + "/coop-kv", "--port", "0"};
        w.insert(w.end(), extra.begin(), extra.end());
        return w;
    }
    int port_ = 0;
    std::string first_line_;
};

// Runs a program to completion: exit status and stdout (and stderr, with
// merge_stderr). stdin gets `input`.
struct run_result {
    int status = -1;
    std::string out;
};
run_result run(std::vector<std::string> words, const std::string& input = "", bool merge_stderr = false) {
    run_result r;
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) return r;
    if (::pipe2(out, O_CLOEXEC) != 0) return r;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    if (merge_stderr) posix_spawn_file_actions_adddup2(&fa, out[1], 2);
    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    if (rc != 0) {
        ::close(in[1]);
        ::close(out[0]);
        return r;
    }
    std::thread feeder([fd = in[1], &input] {
        std::size_t put = 0;
        while (put < input.size()) {
            const ssize_t k = ::write(fd, input.data() + put, input.size() - put);
            if (k <= 0) break;
            put += static_cast<std::size_t>(k);
        }
        ::close(fd);
    });
    const auto until = std::chrono::steady_clock::now() + kPatience;
    for (;;) {
        pollfd p{out[0], POLLIN, 0};
        if (::poll(&p, 1, 100) > 0) {
            char buf[4096];
            const ssize_t k = ::read(out[0], buf, sizeof buf);
            if (k <= 0) break;
            r.out.append(buf, static_cast<std::size_t>(k));
        }
        if (std::chrono::steady_clock::now() > until) {
            ::kill(pid, SIGKILL);
            break;
        }
    }
    ::close(out[0]);
    feeder.join();
    r.status = wait_child(pid, kPatience);
    return r;
}

bool on_path(const char* prog) {
    const char* path = std::getenv("PATH");
    std::istringstream in(path ? path : "/usr/bin:/bin");
    for (std::string dir; std::getline(in, dir, ':');) {
        const std::string p = dir + "/" + prog;
        if (::access(p.c_str(), X_OK) == 0) return true;
    }
    return false;
}

#define REQUIRE_PROGRAM(prog)                                                                         \
    do {                                                                                              \
        if (!on_path(prog)) GTEST_SKIP() << prog << " not found: apt-get install redis-tools redis-server"; \
    } while (0)

std::string bulk(std::string_view s) { return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n"; }
std::string integer(long long v) { return ":" + std::to_string(v) + "\r\n"; }
const std::string kOK = "+OK\r\n";
const std::string kNil = "$-1\r\n";
std::string err(const std::string& msg) { return "-" + msg + "\r\n"; }
std::string arity(const std::string& cmd) { return err("ERR wrong number of arguments for '" + cmd + "' command"); }

// The reactor serving a connection, from coop-kv's CLIENT INFO; -1 if
// the reply has none.
int reactor_of(client& c) {
    const std::string info = c.cmd({"CLIENT", "INFO"});
    const std::size_t at = info.find(" reactor=");
    return at == std::string::npos ? -1 : std::atoi(info.c_str() + at + 9);
}

// A command and the exact reply Redis 7.0 gives to it.
struct exchange {
    args_t cmd;
    std::string reply;
};

// Sent in order on one connection to a fresh server. Every reply here is
// redis-server 7.0's (KvRedis.RepliesMatchRedisServer compares).
std::vector<exchange> redis_script() {
    const std::string not_int = err("ERR value is not an integer or out of range");
    const std::string syntax = err("ERR syntax error");
    const std::string bad_set_expire = err("ERR invalid expire time in 'set' command");
    const std::string bad_expire = err("ERR invalid expire time in 'expire' command");
    const std::string overflow = err("ERR increment or decrement would overflow");
    return {
        {{"PING"}, "+PONG\r\n"},
        {{"ping", "hello"}, bulk("hello")},
        {{"PING", "a", "b"}, arity("ping")},
        {{"ECHO", "hi there"}, bulk("hi there")},
        {{"ECHO", ""}, bulk("")},
        {{"ECHO"}, arity("echo")},
        {{"ECHO", "a", "b"}, arity("echo")},
        {{"GET", "k"}, kNil},
        {{"GET"}, arity("get")},
        {{"GET", "k", "x"}, arity("get")},
        {{"SET", "k"}, arity("set")},
        {{"SET", "k", std::string("bin\0\r\nary", 9)}, kOK},
        {{"GET", "k"}, bulk(std::string("bin\0\r\nary", 9))},
        {{"gEt", "k"}, bulk(std::string("bin\0\r\nary", 9))},
        {{"SET", "k", "v"}, kOK},
        {{"SET", "k", "w", "NX"}, kNil},
        {{"GET", "k"}, bulk("v")},
        {{"SET", "k", "w", "XX"}, kOK},
        {{"SET", "k2", "w", "XX"}, kNil},
        {{"EXISTS", "k2"}, integer(0)},
        {{"SET", "k2", "w", "nx"}, kOK},
        {{"SET", "k", "x", "GET"}, bulk("w")},
        {{"SET", "k", "y", "NX", "GET"}, bulk("x")},
        {{"GET", "k"}, bulk("x")},
        {{"SET", "new", "1", "XX", "GET"}, kNil},
        {{"EXISTS", "new"}, integer(0)},
        {{"SET", "new", "1", "GET"}, kNil},
        {{"SET", "k", "v", "EX", "100"}, kOK},
        {{"TTL", "k"}, integer(100)},
        {{"SET", "k", "v", "KEEPTTL"}, kOK},
        {{"TTL", "k"}, integer(100)},
        {{"SET", "k", "v"}, kOK},
        {{"TTL", "k"}, integer(-1)},
        {{"SET", "k", "v", "PX", "100000"}, kOK},
        {{"TTL", "k"}, integer(100)},
        {{"SET", "k", "v", "ex", "10", "EX", "20"}, kOK},
        {{"TTL", "k"}, integer(20)},
        {{"SET", "k", "v", "EXAT", "99999999999"}, kOK},
        {{"SET", "k", "v", "EXAT", "1"}, kOK},
        {{"GET", "k"}, kNil},
        {{"SET", "k", "v", "PXAT", "1"}, kOK},
        {{"EXISTS", "k"}, integer(0)},
        {{"SET", "k", "v", "EX", "10", "PX", "100"}, syntax},
        {{"SET", "k", "v", "PX", "10", "EX", "100"}, syntax},
        {{"SET", "k", "v", "EX", "10", "KEEPTTL"}, syntax},
        {{"SET", "k", "v", "KEEPTTL", "EX", "5"}, syntax},
        {{"SET", "k", "v", "NX", "XX"}, syntax},
        {{"SET", "k", "v", "XX", "NX"}, syntax},
        {{"SET", "k", "v", "EX"}, syntax},
        {{"SET", "k", "v", "FOO"}, syntax},
        {{"SET", "k", "v", "EXAT", "10", "PXAT", "10"}, syntax},
        {{"SET", "k", "v", "EX", "0"}, bad_set_expire},
        {{"SET", "k", "v", "EX", "-1"}, bad_set_expire},
        {{"SET", "k", "v", "PX", "0"}, bad_set_expire},
        {{"SET", "k", "v", "EXAT", "0"}, bad_set_expire},
        {{"SET", "k", "v", "EX", "9223372036854775807"}, bad_set_expire},
        {{"SET", "k", "v", "PX", "9223372036854775807"}, bad_set_expire},
        {{"SET", "k", "v", "EX", "9223372036854775"}, bad_set_expire},
        {{"SET", "k", "v", "EX", "abc"}, not_int},
        {{"SET", "k", "v", "EX", "1.5"}, not_int},
        {{"SET", "k", "v", "EX", "+5"}, not_int},
        {{"SET", "k", "v", "EX", "05"}, not_int},
        {{"SET", "k", "v", "EX", " 5"}, not_int},
        {{"SET", "k", "v", "EX", "99999999999999999999"}, not_int},
        {{"SET", "k", "v"}, kOK},
        {{"DEL", "k", "k2", "nokey", "k"}, integer(2)},
        {{"DEL"}, arity("del")},
        {{"MSET", "a", "1", "b", "2", "c", "3"}, kOK},
        {{"MSET", "a", "1", "b"}, arity("mset")},
        {{"MSET"}, arity("mset")},
        {{"MGET", "a", "b", "nokey", "c", "a"},
         "*5\r\n" + bulk("1") + bulk("2") + kNil + bulk("3") + bulk("1")},
        {{"MGET"}, arity("mget")},
        {{"EXISTS", "a", "b", "c", "c", "nokey"}, integer(4)},
        {{"EXISTS"}, arity("exists")},
        {{"INCR", "n"}, integer(1)},
        {{"INCR", "n"}, integer(2)},
        {{"DECR", "n"}, integer(1)},
        {{"DECR", "m"}, integer(-1)},
        {{"INCR"}, arity("incr")},
        {{"DECR", "a", "b"}, arity("decr")},
        {{"SET", "n", "9223372036854775807"}, kOK},
        {{"INCR", "n"}, overflow},
        {{"DECR", "n"}, integer(9223372036854775806LL)},
        {{"SET", "n", "-9223372036854775808"}, kOK},
        {{"DECR", "n"}, overflow},
        {{"INCR", "n"}, integer(-9223372036854775807LL)},
        {{"SET", "n", "abc"}, kOK},
        {{"INCR", "n"}, not_int},
        {{"SET", "n", " 1"}, kOK},
        {{"INCR", "n"}, not_int},
        {{"SET", "n", "01"}, kOK},
        {{"INCR", "n"}, not_int},
        {{"SET", "n", "-0"}, kOK},
        {{"DECR", "n"}, not_int},
        {{"SET", "n", "+1"}, kOK},
        {{"INCR", "n"}, not_int},
        {{"SET", "n", "1.0"}, kOK},
        {{"INCR", "n"}, not_int},
        {{"SET", "n", ""}, kOK},
        {{"INCR", "n"}, not_int},
        {{"SET", "n", "12345678901234567890123"}, kOK},
        {{"INCR", "n"}, not_int},
        {{"SET", "n", "-1"}, kOK},
        {{"INCR", "n"}, integer(0)},
        {{"GET", "n"}, bulk("0")},
        {{"SET", "e", "5", "EX", "100"}, kOK},
        {{"INCR", "e"}, integer(6)},
        {{"TTL", "e"}, integer(100)},
        {{"TTL", "nokey"}, integer(-2)},
        {{"TTL", "a"}, integer(-1)},
        {{"TTL"}, arity("ttl")},
        {{"EXPIRE", "nokey", "10"}, integer(0)},
        {{"EXPIRE", "a", "100"}, integer(1)},
        {{"TTL", "a"}, integer(100)},
        {{"EXPIRE", "a", "100", "NX"}, integer(0)},
        {{"EXPIRE", "a", "200", "XX"}, integer(1)},
        {{"TTL", "a"}, integer(200)},
        {{"EXPIRE", "a", "50", "GT"}, integer(0)},
        {{"EXPIRE", "a", "500", "gt"}, integer(1)},
        {{"EXPIRE", "a", "50", "LT"}, integer(1)},
        {{"TTL", "a"}, integer(50)},
        {{"EXPIRE", "b", "10", "XX"}, integer(0)},
        {{"EXPIRE", "b", "10", "GT"}, integer(0)},
        {{"EXPIRE", "b", "10", "LT"}, integer(1)},
        {{"TTL", "b"}, integer(10)},
        {{"EXPIRE", "a", "10", "XX", "XX"}, integer(1)},
        {{"EXPIRE", "a", "10", "NX", "XX"},
         err("ERR NX and XX, GT or LT options at the same time are not compatible")},
        {{"EXPIRE", "a", "10", "NX", "GT"},
         err("ERR NX and XX, GT or LT options at the same time are not compatible")},
        {{"EXPIRE", "a", "10", "GT", "LT"}, err("ERR GT and LT options at the same time are not compatible")},
        {{"EXPIRE", "a", "10", "FOO"}, err("ERR Unsupported option FOO")},
        {{"EXPIRE", "a", "abc", "FOO"}, err("ERR Unsupported option FOO")},
        {{"EXPIRE", "a", "abc"}, not_int},
        {{"EXPIRE", "nokey", "abc"}, not_int},
        {{"EXPIRE", "a", "1.5"}, not_int},
        {{"EXPIRE", "a", "9223372036854775807"}, bad_expire},
        {{"EXPIRE", "a", "9223372036854775"}, bad_expire},
        {{"EXPIRE", "a", "-9223372036854775808"}, bad_expire},
        {{"EXPIRE", "a"}, arity("expire")},
        {{"EXPIRE", "a", "92233720368547"}, integer(1)},
        {{"TTL", "a"}, integer(92233720368547LL)},
        {{"EXPIRE", "a", "0"}, integer(1)},
        {{"EXISTS", "a"}, integer(0)},
        {{"EXPIRE", "b", "-9223372036854775"}, integer(1)},
        {{"GET", "b"}, kNil},
        {{"SELECT", "0"}, kOK},
        {{"SELECT", "abc"}, not_int},
        {{"SELECT", "-1"}, err("ERR DB index is out of range")},
        {{"SELECT", "16"}, err("ERR DB index is out of range")},
        {{"SELECT"}, arity("select")},
        {{"HELLO", "1"}, err("NOPROTO unsupported protocol version")},
        {{"HELLO", "abc"}, err("ERR Protocol version is not an integer or out of range")},
        {{"HELLO", "02"}, err("ERR Protocol version is not an integer or out of range")},
        {{"HELLO", "4"}, err("NOPROTO unsupported protocol version")},
        {{"HELLO", "2", "FOO"}, err("ERR Syntax error in HELLO option 'FOO'")},
        {{"HELLO", "2", "SETNAME"}, err("ERR Syntax error in HELLO option 'SETNAME'")},
        {{"HELLO", "2", "auth", "a"}, err("ERR Syntax error in HELLO option 'auth'")},
        {{"HELLO", "2", "SETNAME", "a b"},
         err("ERR Client names cannot contain spaces, newlines or special characters.")},
        {{"CLIENT", "SETNAME", "foo"}, kOK},
        {{"CLIENT", "GETNAME"}, bulk("foo")},
        {{"CLIENT", "SETNAME", "a b"}, err("ERR Client names cannot contain spaces, newlines or special characters.")},
        {{"CLIENT", "SETNAME", std::string("a\x01", 2)},
         err("ERR Client names cannot contain spaces, newlines or special characters.")},
        {{"CLIENT", "SETNAME", ""}, kOK},
        {{"CLIENT", "GETNAME"}, kNil},
        {{"CLIENT", "FOO"}, err("ERR unknown subcommand 'FOO'. Try CLIENT HELP.")},
        {{"client", "foo", "bar"}, err("ERR unknown subcommand 'foo'. Try CLIENT HELP.")},
        {{"CLIENT"}, arity("client")},
        {{"CLIENT", "SETNAME"}, arity("client|setname")},
        {{"CLIENT", "GETNAME", "x"}, arity("client|getname")},
        {{"CONFIG", "GET", "save"}, "*2\r\n" + bulk("save") + bulk("")},
        {{"CONFIG", "GET", "appendonly"}, "*2\r\n" + bulk("appendonly") + bulk("no")},
        {{"CONFIG", "GET", "nonexistent"}, "*0\r\n"},
        {{"CONFIG", "GET"}, arity("config|get")},
        {{"CONFIG", "SET", "foo", "bar"}, err("ERR Unknown option or number of arguments for CONFIG SET - 'foo'")},
        {{"CONFIG", "SET", "save", ""}, kOK},
        {{"CONFIG", "RESETSTAT"}, kOK},
        {{"CONFIG", "FOO"}, err("ERR unknown subcommand 'FOO'. Try CONFIG HELP.")},
        {{"CONFIG"}, arity("config")},
        {{"COMMAND", "FOO"}, err("ERR unknown subcommand 'FOO'. Try COMMAND HELP.")},
        {{"COMMAND", "COUNT", "x"}, arity("command|count")},
        {{"FOO", "a", "b"}, err("ERR unknown command 'FOO', with args beginning with: 'a' 'b' ")},
        {{"foo", "a\nb"}, err("ERR unknown command 'foo', with args beginning with: 'a b' ")},
        {{std::string("f\0oo", 4), std::string("a\0b", 3)},
         err("ERR unknown command 'f', with args beginning with: 'a' ")},
        {{"foo"}, err("ERR unknown command 'foo', with args beginning with: ")},
        {{std::string(200, 'x'), std::string(100, 'a'), std::string(100, 'b')},
         err("ERR unknown command '" + std::string(128, 'x') + "', with args beginning with: '" + std::string(100, 'a') +
             "' '" + std::string(25, 'b') + "' ")},
        {{"DBSIZE", "x"}, arity("dbsize")},
        {{"FLUSHALL", "FOO"}, syntax},
        {{"FLUSHALL", "ASYNC", "x"}, syntax},
        {{"FLUSHDB"}, kOK},
        {{"DBSIZE"}, integer(0)},
        {{"SET", "x", "1"}, kOK},
        {{"FLUSHALL", "SYNC"}, kOK},
        {{"DBSIZE"}, integer(0)},
    };
}

// Raw byte sequences that end the connection after one error reply, with
// Redis's text for each.
struct hostile_case {
    std::string bytes;
    std::string reply;
};
std::vector<hostile_case> redis_protocol_errors() {
    return {
        {"*1\r\n$-1\r\n", err("ERR Protocol error: invalid bulk length")},
        {"*x\r\n", err("ERR Protocol error: invalid multibulk length")},
        {"*3000000000\r\n", err("ERR Protocol error: invalid multibulk length")},
        {"*1\r\n:4\r\n", err("ERR Protocol error: expected '$', got ':'")},
        {"*1\r\n$01\r\n", err("ERR Protocol error: invalid bulk length")},
        {"*1\r\n$ 1\r\n", err("ERR Protocol error: invalid bulk length")},
        {"set \"a b\r\n", err("ERR Protocol error: unbalanced quotes in request")},
        {"set \"a\"b\r\n", err("ERR Protocol error: unbalanced quotes in request")},
        {"PING\r\n*1\r\n$-5\r\nPING\r\n", "+PONG\r\n" + err("ERR Protocol error: invalid bulk length")},
        {"GET " + std::string(70000, 'a'), err("ERR Protocol error: too big inline request")},
        {"*1\r\n$" + std::string(70000, '1'), err("ERR Protocol error: too big bulk count string")},
        {"*" + std::string(70000, '1'), err("ERR Protocol error: too big mbulk count string")},
    };
}

} // namespace

// ---------------------------------------------------------------- commands

TEST(Kv, StartsAndPrintsItsPort) {
    kv_server srv;
    ASSERT_GT(srv.pid(), 0);
    ASSERT_GT(srv.port(), 0) << "first line: " << srv.first_line();
    client c(srv.port());
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c.cmd({"PING"}), "+PONG\r\n");
}

TEST(Kv, CommandsReplyAsRedisDoes) {
    kv_server srv;
    ASSERT_GT(srv.port(), 0) << "first line: " << srv.first_line();
    client c(srv.port());
    for (const exchange& x : redis_script()) {
        std::string shown;
        for (const auto& a : x.cmd) shown += a.substr(0, 40) + " ";
        ASSERT_EQ(c.cmd(x.cmd), x.reply) << shown;
    }
}

TEST(Kv, WhereItDiffersFromRedis) {
    kv_server srv;
    ASSERT_GT(srv.port(), 0);
    client c(srv.port());
    // One database, RESP2 only.
    EXPECT_EQ(c.cmd({"SELECT", "1"}), err("ERR DB index is out of range"));
    EXPECT_EQ(c.cmd({"HELLO", "3"}), err("NOPROTO unsupported protocol version"));
    const std::string hello = c.cmd({"HELLO", "2", "AUTH", "default", "any", "SETNAME", "me"});
    EXPECT_EQ(hello, "*14\r\n" + bulk("server") + bulk("coop-kv") + bulk("version") + bulk("0.1.0") + bulk("proto") +
                         integer(2) + bulk("id") + integer(1) + bulk("mode") + bulk("standalone") + bulk("role") +
                         bulk("master") + bulk("modules") + "*0\r\n");
    EXPECT_EQ(c.cmd({"CLIENT", "GETNAME"}), bulk("me"));
    EXPECT_EQ(c.cmd({"CLIENT", "ID"}), integer(1));
    // CLIENT INFO: a few of Redis's fields, and the reactor serving us.
    const std::string client_info = c.cmd({"CLIENT", "INFO"});
    const std::string laddr = " laddr=127.0.0.1:" + std::to_string(srv.port()) + " fd=";
    EXPECT_EQ(client_info.rfind("$", 0), 0u) << client_info;
    EXPECT_NE(client_info.find("\r\nid=1 addr=127.0.0.1:"), std::string::npos) << client_info;
    EXPECT_NE(client_info.find(laddr), std::string::npos) << client_info;
    EXPECT_NE(client_info.find(" name=me db=0 resp=2 reactor="), std::string::npos) << client_info;
    EXPECT_EQ(client_info.substr(client_info.size() - 3), "\n\r\n") << client_info;
    EXPECT_EQ(c.cmd({"CLIENT", "INFO", "x"}), arity("client|info"));
    EXPECT_EQ(c.cmd({"HELLO", "2", "AUTH", "bob", "pw"}),
              err("WRONGPASS invalid username-password pair or user is disabled."));
    EXPECT_EQ(c.cmd({"HELLO"}).substr(0, 5), "*14\r\n");
    // CONFIG SET changes nothing.
    EXPECT_EQ(c.cmd({"CONFIG", "SET", "save", "900 1"}),
              err("ERR CONFIG SET failed (possibly related to argument 'save') - coop-kv cannot change it"));
    EXPECT_EQ(c.cmd({"CONFIG", "SET", "appendonly", "no", "save", ""}), kOK);
    EXPECT_EQ(c.cmd({"CONFIG", "SET", "save"}), arity("config|set"));
    // CONFIG GET globs over what it knows, in its own order.
    EXPECT_EQ(c.cmd({"CONFIG", "GET", "save", "appendonly"}),
              "*4\r\n" + bulk("appendonly") + bulk("no") + bulk("save") + bulk(""));
    EXPECT_EQ(c.cmd({"CONFIG", "GET", "d?tab[a-c]s*"}), "*2\r\n" + bulk("databases") + bulk("1"));
    EXPECT_EQ(c.cmd({"CONFIG", "GET", "PORT"}), "*2\r\n" + bulk("port") + bulk(std::to_string(srv.port())));
    EXPECT_EQ(c.cmd({"CONFIG", "GET", "proto-max-bulk-len"}),
              "*2\r\n" + bulk("proto-max-bulk-len") + bulk(std::to_string(16 << 20)));
    // A pattern that backtracks a lot still answers.
    EXPECT_EQ(c.cmd({"CONFIG", "GET", std::string(60, '*') + "a" + std::string(60, '*') + "z"}), "*0\r\n");
    // COMMAND describes this server's commands.
    EXPECT_EQ(c.cmd({"COMMAND", "COUNT"}), integer(26));
    const std::string info = c.cmd({"COMMAND", "INFO", "get", "nosuch"});
    EXPECT_EQ(info, "*2\r\n*10\r\n" + bulk("get") + integer(2) + "*2\r\n+readonly\r\n+fast\r\n" + integer(1) +
                        integer(1) + integer(1) + "*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n*-1\r\n");
    EXPECT_EQ(c.cmd({"COMMAND", "DOCS", "get"}), "*2\r\n" + bulk("get") + "*6\r\n" + bulk("summary") +
                                                      bulk("Get the value of a key") + bulk("since") + bulk("1.0.0") +
                                                      bulk("group") + bulk("string"));
    EXPECT_EQ(c.cmd({"COMMAND"}).substr(0, 6), "*26\r\n*");
    EXPECT_EQ(c.cmd({"COMMAND", "LIST"}).substr(0, 14), "*26\r\n$3\r\nget\r\n");
    // PTTL, PEXPIRE, PERSIST.
    EXPECT_EQ(c.cmd({"SET", "k", "v", "PX", "100000"}), kOK);
    const std::string pttl = c.cmd({"PTTL", "k"});
    const long left = std::atol(pttl.c_str() + 1);
    EXPECT_TRUE(left > 90000 && left <= 100000) << pttl;
    EXPECT_EQ(c.cmd({"PERSIST", "k"}), integer(1));
    EXPECT_EQ(c.cmd({"PERSIST", "k"}), integer(0));
    EXPECT_EQ(c.cmd({"PTTL", "k"}), integer(-1));
    EXPECT_EQ(c.cmd({"PEXPIRE", "k", "100000"}), integer(1));
    EXPECT_EQ(c.cmd({"TTL", "k"}), integer(100));
    EXPECT_EQ(c.cmd({"EXPIREAT", "k", "99999999999"}), integer(1));
    EXPECT_EQ(c.cmd({"PEXPIREAT", "k", "1"}), integer(1));
    EXPECT_EQ(c.cmd({"EXISTS", "k"}), integer(0));
}

TEST(Kv, KeysOnEveryShardAreOneKeyspace) {
    for (const char* shards : {"1", "2", "7"}) {
        kv_server srv({"--threads", shards});
        ASSERT_GT(srv.port(), 0) << srv.first_line();
        client a(srv.port()), b(srv.port());
        args_t mset{"MSET"}, mget{"MGET"}, del{"DEL"};
        std::string want = "*200\r\n";
        for (int i = 0; i < 200; ++i) {
            const std::string k = "key:" + std::to_string(i);
            mset.push_back(k);
            mset.push_back("v" + std::to_string(i));
            mget.push_back(k);
            del.push_back(k);
            want += bulk("v" + std::to_string(i));
        }
        EXPECT_EQ(a.cmd(mset), kOK);
        EXPECT_EQ(b.cmd(mget), want) << shards << " shards";
        EXPECT_EQ(b.cmd({"DBSIZE"}), integer(200));
        EXPECT_EQ(a.cmd({"INCR", "key:7"}), err("ERR value is not an integer or out of range"));
        EXPECT_EQ(b.cmd(del), integer(200));
        EXPECT_EQ(a.cmd({"DBSIZE"}), integer(0));
    }
}

TEST(Kv, KeysExpireWhenReadAndWhenNobodyReadsThem) {
    kv_server srv;
    ASSERT_GT(srv.port(), 0);
    client c(srv.port());
    // Lazy: read after the expiry time.
    EXPECT_EQ(c.cmd({"SET", "short", "v", "PX", "1"}), kOK);
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(c.cmd({"GET", "short"}), kNil);
    EXPECT_EQ(c.cmd({"TTL", "short"}), integer(-2));
    // Active: 2000 keys that nobody touches again leave DBSIZE (which
    // counts keys not yet deleted) on their own.
    std::string burst;
    for (int i = 0; i < 2000; ++i) burst += resp({"SET", "tmp:" + std::to_string(i), "v", "PX", "50"});
    burst += resp({"SET", "stays", "v"});
    ASSERT_TRUE(c.send(burst));
    for (int i = 0; i <= 2000; ++i) ASSERT_EQ(c.reply(), kOK);
    const auto until = std::chrono::steady_clock::now() + kPatience;
    std::string size;
    while (std::chrono::steady_clock::now() < until) {
        size = c.cmd({"DBSIZE"});
        if (size == integer(1)) break;
        std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(size, integer(1));
    EXPECT_EQ(c.cmd({"GET", "stays"}), bulk("v"));
}

TEST(Kv, QuitAnswersThenCloses) {
    kv_server srv;
    ASSERT_GT(srv.port(), 0);
    client c(srv.port());
    ASSERT_TRUE(c.send("PING\r\nQUIT\r\nPING\r\n"));
    EXPECT_EQ(c.reply(), "+PONG\r\n");
    EXPECT_EQ(c.reply(), kOK);
    EXPECT_TRUE(c.closed_by_peer());
}

// ---------------------------------------------------------------- pipelining, inline

TEST(Kv, TenThousandPipelinedCommandsAnsweredInOrder) {
    kv_server srv;
    ASSERT_GT(srv.port(), 0);
    client c(srv.port());
    std::string burst, want;
    for (int i = 0; i < 10000; ++i) {
        const std::string k = "p:" + std::to_string(i / 4 % 500);
        switch (i % 4) {
            case 0:
                burst += resp({"SET", k, std::to_string(i)});
                want += kOK;
                break;
            case 1:
                burst += resp({"GET", k});
                want += bulk(std::to_string(i - 1));
                break;
            case 2:
                burst += "INCR " + k + "\r\n";       // inline, mixed in
                want += integer(i - 1);
                break;
            default:
                burst += resp({"ECHO", std::string(i % 97, 'e')});
                want += bulk(std::string(i % 97, 'e'));
        }
    }
    // Sent in one go from another thread while this one reads.
    std::thread sender([&] { c.send(burst); });
    std::string got;
    while (got.size() < want.size()) {
        const std::string r = c.reply();
        if (r.empty()) break;
        got += r;
    }
    sender.join();
    EXPECT_EQ(got.size(), want.size());
    EXPECT_TRUE(got == want);
    EXPECT_EQ(c.cmd({"PING"}), "+PONG\r\n");
}

TEST(Kv, CommandsSplitAnywhereAcrossReads) {
    kv_server srv;
    ASSERT_GT(srv.port(), 0);
    client c(srv.port());
    const std::string big(40000, 'B');
    const std::string in = resp({"SET", "frag", big}) + "GET frag\r\n" + resp({"MGET", "frag", "nokey"}) +
                           "set q \"a\\x41\\n\"\r\n" + resp({"GET", "q"});
    const std::string want = kOK + bulk(big) + "*2\r\n" + bulk(big) + kNil + kOK + bulk("aA\n");
    // Byte by byte for the first 300 bytes, then in odd-sized pieces.
    std::size_t put = 0;
    for (; put < 300; ++put) {
        ASSERT_TRUE(c.send(in.substr(put, 1)));
        if (put % 50 == 0) std::this_thread::sleep_for(1ms);     // let reads split here
    }
    while (put < in.size()) {
        const std::size_t n = std::min<std::size_t>(in.size() - put, 1 + put % 7919);
        ASSERT_TRUE(c.send(in.substr(put, n)));
        put += n;
    }
    std::string got;
    for (int i = 0; i < 5; ++i) got += c.reply();
    EXPECT_TRUE(got == want) << got.substr(0, 200);
}

TEST(Kv, InlineCommands) {
    kv_server srv;
    ASSERT_GT(srv.port(), 0);
    client c(srv.port());
    ASSERT_TRUE(c.send("\r\n\n   \r\nset greeting \"hello world\"\r\nGET greeting\nmget greeting 'x y'\r\n"
                       "ECHO \"tab\\there\"\r\nping\r\n"));
    EXPECT_EQ(c.reply(), kOK);
    EXPECT_EQ(c.reply(), bulk("hello world"));
    EXPECT_EQ(c.reply(), "*2\r\n" + bulk("hello world") + kNil);
    EXPECT_EQ(c.reply(), bulk("tab\there"));
    EXPECT_EQ(c.reply(), "+PONG\r\n");
    EXPECT_EQ(c.unread(), "");
}

// ---------------------------------------------------------------- hostile clients

TEST(Kv, ProtocolErrorsGetTheErrorThenTheConnectionCloses) {
    kv_server srv;
    ASSERT_GT(srv.port(), 0);
    const int base = srv.serving_socket_count();
    auto cases = redis_protocol_errors();
    // Where coop-kv is stricter than Redis (which accepts these: a bulk up
    // to 512 MiB, any two bytes after a bulk).
    cases.push_back({"*2\r\n$3\r\nSET\r\n$536870912\r\n", err("ERR Protocol error: invalid bulk length")});
    cases.push_back({"*1\r\n$16777217\r\n", err("ERR Protocol error: invalid bulk length")});
    cases.push_back({"*2000000\r\n", err("ERR Protocol error: invalid multibulk length")});
    cases.push_back({"*1\r\n$4\r\nPINGxx", err("ERR Protocol error: bulk data not followed by CRLF")});
    client bystander(srv.port());
    for (const hostile_case& h : cases) {
        client c(srv.port());
        ASSERT_TRUE(c.send(h.bytes));
        std::string got;
        while (got.size() < h.reply.size()) {
            const std::string r = c.reply();
            if (r.empty()) break;
            got += r;
        }
        EXPECT_EQ(got, h.reply) << h.bytes.substr(0, 40);
        EXPECT_TRUE(c.closed_by_peer()) << h.bytes.substr(0, 40);
        EXPECT_EQ(bystander.cmd({"PING"}), "+PONG\r\n");
    }
    bystander.close();
    EXPECT_TRUE(srv.sockets_back_to(base)) << srv.socket_count() << " sockets, expected " << base;
}

TEST(Kv, LargestBulkIsAcceptedAndLongerRequestsAreNot) {
    kv_server srv;
    ASSERT_GT(srv.port(), 0);
    client c(srv.port());
    const std::string max(16u << 20, 'm');
    EXPECT_EQ(c.cmd({"SET", "big", max}), kOK);
    EXPECT_TRUE(c.cmd({"GET", "big"}) == bulk(max));
    // A reply above the 64 MiB output limit: the connection closes, no
    // partial reply is sent.
    EXPECT_TRUE(c.send(resp({"MGET", "big", "big", "big", "big", "big"})));
    EXPECT_TRUE(c.closed_by_peer());
    // One command above 64 MiB: an error, then the close.
    client d(srv.port());
    args_t huge{"MSET"};
    for (int i = 0; i < 5; ++i) {
        huge.push_back("k" + std::to_string(i));
        huge.push_back(max);
    }
    std::thread sender([&] { d.send(resp(huge)); });     // fails once the server closes
    EXPECT_EQ(d.reply(), err("ERR Protocol error: request too large"));
    EXPECT_TRUE(d.closed_by_peer());
    sender.join();
    d.close();
    client e(srv.port());
    EXPECT_EQ(e.cmd({"EXISTS", "k0"}), integer(0));
    EXPECT_EQ(e.cmd({"STRLEN", "big"}), err("ERR unknown command 'STRLEN', with args beginning with: 'big' "));
}

TEST(Kv, ClientsThatNeverReadCostBoundedMemory) {
    kv_server srv;
    ASSERT_GT(srv.port(), 0);
    const int base = srv.serving_socket_count();
    {
        client setup(srv.port());
        ASSERT_EQ(setup.cmd({"SET", "mb", std::string(1 << 20, 'x')}), kOK);
    }
    const long rss_before = srv.rss_kib();
    // Asks for 1 GiB of replies and reads none of them.
    std::vector<std::unique_ptr<client>> sinks;
    for (int i = 0; i < 4; ++i) {
        auto s = std::make_unique<client>(srv.port());
        const int small = 4096;
        ::setsockopt(s->fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        std::string gets;
        for (int j = 0; j < 256; ++j) gets += resp({"GET", "mb"});
        // The server stops reading once its replies back up, so this send
        // may not complete: bounded by a timeout, from another thread.
        timeval tv{1, 0};
        ::setsockopt(s->fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        s->send(gets);
        sinks.push_back(std::move(s));
    }
    // Everyone else is still served.
    client normal(srv.port());
    for (int i = 0; i < 100; ++i) {
        ASSERT_EQ(normal.cmd({"SET", "n", std::to_string(i)}), kOK);
        ASSERT_EQ(normal.cmd({"GET", "n"}), bulk(std::to_string(i)));
    }
    const long rss_after = srv.rss_kib();
    // Unbounded buffering would hold a GiB; each stuck connection holds at
    // most a reply batch (64 KiB) plus one reply (1 MiB) plus its input.
    EXPECT_LT(rss_after - rss_before, 64 * 1024) << rss_before << " KiB before, " << rss_after << " after";
    // When they go away, so do their connections.
    sinks.clear();
    normal.close();
    EXPECT_TRUE(srv.sockets_back_to(base)) << srv.socket_count() << " sockets, expected " << base;
}

TEST(Kv, SlowAndIncompleteRequestsHoldOnlyTheirOwnConnection) {
    kv_server srv;
    ASSERT_GT(srv.port(), 0);
    const int base = srv.serving_socket_count();
    // Announces 16 MiB and sends a little; an unterminated header; half an
    // inline line; then they all sit there.
    client big(srv.port()), header(srv.port()), line(srv.port());
    ASSERT_TRUE(big.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$16777216\r\n" + std::string(1000, 'z')));
    ASSERT_TRUE(header.send("*2\r\n$3\r\nGET\r\n$12"));
    ASSERT_TRUE(line.send("SET k " + std::string(30000, 'l')));
    client normal(srv.port());
    EXPECT_EQ(normal.cmd({"SET", "k", "v"}), kOK);
    EXPECT_EQ(normal.cmd({"GET", "k"}), bulk("v"));
    // Finishing them later still works.
    ASSERT_TRUE(header.send("\r\nkkkkkkkkkkkk\r\n"));
    EXPECT_EQ(header.reply(), kNil);
    ASSERT_TRUE(line.send("\r\n"));
    EXPECT_EQ(line.reply(), kOK);
    EXPECT_EQ(normal.cmd({"GET", "k"}), bulk(std::string(30000, 'l')));
    big.close();
    header.close();
    line.close();
    normal.close();
    EXPECT_TRUE(srv.sockets_back_to(base)) << srv.socket_count() << " sockets, expected " << base;
}

// ---------------------------------------------------------------- many reactors

// Connections are dealt out round robin, so `n` connections made one after
// the other land on n different reactors (of n). Each checks which.
std::vector<std::unique_ptr<client>> one_per_reactor(int port, int n) {
    std::vector<std::unique_ptr<client>> conns;
    std::set<int> reactors;
    for (int i = 0; i < n; ++i) {
        conns.push_back(std::make_unique<client>(port));
        reactors.insert(reactor_of(*conns.back()));
    }
    EXPECT_EQ(reactors.size(), static_cast<std::size_t>(n));
    EXPECT_EQ(*reactors.begin(), 0);
    EXPECT_EQ(*reactors.rbegin(), n - 1);
    return conns;
}

TEST(KvThreads, ConnectionsOnDifferentReactorsSeeEachOthersWrites) {
    for (const int threads : {2, 4}) {
        kv_server srv({"--threads", std::to_string(threads)});
        ASSERT_GT(srv.port(), 0) << srv.first_line();
        auto conns = one_per_reactor(srv.port(), threads);
        // Each connection writes 64 keys (they fall on every shard), and
        // every connection reads every key, pipelined.
        const int keys = 64;
        for (int w = 0; w < threads; ++w) {
            std::string burst;
            for (int k = 0; k < keys; ++k)
                burst += resp({"SET", "w" + std::to_string(w) + ":" + std::to_string(k), std::to_string(w * 1000 + k)});
            ASSERT_TRUE(conns[w]->send(burst));
            for (int k = 0; k < keys; ++k) ASSERT_EQ(conns[w]->reply(), kOK);
        }
        for (int r = 0; r < threads; ++r) {
            std::string burst, want;
            for (int w = 0; w < threads; ++w) {
                for (int k = 0; k < keys; ++k) {
                    burst += resp({"GET", "w" + std::to_string(w) + ":" + std::to_string(k)});
                    want += bulk(std::to_string(w * 1000 + k));
                }
            }
            ASSERT_TRUE(conns[r]->send(burst));
            std::string got;
            for (int i = 0; i < threads * keys; ++i) got += conns[r]->reply();
            EXPECT_TRUE(got == want) << threads << " threads, reader on reactor " << r;
            EXPECT_EQ(conns[r]->cmd({"DBSIZE"}), integer(threads * keys));
        }
        // A write is seen by the next command of another connection.
        for (int i = 0; i < 50; ++i) {
            client& a = *conns[i % threads];
            client& b = *conns[(i + 1) % threads];
            const std::string k = "pingpong:" + std::to_string(i % 7);
            ASSERT_EQ(a.cmd({"SET", k, std::to_string(i)}), kOK);
            ASSERT_EQ(b.cmd({"GET", k}), bulk(std::to_string(i)));
            ASSERT_EQ(b.cmd({"DEL", k}), integer(1));
            ASSERT_EQ(a.cmd({"EXISTS", k}), integer(0));
        }
        // Connection ids are unique over the reactors.
        std::set<std::string> ids;
        for (auto& c : conns) ids.insert(c->cmd({"CLIENT", "ID"}));
        EXPECT_EQ(ids.size(), conns.size());
    }
}

TEST(KvThreads, IncrFromManyConnectionsCountsExactly) {
    for (const int threads : {2, 4}) {
        kv_server srv({"--threads", std::to_string(threads)});
        ASSERT_GT(srv.port(), 0) << srv.first_line();
        const int clients = slow_run() ? 4 : 8;
        const int per_client = scaled(1000);
        const int burst_len = 50;
        std::vector<std::vector<long long>> seen(clients);
        std::vector<int> own(clients, 0);
        std::vector<std::thread> ts;
        for (int t = 0; t < clients; ++t) {
            ts.emplace_back([&, t] {
                client c(srv.port());
                // Pipelined bursts: INCR of the shared counter, DECR of a
                // key of its own.
                for (int done = 0; done < per_client; done += burst_len) {
                    const int n = std::min(burst_len, per_client - done);
                    std::string burst;
                    for (int i = 0; i < n; ++i)
                        burst += resp({"INCR", "counter"}) + resp({"DECR", "own:" + std::to_string(t)});
                    if (!c.send(burst)) return;
                    for (int i = 0; i < n; ++i) {
                        const std::string r = c.reply();
                        if (r.empty() || r[0] != ':') return;
                        seen[t].push_back(std::atoll(r.c_str() + 1));
                        if (c.reply() == integer(-(done + i + 1))) ++own[t];
                    }
                }
            });
        }
        for (auto& t : ts) t.join();
        client c(srv.port());
        EXPECT_EQ(c.cmd({"GET", "counter"}), bulk(std::to_string(clients * per_client))) << threads << " threads";
        // Every value from 1 to the total was handed out exactly once, and
        // each client saw its own values increase.
        std::vector<long long> all;
        for (int t = 0; t < clients; ++t) {
            EXPECT_EQ(seen[t].size(), static_cast<std::size_t>(per_client)) << "client " << t;
            EXPECT_TRUE(std::is_sorted(seen[t].begin(), seen[t].end())) << "client " << t;
            EXPECT_EQ(own[t], per_client) << "client " << t;
            all.insert(all.end(), seen[t].begin(), seen[t].end());
        }
        std::sort(all.begin(), all.end());
        std::vector<long long> want(static_cast<std::size_t>(clients * per_client));
        for (std::size_t i = 0; i < want.size(); ++i) want[i] = static_cast<long long>(i + 1);
        EXPECT_TRUE(all == want) << threads << " threads";
    }
}

TEST(KvThreads, SetNxRacesHaveOneWinner) {
    kv_server srv({"--threads", "4"});
    ASSERT_GT(srv.port(), 0) << srv.first_line();
    const int clients = slow_run() ? 4 : 8;
    const int keys = scaled(400);
    std::vector<std::vector<char>> won(clients, std::vector<char>(keys, 0));
    std::vector<int> replies(clients, 0);
    std::atomic<int> ready{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < clients; ++t) {
        ts.emplace_back([&, t] {
            client c(srv.port());
            std::string burst;
            for (int k = 0; k < keys; ++k) burst += resp({"SET", "race:" + std::to_string(k), "c" + std::to_string(t), "NX"});
            // All connected before anyone sends, so the bursts overlap.
            ready.fetch_add(1);
            while (ready.load() < clients) std::this_thread::yield();
            std::thread sender([&] { c.send(burst); });
            for (int k = 0; k < keys; ++k) {
                const std::string r = c.reply();
                if (r == kOK) {
                    won[t][k] = 1;
                } else if (r != kNil) {
                    break;
                }
                ++replies[t];
            }
            sender.join();
        });
    }
    for (auto& t : ts) t.join();
    client c(srv.port());
    for (int t = 0; t < clients; ++t) EXPECT_EQ(replies[t], keys) << "client " << t;
    for (int k = 0; k < keys; ++k) {
        int winners = 0, winner = -1;
        for (int t = 0; t < clients; ++t) {
            if (won[t][k]) {
                ++winners;
                winner = t;
            }
        }
        ASSERT_EQ(winners, 1) << "race:" << k;
        EXPECT_EQ(c.cmd({"GET", "race:" + std::to_string(k)}), bulk("c" + std::to_string(winner)));
    }
}

TEST(KvThreads, MultiKeyCommandsAcrossShards) {
    kv_server srv({"--threads", "4"});
    ASSERT_GT(srv.port(), 0) << srv.first_line();
    auto conns = one_per_reactor(srv.port(), 4);
    client& a = *conns[0];
    client& b = *conns[2];
    // 300 keys over four shards, read back with duplicates and missing keys
    // mixed in, from a connection on another reactor.
    args_t mset{"MSET"}, mget{"MGET"}, exists{"EXISTS"}, del{"DEL"};
    std::string want;
    int present = 0;
    for (int i = 0; i < 300; ++i) {
        mset.push_back("m:" + std::to_string(i));
        mset.push_back("v" + std::to_string(i));
    }
    mset.push_back("m:7");                         // a repeated key: the last value wins
    mset.push_back("seven");
    for (int i = 0; i < 400; i += 3) {
        for (const int k : {i, i % 50, i + 1000}) {  // a key, an earlier one again, a missing one
            const std::string key = "m:" + std::to_string(k);
            mget.push_back(key);
            exists.push_back(key);
            const bool here = k < 300;
            present += here;
            want += !here ? kNil : k == 7 ? bulk("seven") : bulk("v" + std::to_string(k));
        }
    }
    ASSERT_EQ(a.cmd(mset), kOK);
    EXPECT_TRUE(b.cmd(mget) == "*" + std::to_string(mget.size() - 1) + "\r\n" + want);
    EXPECT_EQ(b.cmd(exists), integer(present));
    // DEL counts each key once, whichever shard has it.
    for (int i = 0; i < 300; i += 2) {
        del.push_back("m:" + std::to_string(i));
        del.push_back("m:" + std::to_string(i));
        del.push_back("none:" + std::to_string(i));
    }
    EXPECT_EQ(b.cmd(del), integer(150));
    EXPECT_EQ(a.cmd({"DBSIZE"}), integer(150));
    EXPECT_EQ(a.cmd({"MGET", "m:0", "m:1", "m:2", "m:3"}), "*4\r\n" + kNil + bulk("v1") + kNil + bulk("v3"));
    // More keys than one hop takes per shard: several hops, same answers.
    const int many = scaled(6000);
    args_t big_mset{"MSET"}, big_mget{"MGET"}, big_del{"DEL"};
    std::string big_want = "*" + std::to_string(many) + "\r\n";
    for (int i = 0; i < many; ++i) {
        const std::string k = "big:" + std::to_string(i);
        big_mset.push_back(k);
        big_mset.push_back(std::to_string(i * 7));
        big_mget.push_back(k);
        big_del.push_back(k);
        big_want += bulk(std::to_string(i * 7));
    }
    EXPECT_EQ(b.cmd(big_mset), kOK);
    EXPECT_TRUE(a.cmd(big_mget) == big_want);
    EXPECT_EQ(conns[3]->cmd(big_del), integer(many));
    EXPECT_EQ(conns[1]->cmd({"DBSIZE"}), integer(150));
    EXPECT_EQ(conns[1]->cmd({"FLUSHALL"}), kOK);
    for (auto& c : conns) EXPECT_EQ(c->cmd({"DBSIZE"}), integer(0));
}

// Expiry set, changed and read from connections on different reactors: the
// owner of a key keeps its expiry time, so every connection sees the same
// TTL, the same PERSIST and the same deletion; and each reactor's active
// expiry clears its own shard of keys nobody reads again.
TEST(KvThreads, ExpiryIsTheSameFromEveryReactor) {
    kv_server srv({"--threads", "4"});
    ASSERT_GT(srv.port(), 0) << srv.first_line();
    auto conns = one_per_reactor(srv.port(), 4);
    client &r0 = *conns[0], &r1 = *conns[1], &r2 = *conns[2], &r3 = *conns[3];
    const int keys = 40;
    auto key = [](int i) { return "e:" + std::to_string(i); };
    for (int i = 0; i < keys; ++i) ASSERT_EQ(r0.cmd({"SET", key(i), "v" + std::to_string(i), "EX", "100"}), kOK);
    // A TTL of 100 s read back within seconds (slow under Valgrind/qemu).
    auto about_100s = [](const std::string& ttl) {
        const long long s = ttl.size() > 1 && ttl[0] == ':' ? std::atoll(ttl.c_str() + 1) : -100;
        return s > 90 && s <= 100;
    };
    for (int i = 0; i < keys; ++i) {
        const std::string ttl = r1.cmd({"TTL", key(i)});
        EXPECT_TRUE(about_100s(ttl)) << key(i) << " " << ttl;
    }
    // PERSIST the even keys on one reactor: another sees no TTL on them.
    for (int i = 0; i < keys; i += 2) ASSERT_EQ(r2.cmd({"PERSIST", key(i)}), integer(1));
    for (int i = 0; i < keys; ++i) {
        const std::string ttl = r3.cmd({"TTL", key(i)});
        if (i % 2 == 0) {
            EXPECT_EQ(ttl, integer(-1)) << key(i);
        } else {
            EXPECT_TRUE(about_100s(ttl)) << key(i) << " " << ttl;
        }
    }
    // The odd keys expire (PEXPIRE 1 ms from one reactor, EXPIREAT in the
    // past from another): gone for every connection, by MGET, EXISTS, TTL.
    for (int i = 1; i < keys; i += 4) ASSERT_EQ(r3.cmd({"PEXPIRE", key(i), "1"}), integer(1)) << key(i);
    for (int i = 3; i < keys; i += 4) ASSERT_EQ(r1.cmd({"EXPIREAT", key(i), "1"}), integer(1)) << key(i);
    std::this_thread::sleep_for(20ms);
    args_t mget{"MGET"}, exists{"EXISTS"};
    std::string want = "*" + std::to_string(keys) + "\r\n";
    for (int i = 0; i < keys; ++i) {
        mget.push_back(key(i));
        exists.push_back(key(i));
        want += i % 2 == 0 ? bulk("v" + std::to_string(i)) : kNil;
    }
    for (auto& c : conns) {
        EXPECT_TRUE(c->cmd(mget) == want) << "reactor " << reactor_of(*c);
        EXPECT_EQ(c->cmd(exists), integer(keys / 2)) << "reactor " << reactor_of(*c);
        EXPECT_EQ(c->cmd({"TTL", key(1)}), integer(-2));
        EXPECT_EQ(c->cmd({"PTTL", key(3)}), integer(-2));
    }
    // Active expiry on every reactor: 800 keys (on every shard) that nobody
    // reads again leave DBSIZE, which counts keys not yet deleted.
    std::string burst;
    for (int i = 0; i < 800; ++i) burst += resp({"SET", "tmp:" + std::to_string(i), "v", "PX", "30"});
    ASSERT_TRUE(r1.send(burst));
    for (int i = 0; i < 800; ++i) ASSERT_EQ(r1.reply(), kOK);
    const auto until = std::chrono::steady_clock::now() + kPatience;
    std::string size;
    while (std::chrono::steady_clock::now() < until) {
        size = r2.cmd({"DBSIZE"});
        if (size == integer(keys / 2)) break;
        std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(size, integer(keys / 2));
}

TEST(KvThreads, PipelinesMixingShardsKeepTheirOrder) {
    kv_server srv({"--threads", "4"});
    ASSERT_GT(srv.port(), 0) << srv.first_line();
    auto conns = one_per_reactor(srv.port(), 4);
    // Runs of commands for one shard, switches between shards, keyless and
    // multi-key commands and inline commands in between: every reply in
    // command order, on every reactor.
    for (auto& c : conns) {
        std::string burst, want;
        const int n = scaled(4000);
        for (int i = 0; i < n; ++i) {
            // Six commands per key, keys changing every six.
            const int g = i / 6;
            const std::string k = "o:" + std::to_string(g % 37), x = "o:x" + std::to_string(g);
            const std::string v = std::to_string(i);
            switch (i % 6) {
                case 0:
                case 1:
                    burst += resp({"SET", k, v}) + resp({"GET", k});
                    want += kOK + bulk(v);
                    break;
                case 2:
                    burst += resp({"PING", v});
                    want += bulk(v);
                    break;
                case 3:
                    burst += resp({"MSET", k, v, x, v}) + resp({"MGET", x, k});
                    want += kOK + "*2\r\n" + bulk(v) + bulk(v);
                    break;
                case 4:
                    burst += "GET " + k + "\r\n";
                    want += bulk(std::to_string(i - 1));
                    break;
                default:
                    burst += resp({"DEL", k, x, k});
                    want += integer(2);
            }
        }
        std::thread sender([&] { c->send(burst); });
        std::string got;
        while (got.size() < want.size()) {
            const std::string r = c->reply();
            if (r.empty()) break;
            got += r;
        }
        sender.join();
        EXPECT_TRUE(got == want) << "reactor " << reactor_of(*c);
    }
}

TEST(KvThreads, ReuseportAcceptModeServesOneKeyspace) {
    kv_server srv({"--threads", "2", "--accept", "reuseport"});
    ASSERT_GT(srv.port(), 0) << srv.first_line();
    std::vector<std::unique_ptr<client>> conns;
    for (int i = 0; i < 8; ++i) {
        conns.push_back(std::make_unique<client>(srv.port()));
        const int r = reactor_of(*conns.back());
        EXPECT_TRUE(r == 0 || r == 1) << r;
    }
    for (int i = 0; i < 8; ++i) ASSERT_EQ(conns[i]->cmd({"SET", "r:" + std::to_string(i), "x"}), kOK);
    for (auto& c : conns) EXPECT_EQ(c->cmd({"EXISTS", "r:0", "r:1", "r:2", "r:3", "r:4", "r:5", "r:6", "r:7"}), integer(8));
}

// With a grace period the connections finish their commands and close
// (no task is canceled); without one the reactors stop at once and the
// runtime's teardown cancels the tasks parked in hops to other reactors.
TEST(KvThreads, ShutdownWithCrossShardPipelinesInFlight) {
    for (const auto& [sig, grace] : {std::pair{SIGTERM, "30"}, std::pair{SIGINT, "0"}}) {
        kv_server srv({"--threads", "4", "--shutdown-grace", grace});
        ASSERT_GT(srv.port(), 0) << srv.first_line();
        const int clients = slow_run() ? 4 : 8;
        std::atomic<int> answered{0};
        std::vector<char> closed(clients, 0);
        std::vector<std::thread> ts;
        for (int t = 0; t < clients; ++t) {
            ts.emplace_back([&, t] {
                client c(srv.port());
                // Bursts of commands on keys of every shard, sent while the
                // previous burst's replies are still coming: there are
                // always hops in progress when the signal comes.
                std::string burst;
                for (int i = 0; i < 100; ++i) {
                    const std::string k = "s:" + std::to_string((t * 100 + i) % 61);
                    burst += resp({"SET", k, std::string(100 + i, 'v')}) + resp({"INCR", "n:" + std::to_string(i % 13)}) +
                             resp({"MGET", k, "s:1", "s:2", "s:3"}) + resp({"GET", k});
                }
                bool counted = false;
                for (;;) {
                    std::thread sender([&] { c.send(burst); });
                    int got = 0;
                    while (got < 400 && !c.reply().empty()) ++got;
                    sender.join();
                    if (got < 400) break;
                    if (!counted) answered.fetch_add(1);
                    counted = true;
                }
                closed[t] = c.closed_by_peer();
            });
        }
        const auto until = std::chrono::steady_clock::now() + kPatience;
        while (answered.load() < clients && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
        EXPECT_EQ(answered.load(), clients);
        const int st = srv.stop_with(sig);
        for (auto& t : ts) t.join();
        EXPECT_TRUE(WIFEXITED(st)) << "signal " << sig << " status " << st;
        EXPECT_EQ(WEXITSTATUS(st), 0);
        for (int t = 0; t < clients; ++t) EXPECT_TRUE(closed[t]) << "client " << t;
    }
}

// ---------------------------------------------------------------- process

TEST(Kv, SignalsExitZeroWithConnectionsOpen) {
    for (int sig : {SIGTERM, SIGINT}) {
        kv_server srv;
        ASSERT_GT(srv.port(), 0);
        std::vector<std::unique_ptr<client>> open;
        for (int i = 0; i < 5; ++i) {
            open.push_back(std::make_unique<client>(srv.port()));
            ASSERT_EQ(open.back()->cmd({"SET", "k" + std::to_string(i), "v"}), kOK);
        }
        // One connection parked in a write to a client that does not read,
        // one in the middle of a command.
        {
            client setup(srv.port());
            ASSERT_EQ(setup.cmd({"SET", "mb", std::string(1 << 20, 'x')}), kOK);
        }
        auto stuck = std::make_unique<client>(srv.port());
        timeval tv{1, 0};
        ::setsockopt(stuck->fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        std::string gets;
        for (int j = 0; j < 64; ++j) gets += resp({"GET", "mb"});
        stuck->send(gets);
        open.push_back(std::move(stuck));
        open.push_back(std::make_unique<client>(srv.port()));
        ASSERT_TRUE(open.back()->send("*2\r\n$3\r\nGET"));
        const int st = srv.stop_with(sig);
        EXPECT_TRUE(WIFEXITED(st)) << "signal " << sig << " status " << st;
        EXPECT_EQ(WEXITSTATUS(st), 0);
        // Every connection was closed by the server.
        for (auto& c : open) EXPECT_TRUE(c->closed_by_peer());
    }
}

TEST(Kv, CommandLine) {
    {
        server_process p({std::string(COOP_BIN_DIR) + "/coop-kv", "--help"}, true);
        const std::string first = p.read_line();
        EXPECT_NE(first.find("usage:"), std::string::npos) << first;
        std::string all;
        for (std::string l = p.read_line(); !l.empty(); l = p.read_line()) all += l + "\n";
        EXPECT_NE(all.find("reactor threads, each owning one shard"), std::string::npos) << all;
        EXPECT_EQ(wait_child(p.pid(), kPatience), 0);
    }
    for (std::vector<std::string> bad : {std::vector<std::string>{"--threads", "0"}, {"--port", "70000"},
                                        {"--host", "not-an-ip"}, {"--bogus"}, {"--threads"},
                                        {"--accept", "hash"}, {"--accept"}, {"--shutdown-grace", "-1"}}) {
        std::vector<std::string> w{std::string(COOP_BIN_DIR) + "/coop-kv"};
        w.insert(w.end(), bad.begin(), bad.end());
        server_process p(w, true);
        const int st = wait_child(p.pid(), kPatience);
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2) << bad[0] << " status " << st;
    }
}

// ---------------------------------------------------------------- real clients

TEST(KvRedis, RedisCliCommands) {
    REQUIRE_PROGRAM("redis-cli");
    kv_server srv;
    ASSERT_GT(srv.port(), 0);
    const std::string port = std::to_string(srv.port());
    auto cli = [&](std::vector<std::string> args, const std::string& input = "", bool merge_stderr = false) {
        std::vector<std::string> w{"redis-cli", "-p", port};
        w.insert(w.end(), args.begin(), args.end());
        return run(w, input, merge_stderr);
    };
    EXPECT_EQ(cli({"PING"}).out, "PONG\n");
    EXPECT_EQ(cli({"SET", "greeting", "hello world"}).out, "OK\n");
    EXPECT_EQ(cli({"GET", "greeting"}).out, "hello world\n");
    EXPECT_EQ(cli({"--no-raw", "GET", "greeting"}).out, "\"hello world\"\n");
    EXPECT_EQ(cli({"--no-raw", "INCR", "greeting"}).out, "(error) ERR value is not an integer or out of range\n");
    EXPECT_EQ(cli({"--no-raw", "MGET", "greeting", "nokey"}).out, "1) \"hello world\"\n2) (nil)\n");
    // Commands on stdin, one per line.
    const run_result piped = cli({}, "SET a 1\nINCR a\nDECR a\nMGET a nokey\nTTL a\nEXPIRE a 100\nTTL a\nDEL a\nTTL a\n");
    EXPECT_EQ(piped.status, 0);
    EXPECT_EQ(piped.out, "OK\n2\n1\n1\n\n-1\n1\n100\n1\n-2\n");
    // Mass insertion: redis-cli --pipe streams RESP and counts the replies.
    std::string mass;
    for (int i = 0; i < 20000; ++i) mass += resp({"SET", "mass:" + std::to_string(i), std::to_string(i)});
    const run_result pipe = cli({"--pipe"}, mass);
    EXPECT_EQ(pipe.status, 0);
    EXPECT_NE(pipe.out.find("errors: 0, replies: 20000"), std::string::npos) << pipe.out;
    EXPECT_EQ(cli({"DBSIZE"}).out, "20001\n");
    EXPECT_EQ(cli({"GET", "mass:12345"}).out, "12345\n");
    // RESP3 is refused; redis-cli says so and goes on in RESP2.
    EXPECT_EQ(cli({"-3", "PING"}, "", true).out, "HELLO 3 failed: NOPROTO unsupported protocol version\nPONG\n");
}

TEST(KvRedis, RedisCliOnTwoReactorsSeesOneKeyspace) {
    REQUIRE_PROGRAM("redis-cli");
    kv_server srv({"--threads", "2"});
    ASSERT_GT(srv.port(), 0);
    const std::string port = std::to_string(srv.port());
    auto cli = [&](const std::string& input) { return run({"redis-cli", "-p", port}, input).out; };
    auto reactor = [](const std::string& out) {
        const std::size_t at = out.find(" reactor=");
        return at == std::string::npos ? -1 : std::atoi(out.c_str() + at + 9);
    };
    // Two redis-cli processes, one connection each, one after the other:
    // round robin puts them on different reactors.
    const std::string first = cli("CLIENT INFO\nSET a 1\nMSET b 2 c 3 d 4 e 5 f 6\nINCR a\nSET g 7 NX\n");
    const std::string second = cli("CLIENT INFO\nMGET a b c d e f g h\nSET g 8 NX\nDEL a b c\nDBSIZE\n");
    ASSERT_NE(reactor(first), -1) << first;
    ASSERT_NE(reactor(second), -1) << second;
    EXPECT_NE(reactor(first), reactor(second));
    EXPECT_EQ(first.substr(first.find('\n') + 1), "OK\nOK\n2\nOK\n");
    EXPECT_EQ(second.substr(second.find('\n') + 1), "2\n2\n3\n4\n5\n6\n7\n\n\n3\n4\n");
}

TEST(KvRedis, RedisBenchmarkRuns) {
    REQUIRE_PROGRAM("redis-benchmark");
    kv_server srv;
    ASSERT_GT(srv.port(), 0);
    const run_result r = run({"redis-benchmark", "-p", std::to_string(srv.port()), "-n", "2000", "-c", "20", "-P", "8",
                              "-r", "100", "-t", "ping,set,get,incr,mset", "--csv"});
    EXPECT_EQ(r.status, 0) << r.out;
    for (const char* test : {"\"PING_INLINE\"", "\"PING_MBULK\"", "\"SET\"", "\"GET\"", "\"INCR\"", "\"MSET (10 keys)\""})
        EXPECT_NE(r.out.find(test), std::string::npos) << test << " missing from:\n" << r.out;
    EXPECT_EQ(r.out.find("WARNING"), std::string::npos) << r.out;     // e.g. "Could not fetch server CONFIG"
    client c(srv.port());
    const std::string size = c.cmd({"DBSIZE"});
    const long keys = std::atol(size.c_str() + 1);
    EXPECT_GT(keys, 0) << size;                 // key:__rand_int__ and counter:__rand_int__, 100 values each
    EXPECT_LE(keys, 200) << size;
}

TEST(KvRedis, RepliesMatchRedisServer) {
    REQUIRE_PROGRAM("redis-server");
    // A free port for redis-server (it cannot take port 0).
    int port = 0;
    {
        const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
        ::close(s);
    }
    server_process redis({"redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--databases", "1", "--loglevel", "warning"},
                         false);
    ASSERT_GT(redis.pid(), 0);
    std::unique_ptr<client> rc;
    const auto until = std::chrono::steady_clock::now() + kPatience;
    while (std::chrono::steady_clock::now() < until) {
        rc = std::make_unique<client>(port);
        if (rc->ok() && rc->cmd({"PING"}) == "+PONG\r\n") break;
        rc.reset();
        std::this_thread::sleep_for(20ms);
    }
    ASSERT_TRUE(rc) << "redis-server did not come up on port " << port;
    kv_server srv;
    ASSERT_GT(srv.port(), 0);
    client kc(srv.port());
    for (const exchange& x : redis_script()) {
        std::string shown;
        for (const auto& a : x.cmd) shown += a.substr(0, 40) + " ";
        const std::string from_redis = rc->cmd(x.cmd);
        EXPECT_EQ(from_redis, x.reply) << "redis-server differs from the script: " << shown;
        EXPECT_EQ(kc.cmd(x.cmd), from_redis) << shown;
    }
    for (const hostile_case& h : redis_protocol_errors()) {
        client r(port), k(srv.port());
        ASSERT_TRUE(r.send(h.bytes));
        ASSERT_TRUE(k.send(h.bytes));
        std::string from_redis, from_kv;
        while (from_redis.size() < h.reply.size()) {
            const std::string x = r.reply();
            if (x.empty()) break;
            from_redis += x;
        }
        while (from_kv.size() < h.reply.size()) {
            const std::string x = k.reply();
            if (x.empty()) break;
            from_kv += x;
        }
        EXPECT_EQ(from_redis, h.reply) << h.bytes.substr(0, 40);
        EXPECT_EQ(from_kv, from_redis) << h.bytes.substr(0, 40);
        EXPECT_TRUE(r.closed_by_peer());
        EXPECT_TRUE(k.closed_by_peer());
    }
    redis.stop_with(SIGTERM);
}
