// src/poller_uring.cpp — the io_uring backend of src/poller.hpp (completion
// model; the default on Linux where the kernel accepts it).
//
// Raw system calls over <linux/io_uring.h>, not liburing: the three calls
// and the two shared rings are all coop needs; libcoop.a then needs no
// extra library at link time (pkg-config users, the consumers check), and
// the AArch64 cross build, whose sysroot has no liburing, builds the same
// code.
//
// The rings. The submission queue (SQ) and completion queue (CQ) are shared
// with the kernel (one mmap, IORING_FEAT_SINGLE_MMAP; the SQEs a second).
// Producer/consumer indices: SQ tail and CQ head are ours, SQ head and CQ
// tail the kernel's. We read the kernel's with acquire (what it wrote
// before moving them is then visible) and publish ours with release (the
// SQEs we filled, or our being done with the CQEs, before the index moves).
// The SQ index array maps slot i to SQE i once and for all.
//
// One system call per scheduler round: submit() only fills SQEs; wait()
// hands every queued SQE to the kernel and waits for completions in the
// same io_uring_enter, bounded by the deadline (IORING_ENTER_EXT_ARG's
// timeout). A wait(0) with nothing to submit and no completion work
// pending in the kernel (IORING_SQ_TASKRUN, with IORING_SETUP_TASKRUN_FLAG)
// makes no system call at all: it takes the CQEs already in the ring.
// IORING_SETUP_COOP_TASKRUN: the kernel runs our completion work when we
// enter it, instead of interrupting the thread for it.
//
// Wake-ups: an eventfd with a read always in flight. wake() writes the
// eventfd from any thread; the read completes, which ends a wait(); wait()
// queues the next read. Its completion is the backend's own (event() says
// false).
//
// Two tools cannot see a wait in io_uring_enter for what it is. Valgrind
// (3.19) runs it holding its lock on every thread of the process, so a wait
// there would stop the other threads (those that post, or write the data it
// waits for). ThreadSanitizer defers a signal that arrives during a system
// call it does not intercept until the call returns, so a handler's
// wake-up could wait for the next completion. Under either, wait()
// therefore submits and collects with io_uring_enter without waiting, and
// waits in ppoll on the ring's fd (readable when completions are there),
// which both know.
//
// Requirements, checked when the ring is set up (else make_poller falls
// back to epoll): IORING_FEAT_SINGLE_MMAP, NODROP (no completion is ever
// lost when the CQ is full), EXT_ARG, FAST_POLL (sockets wait in the
// kernel's poll machinery, not in worker threads), RW_CUR_POS, and the
// opcodes of Linux 5.19 (IORING_OP_SOCKET, probed, stands for them):
// cancellation by fd (IORING_ASYNC_CANCEL_FD | ALL) and multishot accept.
#include "poller.hpp"

#include "clock.hpp"
#include "coop/detail/sanitizers.h"

#include <linux/io_uring.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#if __has_include(<valgrind/valgrind.h>)
#  include <valgrind/valgrind.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace coop::detail {

namespace {

constexpr unsigned kSqEntries = 256;     // submissions per round, at most (more: flushed early)
constexpr unsigned kCqEntries = 8192;    // completions waiting to be taken (more: kernel's overflow list)
constexpr int kBatch = 256;              // completions per wait()
constexpr std::uint64_t kWakeToken = 1;  // the eventfd read
constexpr std::uint64_t kQuietToken = 2; // cancels: their answers are not needed

// A refusal that will not change during this process's life (no io_uring,
// disabled, a seccomp policy, a kernel without what we need): not asked again.
std::atomic<bool> g_refused{false};

unsigned load_acquire(const unsigned* p) noexcept { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
void store_release(unsigned* p, unsigned v) noexcept { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

int sys_setup(unsigned entries, io_uring_params* p) noexcept {
    return static_cast<int>(::syscall(__NR_io_uring_setup, entries, p));
}
int sys_register(int fd, unsigned op, void* arg, unsigned n) noexcept {
    return static_cast<int>(::syscall(__NR_io_uring_register, fd, op, arg, n));
}

// Why set-up failed: errno value, and whether that is for good.
struct refusal {
    int err;
    const char* what;
    bool lasting;
};

} // namespace

class uring_poller final : public poller {
public:
    // Throws refusal.
    uring_poller();
    ~uring_poller() override;

    const char* name() const noexcept override { return "io_uring"; }
    bool completion_based() const noexcept override { return true; }
    int add(int, std::uint64_t) noexcept override { return ENOSYS; }
    void remove(int) noexcept override {}
    int submit(const io_request& r, std::uint64_t token) noexcept override;
    void cancel(std::uint64_t token) noexcept override;
    void cancel_fd(int fd) noexcept override;
    void flush() noexcept override;
    int wait(std::int64_t deadline_ns) noexcept override;
    bool event(int i, poll_event* out) noexcept override;
    void wake() noexcept override;

private:
    int enter(unsigned to_submit, unsigned min_complete, unsigned flags, const void* arg,
              std::size_t argsz) noexcept {
        const long r = ::syscall(__NR_io_uring_enter, ring_fd_, to_submit, min_complete, flags, arg, argsz);
        return r < 0 ? -errno : static_cast<int>(r);
    }
    // A zeroed SQE to fill, or null when the SQ stays full after a flush.
    io_uring_sqe* next_sqe() noexcept;
    // Publish the SQ tail; returns how many SQEs the kernel has not taken yet.
    unsigned publish() noexcept {
        store_release(sq_ktail_, sq_tail_);
        return sq_tail_ - load_acquire(sq_khead_);
    }
    unsigned cq_ready() const noexcept { return load_acquire(cq_ktail_) - *cq_khead_; }
    void arm_wake() noexcept;
    void release() noexcept;
    // wait() without blocking in io_uring_enter (under Valgrind or TSan).
    int wait_in_ppoll(std::int64_t deadline_ns) noexcept;
    int take_completions() noexcept;

    int ring_fd_ = -1;
    int wake_fd_ = -1;
    void* ring_ = MAP_FAILED;            // SQ and CQ rings (one mapping)
    std::size_t ring_bytes_ = 0;
    io_uring_sqe* sqes_ = nullptr;
    std::size_t sqe_bytes_ = 0;
    unsigned* sq_khead_ = nullptr;       // kernel: SQEs taken so far
    unsigned* sq_ktail_ = nullptr;       // ours: SQEs published
    unsigned* sq_kflags_ = nullptr;      // kernel: IORING_SQ_TASKRUN, IORING_SQ_CQ_OVERFLOW
    unsigned sq_mask_ = 0;
    unsigned sq_entries_ = 0;
    unsigned sq_tail_ = 0;               // next SQE to fill (published by publish())
    unsigned* cq_khead_ = nullptr;       // ours: CQEs consumed
    unsigned* cq_ktail_ = nullptr;       // kernel: CQEs posted
    unsigned cq_mask_ = 0;
    io_uring_cqe* cqes_ = nullptr;
    bool wake_armed_ = false;            // the eventfd read is queued or in flight
    bool ppoll_waits_ = false;           // wait in ppoll (under Valgrind or TSan)
    std::uint64_t wake_buf_ = 0;         // what it reads (the kernel writes it)
    io_uring_cqe events_[kBatch];        // the last wait()'s completions
};

uring_poller::uring_poller() {
    io_uring_params p{};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
              IORING_SETUP_TASKRUN_FLAG;
    p.cq_entries = kCqEntries;
    ring_fd_ = sys_setup(kSqEntries, &p);
    if (ring_fd_ < 0) {
        const int e = errno;
        // ENOSYS: no io_uring (or an emulator); EPERM: disabled (sysctl
        // kernel.io_uring_disabled) or refused by seccomp; EINVAL: a kernel
        // older than the set-up flags (5.19).
        throw refusal{e, "io_uring_setup", e == ENOSYS || e == EPERM || e == EINVAL || e == EACCES};
    }
    constexpr unsigned need = IORING_FEAT_SINGLE_MMAP | IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG |
                              IORING_FEAT_FAST_POLL | IORING_FEAT_RW_CUR_POS;
    if ((p.features & need) != need) {
        release();
        throw refusal{ENOSYS, "io_uring features", true};
    }

    ring_bytes_ = std::max<std::size_t>(p.sq_off.array + p.sq_entries * sizeof(unsigned),
                                        p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe));
    ring_ = ::mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd_,
                   IORING_OFF_SQ_RING);
    if (ring_ == MAP_FAILED) {
        const int e = errno;
        release();
        throw refusal{e, "mmap of the io_uring rings", false};
    }
    sqe_bytes_ = p.sq_entries * sizeof(io_uring_sqe);
    void* s = ::mmap(nullptr, sqe_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd_,
                     IORING_OFF_SQES);
    if (s == MAP_FAILED) {
        const int e = errno;
        release();
        throw refusal{e, "mmap of the io_uring SQEs", false};
    }
    sqes_ = static_cast<io_uring_sqe*>(s);

    auto* base = static_cast<char*>(ring_);
    sq_khead_ = reinterpret_cast<unsigned*>(base + p.sq_off.head);
    sq_ktail_ = reinterpret_cast<unsigned*>(base + p.sq_off.tail);
    sq_kflags_ = reinterpret_cast<unsigned*>(base + p.sq_off.flags);
    sq_mask_ = *reinterpret_cast<unsigned*>(base + p.sq_off.ring_mask);
    sq_entries_ = p.sq_entries;
    auto* array = reinterpret_cast<unsigned*>(base + p.sq_off.array);
    for (unsigned i = 0; i < sq_entries_; ++i) array[i] = i;
    sq_tail_ = *sq_ktail_;
    cq_khead_ = reinterpret_cast<unsigned*>(base + p.cq_off.head);
    cq_ktail_ = reinterpret_cast<unsigned*>(base + p.cq_off.tail);
    cq_mask_ = *reinterpret_cast<unsigned*>(base + p.cq_off.ring_mask);
    cqes_ = reinterpret_cast<io_uring_cqe*>(base + p.cq_off.cqes);

    // The opcodes used, and IORING_OP_SOCKET as the mark of a 5.19 kernel
    // (cancel by fd with IORING_ASYNC_CANCEL_ALL, multishot accept).
    // io_uring_probe ends in a flexible array: room for it, zeroed (the
    // kernel fills only what it knows).
    alignas(io_uring_probe) unsigned char probe_mem[sizeof(io_uring_probe) +
                                                   IORING_OP_LAST * sizeof(io_uring_probe_op)] = {};
    auto* probe = reinterpret_cast<io_uring_probe*>(probe_mem);
    if (sys_register(ring_fd_, IORING_REGISTER_PROBE, probe, IORING_OP_LAST) != 0) {
        const int e = errno;
        release();
        throw refusal{e, "IORING_REGISTER_PROBE", e == EINVAL || e == ENOSYS || e == EPERM};
    }
    for (unsigned op : {IORING_OP_READ, IORING_OP_WRITE, IORING_OP_RECV, IORING_OP_SEND, IORING_OP_ACCEPT,
                        IORING_OP_CONNECT, IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL, IORING_OP_SOCKET}) {
        if (op > probe->last_op || !(probe->ops[op].flags & IO_URING_OP_SUPPORTED)) {
            release();
            throw refusal{ENOSYS, "io_uring opcodes of Linux 5.19", true};
        }
    }

    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) {
        const int e = errno;
        release();
        throw refusal{e, "eventfd", false};
    }
#if defined(COOP_TSAN)
    ppoll_waits_ = true;
#elif defined(RUNNING_ON_VALGRIND)
    ppoll_waits_ = RUNNING_ON_VALGRIND != 0;
#endif
}

void uring_poller::release() noexcept {
    if (sqes_) ::munmap(sqes_, sqe_bytes_);
    if (ring_ != MAP_FAILED) ::munmap(ring_, ring_bytes_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    // Closing the ring cancels what is still in flight; the reactor has
    // collected the completions of everything that refers to its memory.
    if (ring_fd_ >= 0) ::close(ring_fd_);
    sqes_ = nullptr;
    ring_ = MAP_FAILED;
    wake_fd_ = ring_fd_ = -1;
}

uring_poller::~uring_poller() { release(); }

io_uring_sqe* uring_poller::next_sqe() noexcept {
    if (sq_tail_ - load_acquire(sq_khead_) >= sq_entries_) [[unlikely]] {
        flush();
        if (sq_tail_ - load_acquire(sq_khead_) >= sq_entries_) return nullptr;
    }
    io_uring_sqe* sqe = &sqes_[sq_tail_ & sq_mask_];
    ++sq_tail_;
    std::memset(sqe, 0, sizeof *sqe);
    return sqe;
}

int uring_poller::submit(const io_request& r, std::uint64_t token) noexcept {
    io_uring_sqe* sqe = next_sqe();
    if (!sqe) [[unlikely]]
        return EBUSY;
    sqe->fd = r.fd;
    sqe->addr = reinterpret_cast<std::uintptr_t>(r.buf);
    sqe->len = r.len;
    sqe->user_data = token;
    switch (r.op) {
    case io_opcode::read:
        sqe->opcode = IORING_OP_READ;
        sqe->off = r.offset;
        break;
    case io_opcode::write:
        sqe->opcode = IORING_OP_WRITE;
        sqe->off = r.offset;
        break;
    case io_opcode::recv:
        sqe->opcode = IORING_OP_RECV;
        break;
    case io_opcode::send:
        sqe->opcode = IORING_OP_SEND;
        sqe->msg_flags = MSG_NOSIGNAL;
        break;
    case io_opcode::accept:
        sqe->opcode = IORING_OP_ACCEPT;
        sqe->addr = 0;
        sqe->len = 0;
        sqe->ioprio = IORING_ACCEPT_MULTISHOT;
        sqe->accept_flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
        break;
    case io_opcode::connect:
        sqe->opcode = IORING_OP_CONNECT;
        sqe->len = 0;
        sqe->off = r.len;              // the sockaddr's length
        break;
    case io_opcode::poll:
        sqe->opcode = IORING_OP_POLL_ADD;
        sqe->addr = 0;
        sqe->len = 0;
        sqe->poll32_events = r.len;    // little-endian targets only (x86-64, AArch64)
        break;
    }
    return 0;
}

void uring_poller::cancel(std::uint64_t token) noexcept {
    io_uring_sqe* sqe = next_sqe();
    if (!sqe) [[unlikely]]
        return;                        // SQ jammed: the operation ends by itself (the waiter waits)
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = -1;
    sqe->addr = token;
    sqe->user_data = kQuietToken;
}

void uring_poller::cancel_fd(int fd) noexcept {
    io_uring_sqe* sqe = next_sqe();
    if (!sqe) [[unlikely]]
        return;
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = fd;
    sqe->cancel_flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
    sqe->user_data = kQuietToken;
}

void uring_poller::flush() noexcept {
    // Without IORING_ENTER_GETEVENTS: submission only, the kernel issues
    // each SQE (a cancel does its work) before the call returns.
    for (;;) {
        const unsigned pending = publish();
        if (pending == 0) return;
        const int r = enter(pending, 0, 0, nullptr, 0);
        if (r != -EINTR) return;
    }
}

void uring_poller::arm_wake() noexcept {
    io_uring_sqe* sqe = next_sqe();
    if (!sqe) [[unlikely]]
        return;                        // tried again at the next wait()
    sqe->opcode = IORING_OP_READ;
    sqe->fd = wake_fd_;
    sqe->addr = reinterpret_cast<std::uintptr_t>(&wake_buf_);
    sqe->len = sizeof wake_buf_;
    sqe->off = 0;
    sqe->user_data = kWakeToken;
    wake_armed_ = true;
}

void uring_poller::wake() noexcept {
    const std::uint64_t one = 1;
    // EAGAIN only if the counter is about to overflow: a wake-up is pending anyway.
    ssize_t r = ::write(wake_fd_, &one, sizeof one);
    (void)r;
}

int uring_poller::wait(std::int64_t deadline_ns) noexcept {
    if (!wake_armed_) arm_wake();
    if (ppoll_waits_) [[unlikely]]
        return wait_in_ppoll(deadline_ns);
    for (;;) {
        const unsigned pending = publish();
        int r = 0;
        if (deadline_ns == 0 || cq_ready() != 0) {
            // Look without waiting: enter only to submit, or when the kernel
            // holds completion work for us or completions it could not post.
            if (pending != 0 ||
                (load_acquire(sq_kflags_) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0)
                r = enter(pending, 0, IORING_ENTER_GETEVENTS, nullptr, 0);
        } else {
            __kernel_timespec ts{};
            io_uring_getevents_arg arg{};
            arg.sigmask_sz = _NSIG / 8;
            if (deadline_ns != no_deadline_ns) {
                const std::int64_t now = monotonic_ns();
                const std::int64_t rel = deadline_ns > now ? deadline_ns - now : 0;
                ts.tv_sec = rel / 1000000000;
                ts.tv_nsec = rel % 1000000000;
                arg.ts = reinterpret_cast<std::uintptr_t>(&ts);
            }
            r = enter(pending, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
        }
        if (r == -EINTR) {
            // A signal: wait again for what remains (a call that also
            // submitted returns its count instead, and comes back early).
            if (deadline_ns != 0 && cq_ready() == 0) continue;
        } else if (r < 0 && r != -ETIME && r != -EAGAIN && r != -EBUSY) {
            // ETIME: the deadline. EAGAIN, EBUSY: the kernel is short of
            // room for completions: taking those there are makes some.
            return r;
        }
        break;
    }
    return take_completions();
}

int uring_poller::take_completions() noexcept {
    const unsigned head = *cq_khead_;
    const unsigned n = std::min<unsigned>(load_acquire(cq_ktail_) - head, kBatch);
    for (unsigned i = 0; i < n; ++i) events_[i] = cqes_[(head + i) & cq_mask_];
    store_release(cq_khead_, head + n);
    return static_cast<int>(n);
}

int uring_poller::wait_in_ppoll(std::int64_t deadline_ns) noexcept {
    for (;;) {
        // Submit, and run the kernel's completion work for us.
        const int r = enter(publish(), 0, IORING_ENTER_GETEVENTS, nullptr, 0);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) return r;
        if (cq_ready() != 0 || deadline_ns == 0) break;
        timespec ts{};
        const timespec* tp = nullptr;
        if (deadline_ns != no_deadline_ns) {
            const std::int64_t now = monotonic_ns();
            if (deadline_ns <= now) break;
            ts = to_timespec(deadline_ns - now);
            tp = &ts;
        }
        pollfd p{ring_fd_, POLLIN, 0};
        if (::ppoll(&p, 1, tp, nullptr) < 0 && errno != EINTR) return -errno;
    }
    return take_completions();
}

bool uring_poller::event(int i, poll_event* out) noexcept {
    const io_uring_cqe& c = events_[i];
    if (c.user_data < backend_tokens) {
        if (c.user_data == kWakeToken) wake_armed_ = false;   // wait() queues the next read
        return false;
    }
    out->what = poll_event::kind::done;
    out->token = c.user_data;
    out->result = c.res;
    out->more = (c.flags & IORING_CQE_F_MORE) != 0;
    return true;
}

std::unique_ptr<poller> make_uring_poller(bool must) {
    if (!must && g_refused.load(std::memory_order_relaxed)) return nullptr;
    try {
        return std::make_unique<uring_poller>();
    } catch (const refusal& r) {
        if (r.lasting) g_refused.store(true, std::memory_order_relaxed);
        if (must)
            throw std::system_error(r.err, std::generic_category(),
                                    std::string("coop::reactor: COOP_POLLER=io_uring: ") + r.what);
        return nullptr;
    }
}

} // namespace coop::detail
