// examples/stop_signals.hpp — SIGINT and SIGTERM as data a task can wait
// for: the shutdown path of the example servers (coop-echo, coop-kv).
//
// On Linux the two signals are blocked and read from a signalfd: no handler
// ever runs, so nothing async-signal-unsafe can happen (this also keeps TSan
// from queueing handler-based signals on a coroutine's stack). Call open()
// in main before any thread starts: threads inherit the blocked mask, so no
// thread takes the signal behind the signalfd's back. Elsewhere a handler
// writes a byte into a non-blocking pipe.
#pragma once

#include <coop/io.hpp>

#include <fcntl.h>
#include <signal.h>
#if defined(__linux__)
#  include <sys/signalfd.h>
#endif
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <string>
#include <system_error>

namespace coop_examples {

namespace detail {
inline int g_stop_pipe_write = -1;
extern "C" inline void on_stop_signal(int) {
    const int saved = errno;
    const char c = 1;
    ssize_t r = ::write(g_stop_pipe_write, &c, 1);   // async-signal-safe
    (void)r;
    errno = saved;
}
} // namespace detail

class stop_signals {
public:
    // Sets up the fd and ignores SIGPIPE (a peer that went away is an EPIPE
    // for the writer, not a death). False, after printing "<prog>: <call>:
    // <reason>" on stderr, if the kernel refuses.
    bool open(const char* prog) {
#if defined(__linux__)
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        ::sigprocmask(SIG_BLOCK, &set, nullptr);
        fd_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd_ < 0) return fail(prog, "signalfd");
        record_ = sizeof(signalfd_siginfo);
#else
        int p[2];
        if (::pipe(p) != 0) return fail(prog, "pipe");
        for (int fd : p) {
            ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
            ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        fd_ = p[0];
        detail::g_stop_pipe_write = p[1];
        struct sigaction sa{};
        sa.sa_handler = detail::on_stop_signal;
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGINT, &sa, nullptr);
        ::sigaction(SIGTERM, &sa, nullptr);
        record_ = 1;
#endif
        ::signal(SIGPIPE, SIG_IGN);
        return true;
    }

    // From a task: parks it until SIGINT or SIGTERM arrives (or the reactor
    // cancels the task).
    void wait() const {
        alignas(8) char record[128];   // room for a signalfd_siginfo
        while (coop::io::read(fd_, record, record_).error == std::errc::interrupted) {}
    }

private:
    bool fail(const char* prog, const char* call) {
        std::fprintf(stderr, "%s: %s: %s\n", prog, call, std::generic_category().message(errno).c_str());
        return false;
    }
    int fd_ = -1;
    std::size_t record_ = 1;   // what one signal is on fd_
};

} // namespace coop_examples
