// tests/progs/backend_probe.cpp — which kernel backend a reactor gets, in a
// process of its own (the tests and `make test` run it).
//
//   backend_probe --default          print the backend a reactor gets here
//   backend_probe [--deny-io-uring]  the same, then whether COOP_POLLER=io_uring
//                                    is granted, then a ping-pong through coop::io
//
// --deny-io-uring first installs a seccomp filter under which io_uring_setup
// fails with EPERM, as container runtimes' default policies make it fail:
// the reactor must fall back to epoll without a word, and forcing io_uring
// must be refused with an error. Output, one item per line:
//   backend <name>
//   forced io_uring: granted | refused | unknown backend
//   io ok | io failed: <why>
// COOP_POLLER from the environment is ignored (it is what is being probed).
#include <coop/io.hpp>
#include <coop/reactor.hpp>

#include <sys/socket.h>
#include <unistd.h>
#if defined(__linux__)
#  include <linux/audit.h>
#  include <linux/filter.h>
#  include <linux/seccomp.h>
#  include <sys/prctl.h>
#  include <sys/syscall.h>
#endif

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

namespace {

#if defined(__linux__) && defined(__NR_io_uring_setup)
bool deny_io_uring() {
#  if defined(__x86_64__)
    constexpr unsigned arch = AUDIT_ARCH_X86_64;
#  elif defined(__aarch64__)
    constexpr unsigned arch = AUDIT_ARCH_AARCH64;
#  endif
    sock_filter prog[] = {
        // Another architecture's calls (an emulator's host calls): allowed.
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog fprog{static_cast<unsigned short>(sizeof prog / sizeof prog[0]), prog};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
    return ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) == 0;
}
#else
bool deny_io_uring() { return true; }   // nothing to deny
#endif

std::string ping_pong() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
        return std::string("io failed: socketpair: ") + std::strerror(errno);
    coop::reactor r;
    std::string out = "io failed: never ran";
    r.spawn([&] {
        char got[4] = {};
        coop::task peer = coop::this_reactor().spawn([&] {
            char buf[4];
            if (!coop::io::read_exact(fds[1], buf, 4).error) coop::io::write_all(fds[1], buf, 4);
        });
        std::error_code e = coop::io::write_all(fds[0], "ping", 4).error;
        if (!e) e = coop::io::read_exact(fds[0], got, 4).error;
        peer.join();
        out = e ? "io failed: " + e.message() : std::memcmp(got, "ping", 4) == 0 ? "io ok" : "io failed: bytes";
    });
    r.run();
    coop::close(fds[0]);
    coop::close(fds[1]);
    return out;
}

} // namespace

int main(int argc, char** argv) {
    const bool only_default = argc > 1 && std::strcmp(argv[1], "--default") == 0;
    const bool deny = argc > 1 && std::strcmp(argv[1], "--deny-io-uring") == 0;
    if (deny && !deny_io_uring()) {
        // ENOSYS/EINVAL: no seccomp filters here at all (qemu-user does not
        // implement them): exit 77, which the test takes as "cannot check".
        const int e = errno;
        std::perror("backend_probe: seccomp");
        return e == ENOSYS || e == EINVAL ? 77 : 2;
    }
    ::unsetenv("COOP_POLLER");
    if (only_default) {
        std::printf("%s\n", coop::reactor::default_backend());
        return 0;
    }
    {
        coop::reactor r;
        std::printf("backend %s\n", r.backend());
    }
    const char* forced = "granted";
    ::setenv("COOP_POLLER", "io_uring", 1);
    try {
        coop::reactor r;
    } catch (const std::system_error&) {
        forced = "refused";
    } catch (const std::invalid_argument&) {
        forced = "unknown backend";
    }
    ::unsetenv("COOP_POLLER");
    std::printf("forced io_uring: %s\n%s\n", forced, ping_pong().c_str());
    return 0;
}
