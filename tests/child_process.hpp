// tests/child_process.hpp — a program the tests start and talk to (coop-echo,
// coop-kv): spawned with COOP_RUN_PREFIX in front when asked (qemu-user,
// Valgrind), its stdout read line by line, its fds counted from /proc, and
// it is stopped with a signal. A child still running when the object goes is
// killed (SIGKILL) and reaped.
#ifndef COOP_TESTS_CHILD_PROCESS_HPP
#define COOP_TESTS_CHILD_PROCESS_HPP

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace coop_test {

// Generous: under qemu-user everything is about ten times slower.
inline constexpr std::chrono::seconds kChildPatience{60};

// Waits (bounded) for a child; returns its wait status or -1.
inline int wait_child(pid_t pid, std::chrono::steady_clock::duration patience) {
    const auto until = std::chrono::steady_clock::now() + patience;
    while (std::chrono::steady_clock::now() < until) {
        int st = 0;
        if (::waitpid(pid, &st, WNOHANG) == pid) return st;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return -1;
}

class child_process {
public:
    // words[0] is the program; pid() is -1 if it could not be started.
    child_process(std::vector<std::string> words, bool use_prefix) {
        if (const char* pre = std::getenv("COOP_RUN_PREFIX"); use_prefix && pre) {
            std::istringstream in(pre);
            std::vector<std::string> p;
            for (std::string w; in >> w;) p.push_back(w);
            words.insert(words.begin(), p.begin(), p.end());
        }
        std::vector<char*> argv;
        for (auto& w : words) argv.push_back(w.data());
        argv.push_back(nullptr);
        int out[2];
        if (::pipe2(out, O_CLOEXEC) != 0) return;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        const int rc = ::posix_spawnp(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        ::close(out[1]);
        if (rc != 0) {
            pid_ = -1;
            ::close(out[0]);
            return;
        }
        out_ = out[0];
    }
    ~child_process() {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            int st;
            ::waitpid(pid_, &st, 0);
        }
        if (out_ >= 0) ::close(out_);
    }
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    pid_t pid() const { return pid_; }

    // The next line of its stdout, without the newline ("" if none came
    // within the patience).
    std::string read_line() {
        std::string line;
        const auto until = std::chrono::steady_clock::now() + kChildPatience;
        while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < until) {
            pollfd p{out_, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            char c;
            if (::read(out_, &c, 1) != 1) break;
            line.push_back(c);
        }
        return line.substr(0, line.find('\n'));
    }

    // The port of a first line "listening on 127.0.0.1:PORT", else 0.
    static int listening_port(const std::string& first_line) {
        const auto colon = first_line.rfind(':');
        if (first_line.rfind("listening on 127.0.0.1:", 0) == 0 && colon != std::string::npos)
            return std::atoi(first_line.c_str() + colon + 1);
        return 0;
    }

    // Signal, then wait for the exit; the wait status or -1.
    int stop_with(int sig) {
        ::kill(pid_, sig);
        const int st = wait_child(pid_, kChildPatience);
        if (st != -1) reaped_ = true;
        return st;
    }

    // Open fds of the process (of qemu, when cross-running: compare
    // differences only).
    int fd_count() const { return count_fds(false); }
    // Open sockets of the process (fds of other kinds come and go with a
    // run prefix such as Valgrind's).
    int socket_count() const { return count_fds(true); }

    // Resident memory in KiB, or -1.
    long rss_kib() const {
        std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
        for (std::string line; std::getline(in, line);)
            if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
        return -1;
    }

private:
    int count_fds(bool sockets_only) const {
        const std::string dir = "/proc/" + std::to_string(pid_) + "/fd";
        DIR* d = ::opendir(dir.c_str());
        if (!d) return -1;
        int n = 0;
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] == '.') continue;
            if (sockets_only) {
                char target[64];
                const ssize_t k = ::readlinkat(::dirfd(d), e->d_name, target, sizeof target - 1);
                if (k <= 0 || std::string_view(target, static_cast<std::size_t>(k)).substr(0, 7) != "socket:")
                    continue;
            }
            ++n;
        }
        ::closedir(d);
        return n;
    }

    pid_t pid_ = -1;
    int out_ = -1;
    bool reaped_ = false;
};

} // namespace coop_test

#endif
