// tests/echo_test.cpp — the coop-echo example as a black box: started as a
// child process (under $COOP_RUN_PREFIX when cross-running), driven over
// loopback by clients written with coop itself. Hostile clients must not
// crash it, stall others or leak fds; SIGINT/SIGTERM exit 0.
#include <coop/io.hpp>
#include <coop/reactor.hpp>

#include <gtest/gtest.h>

#include "child_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#ifndef COOP_BIN_DIR
#  define COOP_BIN_DIR "build/x86_64/bin"
#endif

using namespace std::chrono_literals;

namespace {

int connect_to_port(int port);

// Generous: under qemu-user everything is about ten times slower.
constexpr auto kPatience = 60s;

class echo_server : public coop_test::child_process {
public:
    echo_server() : child_process({std::string(COOP_BIN_DIR) + "/coop-echo", "--port", "0"}, true) {
        first_line_ = read_line();
        port_ = listening_port(first_line_);
    }

    int port() const { return port_; }
    const std::string& first_line() const { return first_line_; }

    // Open fds of the server process while it serves, minus the one
    // connection used to make sure it does.
    int serving_fd_count() const {
        coop::reactor r;
        int n = -1;
        r.spawn([&] {
            int s = connect_to_port(port_);
            if (s < 0) return;
            char c = 'x';
            coop::io::write_all(s, &c, 1);
            if (!coop::io::read_exact(s, &c, 1, kPatience).error) n = fd_count() - 1;
            coop::close(s);
        });
        r.run();
        return n;
    }

private:
    int port_ = 0;
    std::string first_line_;
};

sockaddr_in loopback(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

// A connected non-blocking client socket (inside a task), or -1.
int connect_to_port(int port) {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a = loopback(port);
    if (coop::io::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a, kPatience)) {
        coop::close(s);
        return -1;
    }
    return s;
}
int connect_to(int port) { return connect_to_port(port); }

// Send n patterned bytes and read them back, concurrently; true if intact.
bool round_trip(int s, std::size_t n, int seed) {
    std::vector<unsigned char> out(n), in(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<unsigned char>((i * 13 + seed) & 0xff);
    bool wrote = false;
    coop::task w = coop::this_reactor().spawn([&] { wrote = !coop::io::write_all(s, out.data(), n, kPatience).error; });
    coop::io::result r = coop::io::read_exact(s, in.data(), n, kPatience);
    w.join();
    return wrote && !r.error && in == out;
}

// Wait (bounded) until the server's fd count drops to `want`.
bool fds_back_to(const echo_server& srv, int want) {
    const auto until = std::chrono::steady_clock::now() + kPatience;
    while (std::chrono::steady_clock::now() < until) {
        if (srv.fd_count() <= want) return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

} // namespace

TEST(Echo, ListensAndEchoesManyClients) {
    echo_server srv;
    ASSERT_GT(srv.pid(), 0);
    ASSERT_GT(srv.port(), 0) << "first line: " << srv.first_line();
    const int base = srv.serving_fd_count();
    coop::reactor r;
    int ok = 0;
    for (int c = 0; c < 200; ++c)
        r.spawn([&, c] {
            int s = connect_to(srv.port());
            ASSERT_GE(s, 0);
            bool good = true;
            for (int k = 0; k < 5 && good; ++k) good = round_trip(s, 100 + c * 17 + k, c + k);
            if (good) ++ok;
            coop::close(s);
        }, {64 * 1024, "echo-client", false});
    r.run();
    EXPECT_EQ(ok, 200);
    EXPECT_TRUE(fds_back_to(srv, base)) << srv.fd_count() << " fds, expected " << base;
    EXPECT_EQ(srv.stop_with(SIGTERM), 0);
}

TEST(Echo, HostileClientsHurtNobody) {
    echo_server srv;
    ASSERT_GT(srv.port(), 0) << "first line: " << srv.first_line();
    const int base = srv.serving_fd_count();
    coop::reactor r;
    bool reset_done = false, half_ok = false, burst_ok = false, normal_ok = false;
    int normal_rounds = 0;
    int never_reader = -1;

    // Never reads: fills the server's send buffer and its own, then sits.
    r.spawn([&] {
        never_reader = connect_to(srv.port());
        ASSERT_GE(never_reader, 0);
        std::vector<char> junk(64 * 1024, 'j');
        std::size_t sent = 0;
        while (sent < (64u << 20)) {
            coop::io::result w = coop::io::write(never_reader, junk.data(), junk.size(), 300ms);
            if (w.error) break;      // both directions full: the server is stuck writing to us
            sent += w.size;
        }
        EXPECT_GT(sent, 0u);
    });
    // Resets in the middle of a message.
    r.spawn([&] {
        for (int i = 0; i < 20; ++i) {
            int s = connect_to(srv.port());
            ASSERT_GE(s, 0);
            std::vector<char> half(30000, 'r');
            coop::io::write_all(s, half.data(), half.size());
            linger lg{1, 0};
            ::setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            coop::close(s);          // RST
        }
        reset_done = true;
    });
    // Half-close: the echo still arrives, then EOF.
    r.spawn([&] {
        int s = connect_to(srv.port());
        ASSERT_GE(s, 0);
        ASSERT_FALSE(coop::io::write_all(s, "half-closed", 11).error);
        ::shutdown(s, SHUT_WR);
        char buf[32];
        coop::io::result got = coop::io::read_exact(s, buf, 11, kPatience);
        coop::io::result eof = coop::io::read(s, buf, sizeof buf, kPatience);
        half_ok = !got.error && std::memcmp(buf, "half-closed", 11) == 0 && !eof.error && eof.size == 0;
        coop::close(s);
    });
    // 1 MiB bursts.
    r.spawn([&] {
        int s = connect_to(srv.port());
        ASSERT_GE(s, 0);
        burst_ok = round_trip(s, 1 << 20, 7) && round_trip(s, 1 << 20, 9);
        coop::close(s);
    });
    // A normal client keeps being served throughout.
    r.spawn([&] {
        int s = connect_to(srv.port());
        ASSERT_GE(s, 0);
        normal_ok = true;
        while (normal_ok && (normal_rounds < 50 || !reset_done || !half_ok || !burst_ok)) {
            normal_ok = round_trip(s, 64, normal_rounds);
            ++normal_rounds;
            if (normal_rounds > 100000) break;
        }
        coop::close(s);
    });
    r.run();
    EXPECT_TRUE(reset_done);
    EXPECT_TRUE(half_ok);
    EXPECT_TRUE(burst_ok);
    EXPECT_TRUE(normal_ok);
    EXPECT_GE(normal_rounds, 50);
    // The never-reading client is still connected; once it goes, the
    // server's task for it must fail its write and close the fd.
    EXPECT_GT(srv.fd_count(), base);
    ::close(never_reader);
    EXPECT_TRUE(fds_back_to(srv, base)) << srv.fd_count() << " fds, expected " << base;
    EXPECT_EQ(srv.stop_with(SIGINT), 0);
}

// Slowloris: clients that trickle one byte at a time, and clients that
// connect and send nothing, hold their own connections only. Each trickled
// byte comes back; a normal client is served at full pace meanwhile.
TEST(Echo, SlowClientsHoldOnlyTheirOwnConnections) {
    echo_server srv;
    ASSERT_GT(srv.port(), 0) << "first line: " << srv.first_line();
    const int base = srv.serving_fd_count();
    constexpr int kSlow = 40, kIdle = 40, kBytes = 8;
    coop::reactor r;
    int slow_ok = 0, idle_open = 0, slow_done = 0, normal_rounds = 0;
    bool normal_ok = true;
    std::vector<int> idle;
    for (int c = 0; c < kIdle; ++c)
        r.spawn([&] {
            int s = connect_to(srv.port());
            if (s >= 0) idle.push_back(s);
        });
    for (int c = 0; c < kSlow; ++c)
        r.spawn([&, c] {
            int s = connect_to(srv.port());
            bool good = s >= 0;
            for (int k = 0; k < kBytes && good; ++k) {
                const char out = static_cast<char>('a' + (c + k) % 26);
                char in = 0;
                good = !coop::io::write_all(s, &out, 1, kPatience).error &&
                       !coop::io::read_exact(s, &in, 1, kPatience).error && in == out;
                coop::sleep_for(20ms);
            }
            if (good) ++slow_ok;
            ++slow_done;
            if (s >= 0) coop::close(s);
        });
    r.spawn([&] {
        int s = connect_to(srv.port());
        ASSERT_GE(s, 0);
        while (normal_ok && slow_done < kSlow) {
            normal_ok = round_trip(s, 64, normal_rounds);
            ++normal_rounds;
        }
        // Every idle client is still connected and can still be served.
        for (int i : idle) {
            const char c = 'i';
            char back = 0;
            if (!coop::io::write_all(i, &c, 1, kPatience).error && !coop::io::read_exact(i, &back, 1, kPatience).error &&
                back == c)
                ++idle_open;
        }
        coop::close(s);
    });
    r.run();
    EXPECT_EQ(slow_ok, kSlow);
    EXPECT_TRUE(normal_ok);
    // The slow clients take 8 x 20 ms at least; a normal round trip is far
    // shorter, so it must have gone round many times meanwhile.
    EXPECT_GE(normal_rounds, 10);
    EXPECT_EQ(idle_open, kIdle);
    for (int i : idle) coop::close(i);
    EXPECT_TRUE(fds_back_to(srv, base)) << srv.fd_count() << " fds, expected " << base;
    EXPECT_EQ(srv.stop_with(SIGTERM), 0);
}

// A thousand clients connected at once, each echoed its own data while all
// the others are open; then the server is back to its fds.
TEST(Echo, AThousandConcurrentConnections) {
    constexpr int kConns = 1000;
    // The client side (this process) and the server each hold kConns fds.
    rlimit lim{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
    const rlim_t need = kConns + 256;
    if (lim.rlim_cur < need) {
        if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < need)
            GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << lim.rlim_max << " < " << need;
        rlimit raised = lim;
        raised.rlim_cur = need;
        ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &raised), 0);
    }
    struct restore {
        rlimit l;
        ~restore() { ::setrlimit(RLIMIT_NOFILE, &l); }
    } put_back{lim};
    echo_server srv;                      // inherits the raised limit
    ASSERT_GT(srv.port(), 0) << "first line: " << srv.first_line();
    const int base = srv.serving_fd_count();
    coop::reactor r;
    std::vector<int> socks(kConns, -1);
    int tried = 0, connected = 0, finished = 0, echoed = 0, server_fds = -1;
    for (int c = 0; c < kConns; ++c)
        r.spawn([&, c] {
            socks[c] = connect_to(srv.port());
            ++tried;
            if (socks[c] >= 0) ++connected;
            while (tried < kConns) coop::sleep_for(2ms);   // all connections open at once
            if (socks[c] >= 0 && round_trip(socks[c], 200 + c % 100, c)) ++echoed;
            // The last one: every connection is still open, and the server
            // has accepted each one that was echoed.
            if (++finished == kConns) server_fds = srv.fd_count();
        }, {64 * 1024, "echo-client", false});
    r.run();
    EXPECT_EQ(connected, kConns);
    EXPECT_EQ(echoed, kConns);
    EXPECT_GE(server_fds, base + kConns);
    for (int s : socks)
        if (s >= 0) coop::close(s);
    EXPECT_TRUE(fds_back_to(srv, base)) << srv.fd_count() << " fds, expected " << base;
    EXPECT_EQ(srv.stop_with(SIGTERM), 0);
}

TEST(Echo, SignalsExitCleanlyWithOpenConnections) {
    for (int sig : {SIGINT, SIGTERM}) {
        echo_server srv;
        ASSERT_GT(srv.port(), 0) << "first line: " << srv.first_line();
        coop::reactor r;
        std::vector<int> open;
        r.spawn([&] {
            for (int i = 0; i < 5; ++i) {
                int s = connect_to(srv.port());
                ASSERT_GE(s, 0);
                ASSERT_TRUE(round_trip(s, 100, i));
                open.push_back(s);
            }
        });
        r.run();
        const int st = srv.stop_with(sig);
        EXPECT_TRUE(WIFEXITED(st)) << "signal " << sig << " status " << st;
        EXPECT_EQ(WEXITSTATUS(st), 0);
        for (int s : open) coop::close(s);
    }
}
