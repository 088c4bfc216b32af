// src/poller.cpp — which backend a new reactor gets (src/poller.hpp).
//
// Linux builds carry io_uring and epoll: io_uring when the kernel accepts
// io_uring_setup and has what the backend needs (see poller_uring.cpp),
// otherwise epoll, silently: a kernel that is too old, io_uring disabled by
// sysctl or refused by a seccomp policy (containers often do), or an
// emulator that does not implement it (qemu-user). POLLER=kqueue builds
// carry kqueue only. COOP_POLLER=name forces one backend of the build.
#include "poller.hpp"

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace coop::detail {

namespace {

#if defined(COOP_POLLER_KQUEUE)
constexpr const char* kBuilt = "kqueue";
#else
constexpr const char* kBuilt = "io_uring, epoll";
#endif

// COOP_POLLER, or null when unset or empty.
const char* forced() noexcept {
    const char* v = std::getenv("COOP_POLLER");
    return (v && *v) ? v : nullptr;
}

[[noreturn]] void unknown(const char* v) {
    throw std::invalid_argument(std::string("coop::reactor: COOP_POLLER=") + v +
                                " is not a backend of this build (" + kBuilt + ")");
}

} // namespace

std::unique_ptr<poller> make_poller() {
    const char* want = forced();
#if defined(COOP_POLLER_KQUEUE)
    if (want && std::strcmp(want, "kqueue") != 0) unknown(want);
    return make_kqueue_poller();
#else
    if (want) {
        if (std::strcmp(want, "epoll") == 0) return make_epoll_poller();
        if (std::strcmp(want, "io_uring") == 0) return make_uring_poller(true);
        unknown(want);
    }
    if (auto p = make_uring_poller(false)) return p;
    return make_epoll_poller();
#endif
}

const char* default_poller_name() {
    return make_poller()->name();   // name() returns a literal: it outlives the backend
}

} // namespace coop::detail
