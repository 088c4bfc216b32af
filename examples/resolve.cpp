// examples/resolve.cpp — resolve host names without stalling the reactor.
//
//   coop-resolve HOST [PORT] [HOST [PORT] ...]
//
// Every name is resolved by its own task with getaddrinfo(), a blocking call,
// through coop::offload(): the call runs on the offload pool while the task
// parks, so the reactor keeps serving its other tasks (here: a ticker that
// shows it never stalls). Each lookup has a 5 s deadline. Exits 0 when every
// name resolved, 1 otherwise.
#include <coop/offload.hpp>
#include <coop/reactor.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct lookup {
    int rc = 0;                       // getaddrinfo's result
    std::vector<std::string> addresses;
};

lookup resolve(const std::string& host, const std::string& port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    lookup out;
    out.rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    for (addrinfo* a = res; a; a = a->ai_next) {
        char buf[INET6_ADDRSTRLEN] = {};
        const void* where = a->ai_family == AF_INET
                                ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
                                : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
        if (::inet_ntop(a->ai_family, where, buf, sizeof buf)) out.addresses.emplace_back(buf);
    }
    if (res) ::freeaddrinfo(res);
    return out;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s HOST [PORT] [HOST [PORT] ...]\n", argv[0]);
        return 2;
    }
    std::vector<std::pair<std::string, std::string>> names;
    for (int i = 1; i < argc; ++i) {
        std::string host = argv[i], port = "80";
        if (i + 1 < argc && std::string(argv[i + 1]).find_first_not_of("0123456789") == std::string::npos)
            port = argv[++i];
        names.emplace_back(host, port);
    }

    coop::reactor r;
    int failed = 0;
    std::size_t pending = names.size();
    int ticks = 0;
    for (auto& [host, port] : names) {
        r.spawn([&, host = host, port = port] {
            auto res = coop::offload([host, port] { return resolve(host, port); }, 5s);
            if (!res) {
                std::printf("%s: %s\n", host.c_str(), res.error.message().c_str());
                ++failed;
            } else if (res.value->rc != 0) {
                std::printf("%s: %s\n", host.c_str(), ::gai_strerror(res.value->rc));
                ++failed;
            } else {
                for (const std::string& a : res.value->addresses) std::printf("%s %s\n", host.c_str(), a.c_str());
            }
            --pending;
        });
    }
    r.spawn([&] {                     // the reactor keeps running meanwhile
        while (pending > 0) {
            ++ticks;
            coop::sleep_for(1ms);
        }
    });
    r.run();
    std::fprintf(stderr, "coop-resolve: the reactor ticked %d times during the lookups\n", ticks);
    return failed ? 1 : 0;
}
