// tools/coop_study.cpp — switch costs per CPU (`make study`).
//
// Pins itself to each online CPU in turn (sched_setaffinity) and measures,
// there, with its own timing loop:
//   direct_call            an out-of-line call + return
//   switch_round_trip      coop_jump there and back (2 switches)
//   switch_fp_round_trip   coop_jump_fp there and back (2 switches)
//   coroutine_round_trip   coop::coroutine resume() + yield (2 switches)
// Each figure is the median of --samples samples; a sample times a batch of
// iterations long enough (~1 ms) for the clock's resolution not to matter,
// and the batch time is divided by the batch size. Nothing is subtracted.
// On the first CPU of every CPU model it also measures the CPU-bound
// overhead curve of bench/work_bench.cpp (work split across coroutines that
// yield every G units, vs direct calls).
//
// It records the CPU model (and, per CPU, core id, SMT siblings, hybrid core
// type, frequency where the kernel exposes them), microcode, kernel, compiler
// and flags, and writes one JSON per machine and CPU model:
//   <out>/<machine>-<cpu-model>.json
// tools/plot_study.py renders every JSON present into PNGs.
//
//   coop-study [--out DIR] [--machine NAME] [--samples N] [--cpus LIST]
#include "../bench/kernels.hpp"

#include <coop/context.h>
#include <coop/coroutine.hpp>
#include <coop/stack.hpp>

#include <sched.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#ifndef COOP_STUDY_FLAGS
#  define COOP_STUDY_FLAGS "unknown"
#endif

namespace {

using clk = std::chrono::steady_clock;

using coop_bench::ticks;

std::string read_file(const std::string& path) {
    std::ifstream f(path);
    if (!f) return {};
    std::stringstream ss;
    ss << f.rdbuf();
    std::string s = ss.str();
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

std::string json_str(const std::string& s) {
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            o += '\\';
            o += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            o += ' ';
        } else {
            o += c;
        }
    }
    return o + "\"";
}

std::string num(double v) {
    if (v != v) return "null";
    char b[64];
    std::snprintf(b, sizeof b, "%.4g", v);
    return b;
}

// ------------------------------------------------------------ CPU facts
struct cpu_info {
    int id = -1;
    std::string model;        // "model name" (x86) or implementer/part (ARM)
    std::string microcode;
    double mhz = 0;           // /proc/cpuinfo "cpu MHz" when present
    std::string core_id, siblings, core_type;
    double freq_max_khz = 0, freq_cur_khz = 0;
};

std::vector<cpu_info> read_cpuinfo() {
    std::vector<cpu_info> out;
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    cpu_info cur;
    std::string implementer, part;
    auto flush = [&] {
        if (cur.id >= 0) {
            if (cur.model.empty() && !part.empty())
                cur.model = "ARM implementer " + implementer + " part " + part;
            out.push_back(cur);
        }
        cur = cpu_info{};
        implementer.clear();
        part.clear();
    };
    while (std::getline(f, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos) {
            if (line.empty()) flush();
            continue;
        }
        std::string k = line.substr(0, colon), v = line.substr(colon + 1);
        while (!k.empty() && (k.back() == ' ' || k.back() == '\t')) k.pop_back();
        while (!v.empty() && v.front() == ' ') v.erase(0, 1);
        if (k == "processor") {
            if (cur.id >= 0) flush();
            cur.id = std::atoi(v.c_str());
        } else if (k == "model name") {
            cur.model = v;
        } else if (k == "microcode") {
            cur.microcode = v;
        } else if (k == "cpu MHz") {
            cur.mhz = std::atof(v.c_str());
        } else if (k == "CPU implementer") {
            implementer = v;
        } else if (k == "CPU part") {
            part = v;
        }
    }
    flush();
    for (cpu_info& c : out) {
        const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c.id);
        if (c.microcode.empty()) c.microcode = read_file(base + "/microcode/version");
        c.core_id = read_file(base + "/topology/core_id");
        c.siblings = read_file(base + "/topology/thread_siblings_list");
        c.freq_max_khz = std::atof(read_file(base + "/cpufreq/cpuinfo_max_freq").c_str());
        c.freq_cur_khz = std::atof(read_file(base + "/cpufreq/scaling_cur_freq").c_str());
        // Hybrid parts: Intel lists P/E cores under cpu_core / cpu_atom, and
        // ARM big.LITTLE shows up as different capacities / parts.
        for (const char* type : {"cpu_core", "cpu_atom"}) {
            std::string list = read_file(std::string("/sys/devices/") + type + "/cpus");
            if (list.empty()) continue;
            // parse "a-b,c"
            std::stringstream ss(list);
            std::string tok;
            while (std::getline(ss, tok, ',')) {
                int a = 0, b = 0;
                if (std::sscanf(tok.c_str(), "%d-%d", &a, &b) == 2) {
                    if (c.id >= a && c.id <= b) c.core_type = type;
                } else if (std::atoi(tok.c_str()) == c.id) {
                    c.core_type = type;
                }
            }
        }
        if (c.core_type.empty()) {
            std::string cap = read_file(base + "/cpu_capacity");
            if (!cap.empty()) c.core_type = "capacity " + cap;
        }
    }
    return out;
}

// ------------------------------------------------------------ timing
struct stat_t {
    double median = 0, lo = 0, hi = 0;   // ns per iteration
    double cycles = 0;                   // counter ticks per iteration (median sample)
};

// Times fn(batch) `samples` times and returns per-iteration medians.
template <class Fn>
stat_t measure(Fn&& fn, int samples) {
    // Size a batch to about 1 ms.
    std::uint64_t batch = 64;
    for (;;) {
        auto t0 = clk::now();
        fn(batch);
        double ns = std::chrono::duration<double, std::nano>(clk::now() - t0).count();
        if (ns > 1e6 || batch > (std::uint64_t{1} << 32)) break;
        batch *= ns < 1e5 ? 8 : 2;
    }
    struct sample {
        double ns, ticks;   // per iteration
    };
    std::vector<sample> v;
    for (int i = 0; i < samples; ++i) {
        auto t0 = clk::now();
        std::uint64_t c0 = ticks();
        fn(batch);
        std::uint64_t c1 = ticks();
        double ns = std::chrono::duration<double, std::nano>(clk::now() - t0).count();
        v.push_back({ns / static_cast<double>(batch), static_cast<double>(c1 - c0) / static_cast<double>(batch)});
    }
    std::sort(v.begin(), v.end(), [](const sample& a, const sample& b) { return a.ns < b.ns; });
    stat_t s;
    s.median = v[v.size() / 2].ns;
    s.cycles = v[v.size() / 2].ticks;
    s.lo = v.front().ns;
    s.hi = v.back().ns;
    return s;
}

template <class T>
inline void keep(T const& v) {
    asm volatile("" : : "r,m"(v) : "memory");
}

stat_t time_direct(int samples) {
    return measure(
        [](std::uint64_t n) {
            int x = 0;
            void* p = &x;
            for (std::uint64_t i = 0; i < n; ++i) {
                p = coop_bench::direct_callee(p);
                keep(p);
            }
        },
        samples);
}

stat_t time_switch(int samples, bool fp) {
    coop::stack s(64 * 1024);
    coop_ctx ctx = coop_make(s.top(), s.size(), fp ? coop_bench::echo_entry_fp : coop_bench::echo_entry);
    auto jump = fp ? coop_jump_fp : coop_jump;
    return measure(
        [&](std::uint64_t n) {
            int x = 0;
            void* p = &x;
            for (std::uint64_t i = 0; i < n; ++i) {
                coop_transfer t = jump(ctx, p);
                ctx = t.ctx;
                p = t.data;
                keep(p);
            }
        },
        samples);
}

stat_t time_coroutine(int samples) {
    coop::coroutine co([](coop::yielder& y, void* v) {
        for (;;) v = y.yield(v);
    });
    return measure(
        [&](std::uint64_t n) {
            int x = 0;
            void* p = &x;
            for (std::uint64_t i = 0; i < n; ++i) {
                p = co.resume(p);
                keep(p);
            }
        },
        samples);
}

// The CPU-bound curve of bench/work_bench.cpp: kUnits units of work by direct
// calls vs split across kCo coroutines yielding every g units. The variants
// are measured interleaved (one sample of each per round) so that a slow
// phase of a shared machine hits all of them alike.
constexpr std::uint64_t kUnits = 4096;
constexpr int kCo = 4;

struct split_work {
    std::uint64_t shared = 1;
    std::array<coop::coroutine, kCo> cos;
    explicit split_work(std::uint64_t g) {
        constexpr std::uint64_t share = kUnits / kCo;
        for (auto& co : cos) {
            co = coop::coroutine([g, s = &shared](coop::yielder& y) {
                for (;;) {
                    for (std::uint64_t done = 0; done < share;) {
                        const std::uint64_t end = done + g < share ? done + g : share;
                        std::uint64_t x = *s;
                        for (; done < end; ++done) x = coop_bench::work_unit(x);
                        *s = x;
                        if (done < share) y.yield(s);
                    }
                    y.yield(nullptr);
                }
            });
        }
    }
    void run() {
        std::array<bool, kCo> on{};
        on.fill(true);
        int live = kCo;
        while (live > 0)
            for (int k = 0; k < kCo; ++k)
                if (on[k] && cos[k].resume() == nullptr) {
                    on[k] = false;
                    --live;
                }
        keep(shared);
    }
};

void direct_work() {
    std::uint64_t x = 1;
    for (std::uint64_t i = 0; i < kUnits; ++i) x = coop_bench::work_unit(x);
    keep(x);
}

// Returns {direct ns, [(g, ns)]}, medians over `samples` interleaved rounds.
std::pair<double, std::vector<std::pair<std::uint64_t, double>>> granularity_curve(int samples) {
    std::vector<std::uint64_t> gs;
    for (std::uint64_t g = 1; g <= 1024; g *= 2) gs.push_back(g);
    std::vector<split_work> splits;
    splits.reserve(gs.size());
    for (std::uint64_t g : gs) splits.emplace_back(g);
    constexpr int reps = 8;   // runs per sample (each run is tens of microseconds)
    auto time_it = [](auto&& fn) {
        auto t0 = clk::now();
        for (int r = 0; r < reps; ++r) fn();
        return std::chrono::duration<double, std::nano>(clk::now() - t0).count() / reps;
    };
    std::vector<double> direct;
    std::vector<std::vector<double>> split(gs.size());
    for (int i = 0; i < samples + 1; ++i) {
        double d = time_it(direct_work);
        std::vector<double> row;
        for (auto& sw : splits) row.push_back(time_it([&] { sw.run(); }));
        if (i == 0) continue;   // warm-up round
        direct.push_back(d);
        for (std::size_t k = 0; k < gs.size(); ++k) split[k].push_back(row[k]);
    }
    auto med = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    std::vector<std::pair<std::uint64_t, double>> curve;
    for (std::size_t k = 0; k < gs.size(); ++k) curve.emplace_back(gs[k], med(split[k]));
    return {med(direct), curve};
}

bool pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0;
}

std::string slug(const std::string& s) {
    std::string o;
    for (char c : s) {
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            o += c;
        } else if (c >= 'A' && c <= 'Z') {
            o += static_cast<char>(c - 'A' + 'a');
        } else if (!o.empty() && o.back() != '-') {
            o += '-';
        }
    }
    while (!o.empty() && o.back() == '-') o.pop_back();
    if (o.size() > 60) o.resize(60);
    return o.empty() ? "unknown" : o;
}

double tick_hz() {
#if defined(__aarch64__)
    std::uint64_t f;
    asm volatile("mrs %0, cntfrq_el0" : "=r"(f));
    return static_cast<double>(f);
#else
    auto t0 = clk::now();
    std::uint64_t c0 = ticks();
    while (clk::now() - t0 < std::chrono::milliseconds(20)) {
    }
    std::uint64_t c1 = ticks();
    return static_cast<double>(c1 - c0) / std::chrono::duration<double>(clk::now() - t0).count();
#endif
}

std::vector<int> parse_list(const std::string& s) {
    std::vector<int> out;
    std::stringstream ss(s);
    std::string tok;
    while (std::getline(ss, tok, ',')) {
        int a = 0, b = 0;
        if (std::sscanf(tok.c_str(), "%d-%d", &a, &b) == 2)
            for (int i = a; i <= b; ++i) out.push_back(i);
        else if (!tok.empty())
            out.push_back(std::atoi(tok.c_str()));
    }
    return out;
}

struct cpu_result {
    cpu_info info;
    bool pinned = false;
    stat_t direct, sw, swfp, co;
};

} // namespace

int main(int argc, char** argv) {
    std::string out_dir = "results";
    std::string machine;
    int samples = 101;
    std::string cpu_list;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--out") out_dir = next();
        else if (a == "--machine") machine = next();
        else if (a == "--samples") samples = std::max(3, std::atoi(next().c_str()));
        else if (a == "--cpus") cpu_list = next();
        else {
            std::fprintf(stderr, "usage: %s [--out DIR] [--machine NAME] [--samples N] [--cpus LIST]\n", argv[0]);
            return 2;
        }
    }
    struct utsname u {};
    uname(&u);
    if (machine.empty()) machine = u.nodename;

    std::vector<cpu_info> infos = read_cpuinfo();
    std::vector<int> online = parse_list(read_file("/sys/devices/system/cpu/online"));
    if (online.empty())
        for (const cpu_info& c : infos) online.push_back(c.id);
    if (!cpu_list.empty()) online = parse_list(cpu_list);
    const bool virt = read_file("/proc/cpuinfo").find(" hypervisor") != std::string::npos;
    const double hz = tick_hz();

    std::printf("coop-study: %zu online CPUs, %d samples per figure (medians, ns per operation)\n",
                online.size(), samples);
    std::printf("%4s  %-28s %5s %8s %-9s %8s %8s %8s %8s\n", "cpu", "model", "core", "smt", "type/cap",
                "call", "switch", "swfp", "corout");
    std::vector<cpu_result> results;
    for (int cpu : online) {
        cpu_result r;
        for (const cpu_info& c : infos)
            if (c.id == cpu) r.info = c;
        if (r.info.id < 0) r.info.id = cpu;
        r.pinned = pin(cpu);
        if (!r.pinned) {
            std::printf("%4d  (cannot pin: skipped)\n", cpu);
            continue;
        }
        // warm up this core (frequency ramp) before the first figure
        time_direct(3);
        r.direct = time_direct(samples);
        r.sw = time_switch(samples, false);
        r.swfp = time_switch(samples, true);
        r.co = time_coroutine(samples);
        std::printf("%4d  %-28.28s %5s %8s %-9.9s %8.2f %8.2f %8.2f %8.2f\n", cpu, r.info.model.c_str(),
                    r.info.core_id.c_str(), r.info.siblings.c_str(),
                    r.info.core_type.empty() ? "-" : r.info.core_type.c_str(), r.direct.median,
                    r.sw.median, r.swfp.median, r.co.median);
        std::fflush(stdout);
        results.push_back(r);
    }

    // Group by CPU model: one file per machine + model.
    std::map<std::string, std::vector<const cpu_result*>> by_model;
    for (const cpu_result& r : results) by_model[r.info.model.empty() ? "unknown" : r.info.model].push_back(&r);

    ::mkdir(out_dir.c_str(), 0755);
    char date[32];
    std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    const double to_cycles =
#if defined(__aarch64__)
        [&] {
            double khz = results.empty() ? 0 : results.front().info.freq_max_khz;
            return khz > 0 ? khz * 1e3 / hz : 1e9 / hz;
        }();
#else
        1.0;
#endif
    for (auto& [model, list] : by_model) {
        // The CPU-bound curve, on the first CPU of this model.
        pin(list.front()->info.id);
        auto [direct, curve] = granularity_curve(std::max(5, samples / 2));

        std::string path = out_dir + "/" + slug(machine) + "-" + slug(model) + ".json";
        std::FILE* f = std::fopen(path.c_str(), "w");
        if (!f) {
            std::perror(path.c_str());
            return 1;
        }
        const cpu_info& first = list.front()->info;
        std::fprintf(f, "{\n  \"schema\": \"coop-study/1\",\n");
        std::fprintf(f, "  \"machine\": %s,\n  \"cpu_model\": %s,\n", json_str(machine).c_str(),
                     json_str(model).c_str());
        std::fprintf(f, "  \"arch\": %s,\n  \"kernel\": %s,\n", json_str(u.machine).c_str(),
                     json_str(std::string(u.sysname) + " " + u.release + " " + u.version).c_str());
        std::fprintf(f, "  \"microcode\": %s,\n", json_str(first.microcode).c_str());
        std::fprintf(f, "  \"virtualized\": %s,\n", virt ? "true" : "false");
        std::fprintf(f, "  \"compiler\": %s,\n", json_str(__VERSION__).c_str());
        std::fprintf(f, "  \"flags\": %s,\n", json_str(COOP_STUDY_FLAGS).c_str());
        std::fprintf(f, "  \"date\": %s,\n", json_str(date).c_str());
        std::fprintf(f, "  \"online_cpus\": %zu,\n", online.size());
        std::fprintf(f, "  \"samples\": %d,\n", samples);
        std::fprintf(f, "  \"tick_hz\": %s,\n  \"ticks_to_cycles\": %s,\n", num(hz).c_str(), num(to_cycles).c_str());
        std::fprintf(f, "  \"units\": \"ns per operation (median of samples); *_cycles from %s\",\n",
#if defined(__x86_64__)
                     "rdtsc (reference cycles)"
#else
                     "cntvct_el0 scaled"
#endif
        );
        std::fprintf(f, "  \"round_trip_switches\": 2,\n");
        std::fprintf(f, "  \"cpus\": [\n");
        for (std::size_t i = 0; i < list.size(); ++i) {
            const cpu_result& r = *list[i];
            auto fig = [&](const char* name, const stat_t& s) {
                std::fprintf(f, "\"%s_ns\": %s, \"%s_cycles\": %s, \"%s_min_ns\": %s, \"%s_max_ns\": %s", name,
                             num(s.median).c_str(), name, num(s.cycles * to_cycles).c_str(), name,
                             num(s.lo).c_str(), name, num(s.hi).c_str());
            };
            std::fprintf(f, "    {\"cpu\": %d, \"core_id\": %s, \"smt_siblings\": %s, \"core_type\": %s, ",
                         r.info.id, json_str(r.info.core_id).c_str(), json_str(r.info.siblings).c_str(),
                         json_str(r.info.core_type).c_str());
            std::fprintf(f, "\"cpuinfo_mhz\": %s, \"freq_max_khz\": %s, \"freq_cur_khz\": %s,\n     ",
                         num(r.info.mhz).c_str(), num(r.info.freq_max_khz).c_str(),
                         num(r.info.freq_cur_khz).c_str());
            fig("direct_call", r.direct);
            std::fprintf(f, ",\n     ");
            fig("switch_round_trip", r.sw);
            std::fprintf(f, ",\n     ");
            fig("switch_fp_round_trip", r.swfp);
            std::fprintf(f, ",\n     ");
            fig("coroutine_round_trip", r.co);
            std::fprintf(f, "}%s\n", i + 1 < list.size() ? "," : "");
        }
        std::fprintf(f, "  ],\n");
        std::fprintf(f, "  \"granularity\": {\"cpu\": %d, \"units\": %llu, \"coroutines\": %d, \"direct_ns\": %s, \"points\": [\n",
                     first.id, static_cast<unsigned long long>(kUnits), kCo, num(direct).c_str());
        for (std::size_t i = 0; i < curve.size(); ++i)
            std::fprintf(f, "    {\"G\": %llu, \"ns\": %s, \"overhead_pct\": %s}%s\n",
                         static_cast<unsigned long long>(curve[i].first), num(curve[i].second).c_str(),
                         num((curve[i].second / direct - 1) * 100).c_str(), i + 1 < curve.size() ? "," : "");
        std::fprintf(f, "  ]}\n}\n");
        std::fclose(f);
        std::printf("granularity (cpu %d): direct %.1f us;", first.id, direct / 1e3);
        for (auto& [g, t] : curve) std::printf(" G=%llu %+.0f%%", static_cast<unsigned long long>(g), (t / direct - 1) * 100);
        std::printf("\nwrote %s\n", path.c_str());
    }
    return 0;
}
