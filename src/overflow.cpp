// src/overflow.cpp — report a coroutine stack overflow instead of dying
// silently (or worse, not dying) when a coroutine runs into its guard page.
//
// Pieces:
//   - one process-wide SIGSEGV/SIGBUS handler (SA_ONSTACK) that knows the
//     running coroutine of its thread through detail::this_thread(), whose
//     control block holds the stack bounds, the id and the name;
//   - an alternate signal stack per thread that runs coroutines: a fault
//     on an exhausted stack can only be handled on another one;
//   - chaining: whatever handler was installed before coop's gets every
//     fault that is not a coroutine overflow, and with no previous handler
//     the process dies of the signal exactly as it would have without coop.
//
// Everything the handler does is async-signal-safe: it reads the thread's
// current frame, formats the line by hand into a local buffer, write(2)s it
// and calls abort().
#include "coop/overflow.hpp"
#include "overflow_internal.hpp"

#include "coop/detail/fiber.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace coop {
namespace {

// A frame larger than the guard page can step over it: the fault then lands
// below the guard. Such a fault still counts as an overflow when the stack
// pointer itself has left the coroutine's stack, downwards, by at most this.
constexpr std::uintptr_t kReachBelowGuard = 256 * 1024;

std::mutex g_install_mutex;
// The handlers coop's replaced, indexed by slot_of(sig). Written under the
// mutex before coop's handler is (re)installed, read by the handler.
struct sigaction g_prev[2];
std::atomic<bool> g_auto_installed{false};

// The alternate signal stack coop gave this thread (if any); unmapped when
// the thread ends.
struct alt_stack_owner {
    void* base = nullptr;       // mapping: guard page, then the stack
    std::size_t length = 0;
    ~alt_stack_owner();
};
thread_local alt_stack_owner t_alt;
// 0: this thread has not run a coroutine yet; 1: armed; 2: thread exiting.
constinit thread_local unsigned char t_armed [[gnu::tls_model("initial-exec")]] = 0;

int slot_of(int sig) noexcept { return sig == SIGBUS ? 1 : 0; }

// ---------------------------------------------------------------- formatting
// A tiny append-only buffer; never overflows, truncates instead.
struct line {
    char buf[256];
    std::size_t n = 0;
    void put(char c) noexcept {
        if (n < sizeof buf) buf[n++] = c;
    }
    void put(const char* s) noexcept {
        while (*s) put(*s++);
    }
    void dec(std::uint64_t v) noexcept {
        char tmp[24];
        int i = 0;
        do {
            tmp[i++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v);
        while (i) put(tmp[--i]);
    }
    void hex(std::uintptr_t v) noexcept {
        static const char digits[] = "0123456789abcdef";
        char tmp[2 * sizeof v];
        int i = 0;
        do {
            tmp[i++] = digits[v & 15];
            v >>= 4;
        } while (v);
        put("0x");
        while (i) put(tmp[--i]);
    }
    void flush(int fd) const noexcept {
        std::size_t done = 0;
        while (done < n) {
            ssize_t w = ::write(fd, buf + done, n - done);
            if (w > 0)
                done += static_cast<std::size_t>(w);
            else if (w < 0 && errno == EINTR)
                continue;
            else
                return;
        }
    }
};

std::uintptr_t stack_pointer_of(const void* ucontext) noexcept {
    if (!ucontext) return 0;
    const auto* uc = static_cast<const ucontext_t*>(ucontext);
#if defined(__linux__) && defined(__x86_64__)
    return static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__linux__) && defined(__aarch64__)
    return static_cast<std::uintptr_t>(uc->uc_mcontext.sp);
#elif defined(__APPLE__) && defined(__x86_64__)
    return static_cast<std::uintptr_t>(uc->uc_mcontext->__ss.__rsp);
#elif defined(__APPLE__) && defined(__aarch64__)
    return static_cast<std::uintptr_t>(uc->uc_mcontext->__ss.__sp);
#else
    (void)uc;
    return 0;   // unknown layout: only faults inside the guard page count
#endif
}

// Is the fault at addr (stack pointer sp, 0 if unknown) an overflow of f?
bool is_overflow_of(const detail::fiber* f, std::uintptr_t addr, std::uintptr_t sp) noexcept {
    if (!f || !f->stk) return false;
    const auto guard_lo = reinterpret_cast<std::uintptr_t>(f->stk.guard_lo());
    const auto bottom = reinterpret_cast<std::uintptr_t>(f->stk.bottom());
    if (addr >= guard_lo && addr < bottom) return true;     // in the guard page
    // A big frame stepped over the guard: the stack pointer is below the
    // stack, near it, and so is the fault.
    const std::uintptr_t floor = guard_lo > kReachBelowGuard ? guard_lo - kReachBelowGuard : 0;
    return sp != 0 && sp < bottom && sp >= floor && addr < bottom && addr >= floor;
}

[[noreturn]] void report(const detail::fiber* f) noexcept {
    line l;
    l.put("coop: stack overflow in coroutine ");
    if (f->name[0]) {
        for (std::size_t i = 0; i < sizeof f->name && f->name[i]; ++i) {
            const unsigned char c = static_cast<unsigned char>(f->name[i]);
            l.put(c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c));
        }
    } else {
        l.put('#');
        l.dec(f->id);
    }
    l.put(" (stack ");
    l.hex(reinterpret_cast<std::uintptr_t>(f->stk.bottom()));
    l.put('-');
    l.hex(reinterpret_cast<std::uintptr_t>(f->stk.top()));
    l.put(", ");
    l.dec(f->stk.size());
    l.put(" bytes)\n");
    l.flush(2);
    ::abort();
}

// Hand a fault that is not ours to whoever had the signal before coop.
void pass_on(int sig, siginfo_t* info, void* ucontext) noexcept {
    const struct sigaction& prev = g_prev[slot_of(sig)];
    if (prev.sa_flags & SA_SIGINFO) {
        if (prev.sa_sigaction) {
            ::pthread_sigmask(SIG_BLOCK, &prev.sa_mask, nullptr);   // undone by sigreturn
            prev.sa_sigaction(sig, info, ucontext);
            return;
        }
    } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
        ::pthread_sigmask(SIG_BLOCK, &prev.sa_mask, nullptr);
        prev.sa_handler(sig);
        return;
    } else if (prev.sa_handler == SIG_IGN && info && info->si_code <= 0) {
        return;   // a SIGSEGV someone sent, which the program ignores
    }
    // The default action: die of this very signal.
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(sig, &dfl, nullptr);
    if (!info || info->si_code <= 0) {
        // Sent by kill/raise, not a fault: send it again. It stays pending
        // (blocked while we run) and kills us when the handler returns.
        ::raise(sig);
    }
    // A real fault: returning re-runs the faulting instruction, which faults
    // again and now takes the default action, with the original context.
}

extern "C" void coop_fault_handler(int sig, siginfo_t* info, void* ucontext) {
    const int saved_errno = errno;
    report_stack_overflow(info, ucontext);   // does not return on an overflow
    pass_on(sig, info, ucontext);
    errno = saved_errno;
}

bool is_ours(const struct sigaction& sa) noexcept {
    return (sa.sa_flags & SA_SIGINFO) && sa.sa_sigaction == &coop_fault_handler;
}

void install_handlers() noexcept {
    std::lock_guard<std::mutex> lock(g_install_mutex);
    for (int sig : {SIGSEGV, SIGBUS}) {
        struct sigaction cur;
        if (::sigaction(sig, nullptr, &cur) != 0 || is_ours(cur)) continue;
        g_prev[slot_of(sig)] = cur;
        struct sigaction ours;
        std::memset(&ours, 0, sizeof ours);
        ours.sa_sigaction = &coop_fault_handler;
        ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&ours.sa_mask);
        ::sigaction(sig, &ours, nullptr);
    }
}

// Give this thread an alternate signal stack unless it has one already
// (the program's own, or a sanitizer runtime's, are left alone).
void ensure_alt_stack() noexcept {
    stack_t cur;
    if (::sigaltstack(nullptr, &cur) != 0) return;
    if (!(cur.ss_flags & SS_DISABLE)) return;
    if (t_alt.base) return;
    const std::size_t page = stack::page_size();
    const std::size_t size = overflow_signal_stack_size();
    void* m = ::mmap(nullptr, size + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return;
    ::mprotect(m, page, PROT_NONE);    // a guard below the signal stack too
    stack_t ss;
    std::memset(&ss, 0, sizeof ss);
    ss.ss_sp = static_cast<char*>(m) + page;
    ss.ss_size = size;
    ss.ss_flags = 0;
    if (::sigaltstack(&ss, nullptr) != 0) {
        ::munmap(m, size + page);
        return;
    }
    t_alt.base = m;
    t_alt.length = size + page;
}

alt_stack_owner::~alt_stack_owner() {
    t_armed = 2;   // do not arm again while the thread ends
    if (!base) return;
    stack_t cur;
    if (::sigaltstack(nullptr, &cur) == 0 && !(cur.ss_flags & SS_DISABLE) &&
        cur.ss_sp == static_cast<char*>(base) + stack::page_size()) {
        if (cur.ss_flags & SS_ONSTACK) return;   // cannot happen in a destructor; keep it then
        stack_t off;
        std::memset(&off, 0, sizeof off);
        off.ss_flags = SS_DISABLE;
        ::sigaltstack(&off, nullptr);
    }
    ::munmap(base, length);
    base = nullptr;
}

bool auto_install_enabled() noexcept {
    const char* v = std::getenv("COOP_OVERFLOW_HANDLER");
    return !(v && v[0] == '0' && v[1] == '\0');
}

} // namespace

std::size_t overflow_signal_stack_size() noexcept {
    std::size_t want = 64 * 1024;
#if defined(_SC_MINSIGSTKSZ)
    long min = ::sysconf(_SC_MINSIGSTKSZ);   // grows with the CPU's register file (AVX-512, SVE)
    if (min > 0 && static_cast<std::size_t>(min) * 4 > want) want = static_cast<std::size_t>(min) * 4;
#endif
    if (SIGSTKSZ > 0 && static_cast<std::size_t>(SIGSTKSZ) * 4 > want)
        want = static_cast<std::size_t>(SIGSTKSZ) * 4;
    const std::size_t page = stack::page_size();
    return (want + page - 1) & ~(page - 1);
}

void install_overflow_handler() noexcept {
    install_handlers();
    if (t_armed != 2) {
        ensure_alt_stack();
        t_armed = 1;
    }
}

bool report_stack_overflow(const siginfo_t* info, const void* ucontext) noexcept {
    if (!info || info->si_code <= 0) return false;   // sent, not a fault
    const detail::fiber* f = detail::this_thread()->current;
    if (!f) return false;
    if (!is_overflow_of(f, reinterpret_cast<std::uintptr_t>(info->si_addr), stack_pointer_of(ucontext)))
        return false;
    report(f);
}

namespace detail {

void overflow_arm() noexcept {
    if (t_armed) [[likely]]
        return;
    t_armed = 1;
    if (!auto_install_enabled()) return;
    // acq_rel: one thread installs; install_handlers() itself runs under a mutex
    if (!g_auto_installed.exchange(true, std::memory_order_acq_rel)) install_handlers();
    ensure_alt_stack();
}

} // namespace detail
} // namespace coop
