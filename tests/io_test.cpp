// tests/io_test.cpp — coop::io over real pipes, socketpairs and loopback TCP:
// ping-pong, 1000+ concurrent echoed connections with every byte checked,
// connect/accept outcomes, read_exact/write_all edge cases.
#include <coop/channel.hpp>
#include <coop/io.hpp>
#include <coop/reactor.hpp>

#include "test_env.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

// A loopback listener on a kernel-chosen port.
int listen_loopback(sockaddr_in& addr, int backlog = 4096) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, backlog) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

int tcp_socket() { return ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

// Raise the soft fd limit to the hard one; returns the new soft limit.
rlim_t raise_fd_limit() {
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur;
}

unsigned char pattern(int conn, std::size_t i) {
    return static_cast<unsigned char>((conn * 131 + i * 7 + (i >> 8)) & 0xff);
}

void ping_pong(int a_rd, int a_wr, int b_rd, int b_wr, int rounds) {
    coop::reactor r;
    int a_count = 0, b_count = 0;
    r.spawn([&] {
        for (int i = 0; i < rounds; ++i) {
            std::uint32_t v = static_cast<std::uint32_t>(i);
            ASSERT_FALSE(coop::io::write_all(a_wr, &v, sizeof v).error);
            std::uint32_t back = 0;
            ASSERT_FALSE(coop::io::read_exact(a_rd, &back, sizeof back).error);
            ASSERT_EQ(back, v + 1);
            ++a_count;
        }
    });
    r.spawn([&] {
        for (int i = 0; i < rounds; ++i) {
            std::uint32_t v = 0;
            ASSERT_FALSE(coop::io::read_exact(b_rd, &v, sizeof v).error);
            ASSERT_EQ(v, static_cast<std::uint32_t>(i));
            ++v;
            ASSERT_FALSE(coop::io::write_all(b_wr, &v, sizeof v).error);
            ++b_count;
        }
    });
    r.run();
    EXPECT_EQ(a_count, rounds);
    EXPECT_EQ(b_count, rounds);
}

} // namespace

TEST(Io, PingPongOverSocketpair) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    ping_pong(fds[0], fds[0], fds[1], fds[1], 2000);
    coop::close(fds[0]);
    coop::close(fds[1]);
}

TEST(Io, PingPongOverPipes) {
    int ab[2], ba[2];
    ASSERT_EQ(::pipe2(ab, O_NONBLOCK | O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(ba, O_NONBLOCK | O_CLOEXEC), 0);
    ping_pong(ba[0], ab[1], ab[0], ba[1], 2000);
    for (int fd : {ab[0], ab[1], ba[0], ba[1]}) coop::close(fd);
}

TEST(Io, LargeTransferThroughASmallPipe) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    std::vector<unsigned char> out(4 << 20), in(out.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = pattern(3, i);
    coop::reactor r;
    r.spawn([&] { EXPECT_FALSE(coop::io::write_all(p[1], out.data(), out.size()).error); });
    r.spawn([&] {
        coop::io::result res = coop::io::read_exact(p[0], in.data(), in.size());
        EXPECT_FALSE(res.error);
        EXPECT_EQ(res.size, in.size());
    });
    r.run();
    EXPECT_TRUE(out == in);
    coop::close(p[0]);
    coop::close(p[1]);
}

TEST(Io, ReadExactReportsEarlyEnd) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    coop::reactor r;
    coop::io::result res;
    r.spawn([&] {
        char buf[10];
        res = coop::io::read_exact(fds[0], buf, sizeof buf);
    });
    r.spawn([&] {
        coop::io::write_all(fds[1], "abc", 3);
        coop::sleep_for(1ms);
        ::shutdown(fds[1], SHUT_WR);
    });
    r.run();
    EXPECT_EQ(res.size, 3u);
    EXPECT_EQ(res.error, std::errc::broken_pipe);
    coop::close(fds[0]);
    coop::close(fds[1]);
}

TEST(Io, ConnectRefusedAndAcceptDeadline) {
    sockaddr_in addr;
    int lfd = listen_loopback(addr);
    ASSERT_GE(lfd, 0);
    coop::reactor r;
    r.spawn([&] {
        auto t0 = std::chrono::steady_clock::now();
        coop::io::accept_result a = coop::io::accept(lfd, 10ms);
        EXPECT_EQ(a.error, std::errc::timed_out);
        EXPECT_GE(std::chrono::steady_clock::now() - t0, 10ms);
        // Connect to a port nobody listens on: take a port, then close it.
        sockaddr_in dead;
        int tmp = listen_loopback(dead);
        ASSERT_GE(tmp, 0);
        ::close(tmp);
        int s = tcp_socket();
        std::error_code e = coop::io::connect(s, reinterpret_cast<sockaddr*>(&dead), sizeof dead, 5s);
        EXPECT_EQ(e, std::errc::connection_refused);
        coop::close(s);
    });
    r.run();
    coop::close(lfd);
}

// Bytes and the FIN arrive together while the reader waits: it gets the
// bytes, then EOF, and EOF stays: reading or waiting again does not park
// (the kernel reports it once, with the bytes).
TEST(Io, DataAndEofArrivingTogetherOverTcp) {
    sockaddr_in addr;
    int lfd = listen_loopback(addr);
    ASSERT_GE(lfd, 0);
    coop::reactor r;
    int srv = -1, cli = -1;
    std::string got;
    std::size_t eofs = 0;
    std::error_code ready_at_eof;
    r.spawn([&] {
        cli = tcp_socket();
        ASSERT_FALSE(coop::io::connect(cli, reinterpret_cast<sockaddr*>(&addr), sizeof addr, 5s));
        coop::io::accept_result a = coop::io::accept(lfd, 5s);
        ASSERT_FALSE(a.error) << a.error.message();
        srv = a.fd;
        coop::task peer = coop::this_reactor().spawn([&] {
            coop::yield();                   // the reader is parked by now
            ASSERT_EQ(::write(cli, "abc", 3), 3);
            ASSERT_EQ(::shutdown(cli, SHUT_WR), 0);
        });
        char buf[256];
        for (;;) {
            coop::io::result res = coop::io::read(srv, buf, sizeof buf, 5s);
            ASSERT_FALSE(res.error) << res.error.message();
            if (res.size == 0) break;
            got.append(buf, res.size);
        }
        ++eofs;
        coop::io::result again = coop::io::read(srv, buf, sizeof buf, 5s);
        if (!again.error && again.size == 0) ++eofs;
        ready_at_eof = coop::wait_readable(srv, 5s);
        peer.join();
    });
    r.run();
    EXPECT_EQ(got, "abc");
    EXPECT_EQ(eofs, 2u);
    EXPECT_FALSE(ready_at_eof) << ready_at_eof.message();
    if (srv >= 0) coop::close(srv);
    if (cli >= 0) coop::close(cli);
    coop::close(lfd);
}

TEST(Io, IoOutsideATaskWorksWhenItNeedNotPark) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    EXPECT_FALSE(coop::io::write_all(fds[1], "hi", 2).error);
    char buf[2];
    EXPECT_FALSE(coop::io::read_exact(fds[0], buf, 2).error);
    EXPECT_EQ(std::memcmp(buf, "hi", 2), 0);
    ::close(fds[0]);
    ::close(fds[1]);
}

// 1000+ concurrent loopback connections, all open at once, each echoing a
// distinct pattern that is checked byte by byte.
TEST(Io, ThousandConcurrentLoopbackConnections) {
    constexpr int kConns = 1100;
    constexpr std::size_t kBytes = 6000;
    const rlim_t lim = raise_fd_limit();
    if (lim < 2 * kConns + 64) GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << lim << " is too low";

    sockaddr_in addr;
    int lfd = listen_loopback(addr);
    ASSERT_GE(lfd, 0);
    coop::reactor r;
    int echoed_ok = 0, accepted = 0, max_open = 0, open_now = 0;
    const coop::spawn_options small{64 * 1024, "conn", false};

    coop::task server = r.spawn([&] {
        for (int i = 0; i < kConns; ++i) {
            coop::io::accept_result a = coop::io::accept(lfd, 60s);
            ASSERT_FALSE(a.error) << a.error.message();
            ++accepted;
            coop::this_reactor().spawn([fd = a.fd] {
                char buf[2048];
                for (;;) {
                    coop::io::result res = coop::io::read(fd, buf, sizeof buf);
                    if (res.error || res.size == 0) break;
                    if (coop::io::write_all(fd, buf, res.size).error) break;
                }
                coop::close(fd);
            }, small);
        }
    }, small);

    coop::channel<int> all_connected;
    int connected = 0;
    for (int c = 0; c < kConns; ++c) {
        r.spawn([&, c] {
            int s = tcp_socket();
            ASSERT_GE(s, 0);
            std::error_code e = coop::io::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr, 60s);
            ASSERT_FALSE(e) << e.message();
            max_open = std::max(max_open, ++open_now);
            // Wait until every client is connected, so that all are open at once.
            if (++connected == kConns) all_connected.close();
            int dummy;
            all_connected.recv(dummy);
            std::vector<unsigned char> out(kBytes), in(kBytes);
            for (std::size_t i = 0; i < kBytes; ++i) out[i] = pattern(c, i);
            coop::task writer = coop::this_reactor().spawn([&] {
                // odd-sized pieces, interleaved with the reads
                std::size_t off = 0, piece = 1 + (c % 997);
                while (off < kBytes) {
                    std::size_t n = std::min(piece, kBytes - off);
                    ASSERT_FALSE(coop::io::write_all(s, out.data() + off, n).error);
                    off += n;
                    coop::yield();
                }
            }, small);
            coop::io::result res = coop::io::read_exact(s, in.data(), kBytes, 60s);
            writer.join();
            ASSERT_FALSE(res.error) << res.error.message();
            if (in == out) ++echoed_ok;
            --open_now;
            coop::close(s);
        }, small);
    }
    r.run();
    coop::close(lfd);
    EXPECT_EQ(accepted, kConns);
    EXPECT_EQ(max_open, kConns);
    EXPECT_EQ(echoed_ok, kConns);
}

// io::read always tries the read first: a short read of a stream socket
// does not mean the socket is drained. These pin down that no data and no
// EOF is left unread once its readiness has been consumed.
namespace {

int nonblocking_pair(int type, int fds[2]) {
    return ::socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
}

} // namespace

TEST(IoDrainedRead, EofQueuedBehindAShortReadIsSeen) {
    int fds[2];
    ASSERT_EQ(nonblocking_pair(SOCK_STREAM, fds), 0);
    coop::reactor r;
    std::string got;
    bool eof = false;
    r.spawn([&] {                            // runs first: finds nothing, registers, parks
        char buf[256];
        for (;;) {
            coop::io::result res = coop::io::read(fds[0], buf, sizeof buf, 5s);
            ASSERT_FALSE(res.error) << res.error.message();
            if (res.size == 0) { eof = true; break; }
            got.append(buf, res.size);
        }
    });
    r.spawn([&] {
        coop::yield();                       // the reader is parked on EAGAIN by now
        // data and FIN in one go: one edge for both
        ASSERT_EQ(::write(fds[1], "abc", 3), 3);
        ASSERT_EQ(::shutdown(fds[1], SHUT_WR), 0);
    });
    r.run();
    EXPECT_TRUE(eof);
    EXPECT_EQ(got, "abc");
    coop::close(fds[0]);
    ::close(fds[1]);
}

TEST(IoDrainedRead, BytesAfterAShortReadWakeTheReader) {
    int fds[2];
    ASSERT_EQ(nonblocking_pair(SOCK_STREAM, fds), 0);
    coop::reactor r;
    std::vector<std::size_t> sizes;
    r.spawn([&] {
        char buf[256];
        for (int i = 0; i < 3; ++i) {
            coop::io::result res = coop::io::read(fds[0], buf, sizeof buf, 5s);
            ASSERT_FALSE(res.error) << res.error.message();
            sizes.push_back(res.size);
        }
    });
    r.spawn([&] {
        for (int i = 1; i <= 3; ++i) {
            std::string msg(static_cast<std::size_t>(i * 10), 'x');
            ASSERT_EQ(::write(fds[1], msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
            EXPECT_FALSE(coop::sleep_for(2ms));   // the reader drains and parks in between
        }
    });
    r.run();
    EXPECT_EQ(sizes, (std::vector<std::size_t>{10, 20, 30}));
    coop::close(fds[0]);
    ::close(fds[1]);
}

TEST(IoDrainedRead, DatagramsAreNeverSkipped) {
    // A datagram shorter than the buffer does not mean the socket is drained.
    int fds[2];
    ASSERT_EQ(nonblocking_pair(SOCK_DGRAM, fds), 0);
    coop::reactor r;
    std::vector<std::string> got;
    r.spawn([&] {
        char buf[256];
        for (int i = 0; i < 3; ++i) {
            coop::io::result res = coop::io::read(fds[0], buf, sizeof buf, 2s);
            ASSERT_FALSE(res.error) << res.error.message();
            got.emplace_back(buf, res.size);
        }
    });
    r.spawn([&] {
        coop::yield();   // reader parks first and gets registered
        ASSERT_EQ(::write(fds[1], "one", 3), 3);
        ASSERT_EQ(::write(fds[1], "two", 3), 3);
        ASSERT_EQ(::write(fds[1], "three", 5), 5);
    });
    r.run();
    EXPECT_EQ(got, (std::vector<std::string>{"one", "two", "three"}));
    coop::close(fds[0]);
    ::close(fds[1]);
}

// ---------------------------------------------------------------- operations in flight
// On io_uring every call is an operation the kernel holds (with its buffer)
// until it completes; these pin down that closing, deadlines, cancels and
// teardown end them without losing or misdelivering data, on every backend.

namespace {

// Open fds of this process.
int open_fds() {
    int n = 0;
    for (int fd = 0; fd < 65536; ++fd)
        if (::fcntl(fd, F_GETFD) >= 0) ++n;
    return n;
}

} // namespace

// coop::close while a reader, a writer, a readiness waiter and an acceptor
// wait: each gets EBADF, and the socket is really closed (the peer sees the
// end of the stream): nothing in flight keeps the file open.
TEST(IoClose, CloseEndsEveryWaitWithEbadfAndReallyCloses) {
    int fds[2];
    ASSERT_EQ(nonblocking_pair(SOCK_STREAM, fds), 0);
    for (int i = 0; i < 4096 && ::send(fds[0], "xxxxxxxxxxxxxxxx", 16, MSG_NOSIGNAL) > 0; ++i) {}
    sockaddr_in addr;
    int lfd = listen_loopback(addr);
    ASSERT_GE(lfd, 0);
    coop::reactor r;
    std::error_code rd, rd2, wr, wait, wait_w, acc;
    std::size_t peer_got = 0;
    bool peer_eof = false;
    // Long deadlines: only the close may end these waits in time for the
    // peer's check below.
    r.spawn([&] {
        char buf[64];
        rd = coop::io::read(fds[0], buf, sizeof buf, 60s).error;
    });
    r.spawn([&] {
        std::vector<char> big(1 << 20, 'w');
        wr = coop::io::write_all(fds[0], big.data(), big.size(), 60s).error;
    });
    r.spawn([&] {                            // a second reader on the same fd
        char buf[64];
        rd2 = coop::io::read(fds[0], buf, sizeof buf, 60s).error;
    });
    r.spawn([&] { wait = coop::wait_readable(fds[0], 60s); });
    r.spawn([&] { wait_w = coop::wait_writable(fds[0], 60s); });
    r.spawn([&] { acc = coop::io::accept(lfd, 60s).error; });
    r.spawn([&] {
        coop::yield();                       // everyone is parked
        coop::sleep_for(5ms);
        EXPECT_FALSE(coop::close(fds[0]));
        EXPECT_FALSE(coop::close(lfd));
        // The peer drains what was sent, then must see the end.
        char buf[4096];
        for (;;) {
            coop::io::result res = coop::io::read(fds[1], buf, sizeof buf, 5s);
            if (res.error || res.size == 0) {
                peer_eof = !res.error;
                break;
            }
            peer_got += res.size;
        }
    });
    r.run();
    EXPECT_EQ(rd, std::errc::bad_file_descriptor) << rd.message();
    EXPECT_EQ(wr, std::errc::bad_file_descriptor) << wr.message();
    EXPECT_EQ(rd2, std::errc::bad_file_descriptor) << rd2.message();
    EXPECT_EQ(wait, std::errc::bad_file_descriptor) << wait.message();
    EXPECT_EQ(wait_w, std::errc::bad_file_descriptor) << wait_w.message();
    EXPECT_EQ(acc, std::errc::bad_file_descriptor) << acc.message();
    EXPECT_TRUE(peer_eof);
    EXPECT_GT(peer_got, 0u);
    coop::close(fds[1]);
}

// A read whose deadline passes, or whose task is canceled, consumes
// nothing: what arrives afterwards goes to the next read.
TEST(IoClose, TimedOutAndCanceledReadsLoseNothing) {
    int fds[2];
    ASSERT_EQ(nonblocking_pair(SOCK_STREAM, fds), 0);
    coop::reactor r;
    std::error_code timed, canceled;
    std::string got;
    coop::task victim = r.spawn([&] {
        char buf[16];
        canceled = coop::io::read(fds[0], buf, sizeof buf).error;
    });
    r.spawn([&] {
        char buf[16];
        auto t0 = std::chrono::steady_clock::now();
        timed = coop::io::read(fds[0], buf, sizeof buf, 20ms).error;
        EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
        victim.cancel();
        coop::yield();
        ASSERT_EQ(::write(fds[1], "after", 5), 5);
        coop::io::result res = coop::io::read(fds[0], buf, sizeof buf, 5s);
        ASSERT_FALSE(res.error) << res.error.message();
        got.assign(buf, res.size);
    });
    r.run();
    EXPECT_EQ(timed, std::errc::timed_out);
    EXPECT_EQ(canceled, std::errc::operation_canceled);
    EXPECT_EQ(got, "after");
    coop::close(fds[0]);
    coop::close(fds[1]);
}

// A deadline already past: what can complete without waiting still does;
// what would have to wait fails with ETIMEDOUT.
TEST(IoClose, PastDeadlineStillCompletesWhatIsReady) {
    int fds[2];
    ASSERT_EQ(nonblocking_pair(SOCK_STREAM, fds), 0);
    coop::reactor r;
    std::string got;
    std::error_code empty;
    r.spawn([&] {
        const auto past = std::chrono::steady_clock::now() - 1ms;
        ASSERT_EQ(::write(fds[1], "ready", 5), 5);
        char buf[16];
        coop::io::result res = coop::io::read(fds[0], buf, sizeof buf, past);
        ASSERT_FALSE(res.error) << res.error.message();
        got.assign(buf, res.size);
        empty = coop::io::read(fds[0], buf, sizeof buf, past).error;
    });
    r.run();
    EXPECT_EQ(got, "ready");
    EXPECT_EQ(empty, std::errc::timed_out);
    coop::close(fds[0]);
    coop::close(fds[1]);
}

// Destroying the reactor while a task reads into its stack buffer: the
// task ends (ECANCELED, or unwound when another task keeps the teardown
// busy) only once the kernel is done with the buffer, and the read
// consumed nothing: the bytes sent afterwards are all there.
TEST(IoClose, TeardownWaitsForReadsInFlightAndLosesNothing) {
    for (bool busy_teardown : {false, true}) {
        int fds[2];
        ASSERT_EQ(nonblocking_pair(SOCK_STREAM, fds), 0);
        int ended = 0;
        std::error_code seen;
        {
            coop::reactor r;
            r.spawn([&] {
                struct count {
                    int* n;
                    ~count() { ++*n; }
                } c{&ended};
                char buf[64];
                seen = coop::io::read(fds[0], buf, sizeof buf).error;
            });
            if (busy_teardown)   // ignores cancellation: the teardown runs out of rounds and unwinds
                r.spawn([] {
                    for (;;) coop::yield();
                });
            r.spawn([] { coop::yield(); });
            // Run until both have parked or yielded once, then destroy.
            r.spawn([&r] { r.stop(); });
            r.run();
        }
        EXPECT_EQ(ended, 1) << "busy teardown " << busy_teardown;
        if (!busy_teardown) {
            EXPECT_EQ(seen, std::errc::operation_canceled);
        }
        ASSERT_EQ(::write(fds[1], "later", 5), 5);
        char buf[16];
        EXPECT_EQ(::read(fds[0], buf, sizeof buf), 5) << "busy teardown " << busy_teardown;
        ::close(fds[0]);
        ::close(fds[1]);
    }
}

// Connections the kernel accepted for a listener (io_uring accepts ahead
// of io::accept) but nobody took are closed with the listener: the clients
// see the end, and no fd stays open.
TEST(IoClose, ConnectionsNobodyAcceptedGoWithTheListener) {
    const int before = open_fds();
    sockaddr_in addr;
    int lfd = listen_loopback(addr);
    ASSERT_GE(lfd, 0);
    int ended = 0;
    {
    coop::reactor r;
    r.spawn([&] {
        std::vector<int> clients;
        for (int i = 0; i < 5; ++i) {
            int s = tcp_socket();
            ASSERT_FALSE(coop::io::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr, 5s));
            clients.push_back(s);
        }
        sockaddr_in peer{};
        socklen_t plen = sizeof peer;
        coop::io::accept_result a = coop::io::accept(lfd, 5s, reinterpret_cast<sockaddr*>(&peer), &plen);
        ASSERT_FALSE(a.error) << a.error.message();
        EXPECT_EQ(plen, sizeof peer);
        EXPECT_EQ(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
        coop::sleep_for(10ms);                 // the kernel may accept the others meanwhile
        EXPECT_FALSE(coop::close(lfd));
        EXPECT_FALSE(coop::close(a.fd));
        for (int s : clients) {
            char c;
            coop::io::result res = coop::io::read(s, &c, 1, 5s);
            if ((!res.error && res.size == 0) || res.error == std::errc::connection_reset) ++ended;
            coop::close(s);
        }
    });
    r.run();
    }
    EXPECT_EQ(ended, 5);
    EXPECT_EQ(open_fds(), before);
}

// ---------------------------------------------------------------- files

namespace {

struct temp_file {
    int fd = -1;
    temp_file() {
        char name[] = "/tmp/coop-io-test-XXXXXX";
        fd = ::mkstemp(name);
        if (fd >= 0) ::unlink(name);
    }
    ~temp_file() {
        if (fd >= 0) coop::close(fd);
    }
};

} // namespace

TEST(IoFile, PreadPwriteAtOffsetsInsideAndOutsideTasks) {
    temp_file f;
    ASSERT_GE(f.fd, 0);
    std::vector<unsigned char> block(100000);
    for (std::size_t i = 0; i < block.size(); ++i) block[i] = pattern(9, i);
    // Outside a task: the plain system calls.
    ASSERT_EQ(coop::io::pwrite(f.fd, block.data(), 1000, 5000).size, 1000u);
    coop::reactor r;
    std::vector<unsigned char> back(block.size());
    std::size_t at_eof = 1;
    std::error_code bad_offset;
    int others = 0;
    r.spawn([&] {
        std::size_t put = 0;
        while (put < block.size()) {
            coop::io::result w = coop::io::pwrite(f.fd, block.data() + put, block.size() - put, put, 5s);
            ASSERT_FALSE(w.error) << w.error.message();
            put += w.size;
        }
        std::size_t got = 0;
        while (got < back.size()) {
            coop::io::result rd = coop::io::pread(f.fd, back.data() + got, back.size() - got, got, 5s);
            ASSERT_FALSE(rd.error) << rd.error.message();
            ASSERT_GT(rd.size, 0u);
            got += rd.size;
        }
        char c;
        at_eof = coop::io::pread(f.fd, &c, 1, block.size()).size;
        bad_offset = coop::io::pread(f.fd, &c, 1, ~std::uint64_t{0}).error;
    });
    r.spawn([&] {                            // runs while the file calls wait
        for (int i = 0; i < 3; ++i, ++others) coop::yield();
    });
    r.run();
    EXPECT_TRUE(back == block);
    EXPECT_EQ(at_eof, 0u);
    EXPECT_EQ(bad_offset, std::errc::invalid_argument);
    EXPECT_EQ(others, 3);
    // The file position was never used: a plain read starts at 0.
    unsigned char first[4];
    ASSERT_EQ(::read(f.fd, first, 4), 4);
    EXPECT_EQ(std::memcmp(first, block.data(), 4), 0);
}

// io::read and io::write on a regular file use and move its position.
TEST(IoFile, ReadAndWriteFollowTheFilePosition) {
    temp_file f;
    ASSERT_GE(f.fd, 0);
    coop::reactor r;
    std::string got;
    r.spawn([&] {
        ASSERT_FALSE(coop::io::write_all(f.fd, "hello ", 6).error);
        ASSERT_FALSE(coop::io::write_all(f.fd, "world", 5).error);
        ASSERT_EQ(::lseek(f.fd, 0, SEEK_SET), 0);
        char buf[6];
        ASSERT_FALSE(coop::io::read_exact(f.fd, buf, 6).error);
        got.assign(buf, 6);
        coop::io::result rest = coop::io::read(f.fd, buf, sizeof buf);
        ASSERT_FALSE(rest.error);
        got.append(buf, rest.size);
    });
    r.run();
    EXPECT_EQ(got, "hello world");
}

// TCP urgent data stops a read at the urgent mark: "hello" comes back short
// while "world" is already queued behind the mark, with no edge to come.
TEST(IoDrainedRead, DataBehindAnUrgentByteIsRead) {
    sockaddr_in addr;
    const int lfd = listen_loopback(addr);
    ASSERT_GE(lfd, 0);
    coop::reactor r;
    std::string got;
    std::vector<std::size_t> sizes;
    std::error_code err;
    r.spawn([&] {
        const int c = tcp_socket();
        ASSERT_FALSE(coop::io::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr, 5s));
        coop::io::accept_result a = coop::io::accept(lfd, 5s);
        ASSERT_FALSE(a.error) << a.error.message();
        coop::task reader = coop::this_reactor().spawn([&, fd = a.fd] {
            char buf[64];
            while (got.size() < 10) {
                coop::io::result res = coop::io::read(fd, buf, sizeof buf, 5s);
                if (res.error || res.size == 0) {
                    err = res.error;
                    break;
                }
                sizes.push_back(res.size);
                got.append(buf, res.size);
            }
        });
        EXPECT_FALSE(coop::sleep_for(5ms));   // the reader has found nothing and parked
        ASSERT_EQ(::send(c, "hello", 5, MSG_NOSIGNAL), 5);
        ASSERT_EQ(::send(c, "!", 1, MSG_OOB | MSG_NOSIGNAL), 1);   // the urgent byte, out of band
        ASSERT_EQ(::send(c, "world", 5, MSG_NOSIGNAL), 5);
        EXPECT_FALSE(reader.join());
        coop::close(a.fd);
        coop::close(c);
    });
    r.run();
    coop::close(lfd);
    EXPECT_FALSE(err) << err.message();
    EXPECT_EQ(got, "helloworld");
    EXPECT_GE(sizes.size(), 2u);   // the kernel did stop at the mark: the case this pins down
}

namespace {
// Send `data` over a Unix socket with `passed` attached as SCM_RIGHTS.
ssize_t send_with_fd(int sock, const char* data, std::size_t n, int passed) {
    iovec iov{const_cast<char*>(data), n};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof ctrl;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &passed, sizeof(int));
    return ::sendmsg(sock, &msg, MSG_NOSIGNAL);
}
} // namespace

// A Unix stream read stops at a message carrying SCM_RIGHTS (before it, and
// after it): the bytes behind it are read, not waited for.
TEST(IoDrainedRead, DataAroundAMessageCarryingAnFdIsRead) {
    int fds[2];
    ASSERT_EQ(nonblocking_pair(SOCK_STREAM, fds), 0);
    int passed[2];
    ASSERT_EQ(::pipe2(passed, O_CLOEXEC), 0);
    coop::reactor r;
    std::string got;
    std::vector<std::size_t> sizes;
    std::error_code err;
    r.spawn([&] {
        char buf[64];
        while (got.size() < 8) {
            coop::io::result res = coop::io::read(fds[0], buf, sizeof buf, 5s);
            if (res.error || res.size == 0) {
                err = res.error;
                break;
            }
            sizes.push_back(res.size);
            got.append(buf, res.size);
        }
    });
    r.spawn([&] {
        EXPECT_FALSE(coop::sleep_for(5ms));   // the reader has found nothing and parked
        ASSERT_EQ(::send(fds[1], "abc", 3, MSG_NOSIGNAL), 3);
        ASSERT_EQ(send_with_fd(fds[1], "def", 3, passed[0]), 3);
        ASSERT_EQ(::send(fds[1], "gh", 2, MSG_NOSIGNAL), 2);
    });
    r.run();
    EXPECT_FALSE(err) << err.message();
    EXPECT_EQ(got, "abcdefgh");
    EXPECT_GE(sizes.size(), 2u);   // the kernel did stop short: the case this pins down
    coop::close(fds[0]);
    ::close(fds[1]);
    ::close(passed[0]);
    ::close(passed[1]);
}

// After a task's short read, a read outside any task with bytes ready
// returns them (it must not conclude it would have to wait).
TEST(IoDrainedRead, ReadOutsideATaskAfterAShortReadReturnsTheBytesReady) {
    int fds[2];
    ASSERT_EQ(nonblocking_pair(SOCK_STREAM, fds), 0);
    coop::reactor r;
    r.spawn([&] {
        char buf[64];
        coop::io::result res = coop::io::read(fds[0], buf, sizeof buf, 5s);   // parks, then short
        EXPECT_FALSE(res.error) << res.error.message();
        EXPECT_EQ(res.size, 3u);
    });
    r.spawn([&] {
        EXPECT_FALSE(coop::sleep_for(2ms));
        ASSERT_EQ(::send(fds[1], "abc", 3, MSG_NOSIGNAL), 3);
    });
    r.run();
    ASSERT_EQ(::send(fds[1], "12345", 5, MSG_NOSIGNAL), 5);
    char buf[64];
    coop::io::result res;
    ASSERT_NO_THROW(res = coop::io::read(fds[0], buf, sizeof buf));
    EXPECT_FALSE(res.error) << res.error.message();
    ASSERT_EQ(res.size, 5u);
    EXPECT_EQ(std::string(buf, 5), "12345");
    coop::close(fds[0]);
    ::close(fds[1]);
}

namespace {
// In a child process with SIGPIPE at its default disposition: a pipe is
// written once through io::write and closed with plain ::close() (it was
// never waited on); a socket whose peer is gone then gets the same fd
// number. io::write on it must give EPIPE. Exit 0 on EPIPE, 2 otherwise;
// SIGPIPE would kill the child instead.
[[noreturn]] void write_to_a_socket_that_reused_a_pipes_fd_number() {
    ::signal(SIGPIPE, SIG_DFL);
    int code = 3;
    {
        coop::reactor r;
        r.spawn([&] {
            int p[2];
            if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return;
            if (coop::io::write(p[1], "x", 1).size != 1) return;
            const int num = p[1];
            ::close(p[1]);
            ::close(p[0]);
            int s[2];
            if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s) != 0) return;
            if (s[1] == num) std::swap(s[0], s[1]);
            if (s[0] != num) {
                if (::dup3(s[0], num, O_CLOEXEC) != num) return;
                ::close(s[0]);
            }
            ::close(s[1]);   // the peer goes away
            const coop::io::result res = coop::io::write(num, "y", 1);
            code = res.error == std::errc::broken_pipe ? 0 : 2;
            if (code) std::fprintf(stderr, "io::write gave size %zu, %s\n", res.size, res.error.message().c_str());
            ::close(num);
        });
        r.run();
    }
    std::fflush(stderr);
    std::_Exit(code);
}
} // namespace

TEST(IoWriteDeathTest, EpipeNotSigpipeOnASocketThatReusedAPipesFdNumber) {
    GTEST_FLAG_SET(death_test_style, coop_test::kDeathTestStyle);
    EXPECT_EXIT(write_to_a_socket_that_reused_a_pipes_fd_number(), ::testing::ExitedWithCode(0), "");
}
