// tools/coop_study.cpp — what coop's operations cost on each CPU, and the
// floors that explain why CPUs differ (`make study`).
//
// Pins itself to each online CPU in turn (sched_setaffinity) and times there,
// with its own loop, the kernels of bench/kernels.hpp (the same code the
// suites time): a direct call; coop_jump and coop_jump_fp round trips; a
// coroutine resume + yield, also with the yield 1, 4 and 16 calls deep; round
// robin over 16 and 256 coroutines; a coop::yield() hop in a reactor with 2,
// 16 and 1024 tasks; spawn + join; and the floors (bench/floor_<arch>.S): a
// minimal switch ending in ret against the same ending in pop + jmp / br, and
// one save + restore of the FP control state. The figures are listed in
// kFigures below, and in every file written (`--list-figures` prints them).
//
// Each figure is the median of --samples samples; a sample times a batch of
// iterations long enough (~1 ms) for the clock's resolution not to matter,
// and the batch time is divided by the batch size (and by the hops or
// resumes one iteration makes). Nothing is subtracted. On the first CPU of
// every CPU model it also measures the CPU-bound overhead curve of
// bench/work_bench.cpp (work split across coroutines that yield every G
// units, against direct calls).
//
// The CPU is identified by what tells generations apart, besides the brand
// string: x86-64 vendor, family, model, stepping, microcode (/proc/cpuinfo);
// AArch64 implementer, part, variant, revision (MIDR_EL1 from sysfs, else
// /proc/cpuinfo). One JSON is written per CPU model present, named
//   x86-64:  <vendor>-family<F>-model<M>.json     e.g. amd-family25-model1.json
//   AArch64: <implementer>-<0xII>-part<0xPPP>.json e.g. arm-0x41-part0xd0c.json
// (family and model in decimal as /proc/cpuinfo prints them; implementer and
// part in hex as MIDR_EL1 holds them). Stepping, variant and revision are
// recorded inside, not in the name: they do not change the microarchitecture.
// Virtualization, per-CPU core id, SMT siblings, hybrid core type or capacity,
// frequencies, kernel, compiler and flags are recorded too.
// tools/study_results.py merges a run into results/; tools/plot_study.py
// draws every file there.
//
//   coop-study [--out DIR] [--machine NAME] [--samples N] [--cpus LIST]
//   coop-study --list-figures          the figures, as JSON
//   coop-study --identify [--cpuinfo FILE]
//                                      how each CPU is identified and which file
//                                      it goes to, without measuring (FILE: a
//                                      saved /proc/cpuinfo of another machine)
#include "../bench/kernels.hpp"

#include <sched.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#if defined(__x86_64__)
#  include <cpuid.h>
#endif

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#ifndef COOP_STUDY_FLAGS
#  define COOP_STUDY_FLAGS "unknown"
#endif

namespace {

using clk = std::chrono::steady_clock;
using coop_bench::keep;
using coop_bench::ticks;

// ------------------------------------------------------------ the figures
// switches: per operation, when fixed by the code measured (0: none; -1:
// depends on the scheduler: a hop is one switch with a direct hand-over,
// two through the run loop).
struct figure {
    const char* key;
    const char* label;
    int switches;
};
constexpr figure kFigures[] = {
    {"direct_call", "direct call (out-of-line call + ret)", 0},
    {"switch_round_trip", "coop_jump round trip", 2},
    {"switch_fp_round_trip", "coop_jump_fp round trip (FP control state kept)", 2},
    {"coroutine_round_trip", "coroutine resume + yield", 2},
    {"yield_depth_1", "resume + yield from call depth 1", 2},
    {"yield_depth_4", "resume + yield from call depth 4", 2},
    {"yield_depth_16", "resume + yield from call depth 16", 2},
    {"round_robin_16", "16 coroutines round robin, per resume + yield", 2},
    {"round_robin_256", "256 coroutines round robin, per resume + yield", 2},
    {"scheduler_hop_2", "reactor coop::yield() hop, 2 tasks", -1},
    {"scheduler_hop_16", "reactor coop::yield() hop, 16 tasks", -1},
    {"scheduler_hop_1024", "reactor coop::yield() hop, 1024 tasks", -1},
    {"spawn_join", "reactor spawn + join (pooled stack)", -1},
    {"floor_switch_ret", "floor: minimal switch ending in ret, round trip", 2},
    {"floor_switch_jmp", "floor: the same switch ending in pop + jmp / br, round trip", 2},
    {"floor_fp_env", "floor: FP control state saved + restored once, in a call", 0},
};
constexpr std::size_t kNumFigures = sizeof kFigures / sizeof kFigures[0];

std::size_t figure_index(const char* key) {
    for (std::size_t i = 0; i < kNumFigures; ++i)
        if (std::strcmp(kFigures[i].key, key) == 0) return i;
    std::fprintf(stderr, "coop-study: no figure %s\n", key);
    std::abort();
}

// ------------------------------------------------------------ text and JSON
std::string read_file(const std::string& path) {
    std::ifstream f(path);
    if (!f) return {};
    std::stringstream ss;
    ss << f.rdbuf();
    std::string s = ss.str();
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\0')) s.pop_back();
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
// A string, or null when it is empty (not known).
std::string json_str_or_null(const std::string& s) { return s.empty() ? "null" : json_str(s); }

std::string num(double v) {
    if (v != v) return "null";
    char b[64];
    std::snprintf(b, sizeof b, "%.4g", v);
    return b;
}
std::string num_or_null(const std::optional<long>& v) { return v ? std::to_string(*v) : "null"; }

std::string lower(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

std::string slug(const std::string& s) {
    std::string o;
    for (char c : lower(s)) {
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            o += c;
        } else if (!o.empty() && o.back() != '-') {
            o += '-';
        }
    }
    while (!o.empty() && o.back() == '-') o.pop_back();
    if (o.size() > 60) o.resize(60);
    return o.empty() ? "unknown" : o;
}

std::string hex(unsigned long v, int digits) {
    char b[32];
    std::snprintf(b, sizeof b, "0x%0*lx", digits, v);
    return b;
}

std::optional<long> parse_long(const std::string& s) {
    if (s.empty()) return std::nullopt;
    char* end = nullptr;
    long v = std::strtol(s.c_str(), &end, 0);   // decimal, or 0x... hex
    if (end == s.c_str()) return std::nullopt;
    return v;
}

// ------------------------------------------------------------ CPU facts
struct cpu_info {
    int id = -1;
    std::string brand;                 // "model name" (x86); derived for ARM
    // x86-64
    std::string vendor_id;             // AuthenticAMD, GenuineIntel, ...
    std::optional<long> family, model, stepping;
    // AArch64
    std::optional<long> implementer, part, variant, revision, architecture;
    std::string midr;                  // MIDR_EL1 as sysfs shows it
    std::string microcode;
    double mhz = 0;                    // /proc/cpuinfo "cpu MHz" when present
    bool hypervisor_flag = false;      // x86 "hypervisor" in flags
    std::string core_id, siblings, core_type;
    double freq_max_khz = 0, freq_cur_khz = 0;
};

std::string x86_vendor(const std::string& vendor_id) {
    if (vendor_id == "AuthenticAMD") return "amd";
    if (vendor_id == "GenuineIntel") return "intel";
    if (vendor_id == "HygonGenuine") return "hygon";
    if (vendor_id == "CentaurHauls") return "centaur";
    if (vendor_id.find("Shanghai") != std::string::npos) return "zhaoxin";
    return slug(vendor_id);
}

// MIDR_EL1 implementer codes (Arm ARM, D19.2 MIDR_EL1) of the vendors whose
// cores run Linux.
std::string arm_implementer(long code) {
    switch (code) {
    case 0x41: return "arm";
    case 0x42: return "broadcom";
    case 0x43: return "cavium";
    case 0x46: return "fujitsu";
    case 0x48: return "hisilicon";
    case 0x4e: return "nvidia";
    case 0x50: return "apm";
    case 0x51: return "qualcomm";
    case 0x61: return "apple";
    case 0x6d: return "microsoft";
    case 0xc0: return "ampere";
    default: return "impl";
    }
}

// Part numbers of Arm Ltd's own cores (implementer 0x41), for the label.
const char* arm_part_name(long part) {
    switch (part) {
    case 0xd03: return "Cortex-A53";
    case 0xd04: return "Cortex-A35";
    case 0xd05: return "Cortex-A55";
    case 0xd07: return "Cortex-A57";
    case 0xd08: return "Cortex-A72";
    case 0xd09: return "Cortex-A73";
    case 0xd0a: return "Cortex-A75";
    case 0xd0b: return "Cortex-A76";
    case 0xd0c: return "Neoverse N1";
    case 0xd0d: return "Cortex-A77";
    case 0xd40: return "Neoverse V1";
    case 0xd41: return "Cortex-A78";
    case 0xd44: return "Cortex-X1";
    case 0xd46: return "Cortex-A510";
    case 0xd47: return "Cortex-A710";
    case 0xd48: return "Cortex-X2";
    case 0xd49: return "Neoverse N2";
    case 0xd4f: return "Neoverse V2";
    default: return nullptr;
    }
}

// The file name (without .json) for a CPU: what tells models apart.
std::string model_key(const cpu_info& c) {
    if (!c.vendor_id.empty() && c.family && c.model)
        return x86_vendor(c.vendor_id) + "-family" + std::to_string(*c.family) + "-model" +
               std::to_string(*c.model);
    if (c.implementer && c.part)
        return arm_implementer(*c.implementer) + "-" + hex(static_cast<unsigned long>(*c.implementer), 2) +
               "-part" + hex(static_cast<unsigned long>(*c.part), 3);
    return "unknown-" + slug(c.brand);
}

std::vector<cpu_info> read_cpuinfo(const std::string& path) {
    std::vector<cpu_info> out;
    std::ifstream f(path);
    std::string line;
    cpu_info cur;
    auto flush = [&] {
        if (cur.id >= 0) out.push_back(cur);
        cur = cpu_info{};
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
            cur.brand = v;
        } else if (k == "vendor_id") {
            cur.vendor_id = v;
        } else if (k == "cpu family") {
            cur.family = parse_long(v);
        } else if (k == "model") {
            cur.model = parse_long(v);
        } else if (k == "stepping") {
            cur.stepping = parse_long(v);
        } else if (k == "microcode") {
            cur.microcode = v;
        } else if (k == "cpu MHz") {
            cur.mhz = std::atof(v.c_str());
        } else if (k == "flags") {
            cur.hypervisor_flag = (" " + v + " ").find(" hypervisor ") != std::string::npos;
        } else if (k == "CPU implementer") {
            cur.implementer = parse_long(v);
        } else if (k == "CPU architecture") {
            cur.architecture = parse_long(v);
        } else if (k == "CPU variant") {
            cur.variant = parse_long(v);
        } else if (k == "CPU part") {
            cur.part = parse_long(v);
        } else if (k == "CPU revision") {
            cur.revision = parse_long(v);
        }
    }
    flush();
    for (cpu_info& c : out) {
        const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c.id);
        // MIDR_EL1: [31:24] implementer, [23:20] variant, [19:16]
        // architecture, [15:4] part, [3:0] revision. The kernel's own copy
        // wins over /proc/cpuinfo's text where both exist.
        c.midr = read_file(base + "/regs/identification/midr_el1");
        if (auto m = parse_long(c.midr)) {
            const unsigned long v = static_cast<unsigned long>(*m);
            c.implementer = static_cast<long>((v >> 24) & 0xff);
            c.variant = static_cast<long>((v >> 20) & 0xf);
            c.architecture = static_cast<long>((v >> 16) & 0xf);
            c.part = static_cast<long>((v >> 4) & 0xfff);
            c.revision = static_cast<long>(v & 0xf);
        }
        if (c.brand.empty() && c.implementer && c.part) {
            const char* name = *c.implementer == 0x41 ? arm_part_name(*c.part) : nullptr;
            c.brand = name ? std::string("Arm ") + name
                           : "implementer " + hex(static_cast<unsigned long>(*c.implementer), 2) + " part " +
                                 hex(static_cast<unsigned long>(*c.part), 3);
        }
        if (c.microcode.empty()) c.microcode = read_file(base + "/microcode/version");
        c.core_id = read_file(base + "/topology/core_id");
        c.siblings = read_file(base + "/topology/thread_siblings_list");
        c.freq_max_khz = std::atof(read_file(base + "/cpufreq/cpuinfo_max_freq").c_str());
        c.freq_cur_khz = std::atof(read_file(base + "/cpufreq/scaling_cur_freq").c_str());
        // Hybrid parts: Intel lists P/E cores under cpu_core / cpu_atom, and
        // ARM big.LITTLE shows up as different capacities (and parts).
        for (const char* type : {"cpu_core", "cpu_atom"}) {
            std::string list = read_file(std::string("/sys/devices/") + type + "/cpus");
            if (list.empty()) continue;
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

// Whether this runs in a virtual machine, and what says so. On x86-64 the
// CPUID hypervisor bit is authoritative and leaf 0x40000000 names the
// hypervisor; elsewhere only positive evidence counts (null = not known).
struct virt_info {
    std::optional<bool> virtualized;
    std::string hypervisor, evidence;
};

virt_info detect_virtualization(const std::vector<cpu_info>& cpus) {
    virt_info v;
#if defined(__x86_64__)
    unsigned a = 0, b = 0, c = 0, d = 0;
    __cpuid(1, a, b, c, d);
    v.virtualized = (c >> 31) & 1;
    v.evidence = "CPUID.1:ECX bit 31 (hypervisor)";
    if (*v.virtualized) {
        __cpuid(0x40000000, a, b, c, d);
        char sig[13] = {};
        std::memcpy(sig, &b, 4);
        std::memcpy(sig + 4, &c, 4);
        std::memcpy(sig + 8, &d, 4);
        v.hypervisor = sig;
        v.evidence += ", leaf 0x40000000 signature";
    }
    (void)cpus;
#else
    for (const cpu_info& ci : cpus)
        if (ci.hypervisor_flag) {
            v.virtualized = true;
            v.evidence = "/proc/cpuinfo hypervisor flag";
        }
    std::string t = read_file("/sys/hypervisor/type");
    if (!t.empty()) {
        v.virtualized = true;
        v.hypervisor = t;
        v.evidence = "/sys/hypervisor/type";
    }
    std::string dt = read_file("/proc/device-tree/hypervisor/compatible");
    if (!dt.empty()) {
        v.virtualized = true;
        if (v.hypervisor.empty()) v.hypervisor = dt.c_str();   // first string of the list
        v.evidence = "device tree /hypervisor node";
    }
    const std::string dmi = read_file("/sys/class/dmi/id/sys_vendor") + " " +
                            read_file("/sys/class/dmi/id/product_name");
    for (const char* vm : {"QEMU", "KVM", "VMware", "VirtualBox", "Xen", "Virtual Machine", "Parallels"})
        if (dmi.find(vm) != std::string::npos) {
            v.virtualized = true;
            if (v.hypervisor.empty()) v.hypervisor = vm;
            v.evidence = "DMI system vendor / product: " + dmi;
        }
#endif
    return v;
}

// ------------------------------------------------------------ timing
struct stat_t {
    double median = 0, lo = 0, hi = 0;   // ns per operation
    double ticks = 0;                    // counter ticks per operation (median sample)
};

// Times fn(batch) `samples` times; per-operation medians, where one call of
// fn(n) performs n * per_iteration operations.
template <class Fn>
stat_t measure(Fn&& fn, int samples, double per_iteration = 1) {
    // Size a batch to about 1 ms.
    std::uint64_t batch = 1;
    for (;;) {
        auto t0 = clk::now();
        fn(batch);
        double ns = std::chrono::duration<double, std::nano>(clk::now() - t0).count();
        if (ns > 1e6 || batch > (std::uint64_t{1} << 32)) break;
        batch *= ns < 1e5 ? 8 : 2;
    }
    struct sample {
        double ns, ticks;   // per operation
    };
    const double ops = static_cast<double>(batch) * per_iteration;
    std::vector<sample> v;
    for (int i = 0; i < samples; ++i) {
        auto t0 = clk::now();
        std::uint64_t c0 = ticks();
        fn(batch);
        std::uint64_t c1 = ticks();
        double ns = std::chrono::duration<double, std::nano>(clk::now() - t0).count();
        v.push_back({ns / ops, static_cast<double>(c1 - c0) / ops});
    }
    std::sort(v.begin(), v.end(), [](const sample& a, const sample& b) { return a.ns < b.ns; });
    stat_t s;
    s.median = v[v.size() / 2].ns;
    s.ticks = v[v.size() / 2].ticks;
    s.lo = v.front().ns;
    s.hi = v.back().ns;
    return s;
}

// A loop of n round trips through a kernel that passes a value both ways.
template <class K>
stat_t time_round_trips(K& k, int samples) {
    return measure(
        [&](std::uint64_t n) {
            int x = 0;
            void* p = &x;
            for (std::uint64_t i = 0; i < n; ++i) {
                p = k.round_trip(p);
                keep(p);
            }
        },
        samples);
}

using results_t = std::array<std::optional<stat_t>, kNumFigures>;

void measure_cpu(results_t& r, int samples) {
    auto put = [&](const char* key, const stat_t& s) { r[figure_index(key)] = s; };

    put("direct_call", measure(
                           [](std::uint64_t n) {
                               int x = 0;
                               void* p = &x;
                               for (std::uint64_t i = 0; i < n; ++i) {
                                   p = coop_bench::direct_callee(p);
                                   keep(p);
                               }
                           },
                           samples));
    {
        coop_bench::raw_pair k(false);
        put("switch_round_trip", time_round_trips(k, samples));
    }
    {
        coop_bench::raw_pair k(true);
        put("switch_fp_round_trip", time_round_trips(k, samples));
    }
    {
        coop_bench::echo_coroutine k(0);
        put("coroutine_round_trip", time_round_trips(k, samples));
    }
    for (int depth : coop_bench::echo_coroutine::depths) {
        coop_bench::echo_coroutine k(depth);
        put(("yield_depth_" + std::to_string(depth)).c_str(), time_round_trips(k, samples));
    }
    for (int n : {16, 256}) {
        coop_bench::round_robin k(n);
        put(("round_robin_" + std::to_string(n)).c_str(), measure(
                                                              [&](std::uint64_t it) {
                                                                  int x = 0;
                                                                  void* p = &x;
                                                                  for (std::uint64_t i = 0; i < it; ++i) {
                                                                      p = k.turn(p);
                                                                      keep(p);
                                                                  }
                                                              },
                                                              samples, n));
    }
    for (int n : {2, 16, 1024}) {
        stat_t s;
        coop_bench::with_yielders(n, [&] {
            s = measure(
                [](std::uint64_t it) {
                    for (std::uint64_t i = 0; i < it; ++i) coop::yield();   // n hops
                },
                samples, n);
        });
        put(("scheduler_hop_" + std::to_string(n)).c_str(), s);
    }
    {
        stat_t s;
        coop_bench::in_task([&](coop::reactor& rx) {
            int x = 0;
            s = measure(
                [&](std::uint64_t it) {
                    for (std::uint64_t i = 0; i < it; ++i) coop_bench::spawn_join(rx, x);
                },
                samples);
        });
        put("spawn_join", s);
    }
    {
        coop_bench::floor_ret k;
        put("floor_switch_ret", measure(
                                    [&](std::uint64_t n) {
                                        for (std::uint64_t i = 0; i < n; ++i) k.round_trip();
                                    },
                                    samples));
    }
    {
        coop_bench::floor_jmp k;
        put("floor_switch_jmp", measure(
                                    [&](std::uint64_t n) {
                                        for (std::uint64_t i = 0; i < n; ++i) k.round_trip();
                                    },
                                    samples));
    }
    put("floor_fp_env", measure(
                            [](std::uint64_t n) {
                                for (std::uint64_t i = 0; i < n; ++i) coop_floor_fp_env();
                            },
                            samples));
}

// The CPU-bound curve of bench/work_bench.cpp: direct_work vs split_work(g).
// The variants are measured interleaved (one sample of each per round) so
// that a slow phase of a shared machine hits all of them alike.
std::pair<double, std::vector<std::pair<std::uint64_t, double>>> granularity_curve(int samples) {
    std::vector<std::uint64_t> gs;
    for (std::uint64_t g = 1; g <= 1024; g *= 2) gs.push_back(g);
    std::deque<coop_bench::split_work> splits;   // a deque: split_work does not move
    for (std::uint64_t g : gs) splits.emplace_back(g);
    constexpr int reps = 8;   // runs per sample (each run is tens of microseconds)
    auto time_it = [](auto&& fn) {
        auto t0 = clk::now();
        for (int r = 0; r < reps; ++r) fn();
        return std::chrono::duration<double, std::nano>(clk::now() - t0).count() / reps;
    };
    std::vector<double> direct;
    std::vector<std::vector<double>> split(gs.size());
    std::uint64_t x = 1;
    for (int i = 0; i < samples + 1; ++i) {
        double d = time_it([&] {
            x = coop_bench::direct_work(x);
            keep(x);
        });
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
    results_t fig;
};

std::string figures_json(const char* indent) {
    std::string o = "[\n";
    for (std::size_t i = 0; i < kNumFigures; ++i) {
        o += indent;
        o += "  {\"key\": " + json_str(kFigures[i].key) + ", \"label\": " + json_str(kFigures[i].label) +
             ", \"switches\": " + (kFigures[i].switches < 0 ? "null" : std::to_string(kFigures[i].switches)) +
             "}" + (i + 1 < kNumFigures ? ",\n" : "\n");
    }
    return o + indent + "]";
}

const char* kCyclesSource =
#if defined(__x86_64__)
    "rdtsc (TSC reference cycles at the nominal rate)";
#elif defined(__aarch64__)
    "cntvct_el0 scaled by cpuinfo_max_freq / cntfrq_el0 (or to 1 GHz when cpufreq is unreadable)";
#else
    "steady_clock ticks";
#endif

bool write_model_file(const std::string& path, const std::string& key, const std::vector<const cpu_result*>& list,
                      const std::string& machine, const struct utsname& u, const virt_info& virt,
                      std::size_t online, int samples, double hz, double to_cycles, const char* date,
                      int gran_cpu, double gran_direct, const std::vector<std::pair<std::uint64_t, double>>& curve) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (!f) {
        std::perror(path.c_str());
        return false;
    }
    const cpu_info& c = list.front()->info;
    std::fprintf(f, "{\n  \"schema\": \"coop-study/2\",\n");
    std::fprintf(f, "  \"source\": \"make study (coop-study)\",\n");
    std::fprintf(f, "  \"cpu\": {\n    \"key\": %s,\n    \"arch\": %s,\n    \"brand\": %s,\n", json_str(key).c_str(),
                 json_str(u.machine).c_str(), json_str_or_null(c.brand).c_str());
    if (!c.vendor_id.empty()) {
        std::fprintf(f, "    \"vendor\": %s,\n    \"vendor_id\": %s,\n", json_str(x86_vendor(c.vendor_id)).c_str(),
                     json_str(c.vendor_id).c_str());
        std::fprintf(f, "    \"family\": %s,\n    \"model\": %s,\n    \"stepping\": %s,\n",
                     num_or_null(c.family).c_str(), num_or_null(c.model).c_str(), num_or_null(c.stepping).c_str());
    } else if (c.implementer) {
        auto h = [](const std::optional<long>& v, int d) {
            return v ? json_str(hex(static_cast<unsigned long>(*v), d)) : std::string("null");
        };
        std::fprintf(f, "    \"vendor\": %s,\n    \"implementer\": %s,\n    \"part\": %s,\n",
                     json_str(arm_implementer(*c.implementer)).c_str(), h(c.implementer, 2).c_str(),
                     h(c.part, 3).c_str());
        std::fprintf(f, "    \"variant\": %s,\n    \"revision\": %s,\n    \"architecture\": %s,\n",
                     h(c.variant, 1).c_str(), num_or_null(c.revision).c_str(), num_or_null(c.architecture).c_str());
        std::fprintf(f, "    \"midr_el1\": %s,\n", json_str_or_null(c.midr).c_str());
    }
    std::fprintf(f, "    \"microcode\": %s\n  },\n", json_str_or_null(c.microcode).c_str());
    std::fprintf(f, "  \"virtualization\": {\"virtualized\": %s, \"hypervisor\": %s, \"evidence\": %s},\n",
                 virt.virtualized ? (*virt.virtualized ? "true" : "false") : "null",
                 json_str_or_null(virt.hypervisor).c_str(), json_str_or_null(virt.evidence).c_str());
    std::fprintf(f, "  \"machine\": %s,\n", json_str(machine).c_str());
    std::fprintf(f, "  \"kernel\": %s,\n",
                 json_str(std::string(u.sysname) + " " + u.release + " " + u.version).c_str());
    std::fprintf(f, "  \"compiler\": %s,\n  \"flags\": %s,\n", json_str(__VERSION__).c_str(),
                 json_str(COOP_STUDY_FLAGS).c_str());
    std::fprintf(f, "  \"date\": %s,\n  \"online_cpus\": %zu,\n  \"samples\": %d,\n", json_str(date).c_str(), online,
                 samples);
    std::fprintf(f, "  \"tick_hz\": %s,\n  \"ticks_to_cycles\": %s,\n  \"cycles_source\": %s,\n", num(hz).c_str(),
                 num(to_cycles).c_str(), json_str(kCyclesSource).c_str());
    std::fprintf(f, "  \"units\": \"ns per operation (median of samples); a round trip is 2 switches\",\n");
    std::fprintf(f, "  \"figures\": %s,\n", figures_json("  ").c_str());
    std::fprintf(f, "  \"cpus\": [\n");
    for (std::size_t i = 0; i < list.size(); ++i) {
        const cpu_result& r = *list[i];
        std::fprintf(f, "    {\"cpu\": %d, \"core_id\": %s, \"smt_siblings\": %s, \"core_type\": %s, ", r.info.id,
                     json_str(r.info.core_id).c_str(), json_str(r.info.siblings).c_str(),
                     json_str(r.info.core_type).c_str());
        std::fprintf(f, "\"microcode\": %s, \"cpuinfo_mhz\": %s, \"freq_max_khz\": %s, \"freq_cur_khz\": %s,\n",
                     json_str_or_null(r.info.microcode).c_str(), num(r.info.mhz).c_str(),
                     num(r.info.freq_max_khz).c_str(), num(r.info.freq_cur_khz).c_str());
        std::fprintf(f, "     \"results\": {\n");
        for (std::size_t k = 0; k < kNumFigures; ++k) {
            std::fprintf(f, "       %s: ", json_str(kFigures[k].key).c_str());
            if (const auto& s = r.fig[k]) {
                std::fprintf(f, "{\"ns\": %s, \"cycles\": %s, \"min_ns\": %s, \"max_ns\": %s}", num(s->median).c_str(),
                             num(s->ticks * to_cycles).c_str(), num(s->lo).c_str(), num(s->hi).c_str());
            } else {
                std::fprintf(f, "null");
            }
            std::fprintf(f, "%s\n", k + 1 < kNumFigures ? "," : "");
        }
        std::fprintf(f, "     }}%s\n", i + 1 < list.size() ? "," : "");
    }
    std::fprintf(f, "  ],\n");
    std::fprintf(f,
                 "  \"granularity\": {\"cpu\": %d, \"units\": %llu, \"coroutines\": %d, \"direct_ns\": %s, "
                 "\"points\": [\n",
                 gran_cpu, static_cast<unsigned long long>(coop_bench::kWorkUnits), coop_bench::kWorkCoroutines,
                 num(gran_direct).c_str());
    for (std::size_t i = 0; i < curve.size(); ++i)
        std::fprintf(f, "    {\"G\": %llu, \"ns\": %s, \"overhead_pct\": %s}%s\n",
                     static_cast<unsigned long long>(curve[i].first), num(curve[i].second).c_str(),
                     num((curve[i].second / gran_direct - 1) * 100).c_str(), i + 1 < curve.size() ? "," : "");
    std::fprintf(f, "  ]},\n  \"history\": []\n}\n");
    const bool ok = std::ferror(f) == 0;
    return std::fclose(f) == 0 && ok;
}

} // namespace

int main(int argc, char** argv) {
    std::string out_dir = "results";
    std::string machine;
    int samples = 101;
    std::string cpu_list;
    std::string cpuinfo_path = "/proc/cpuinfo";
    bool identify = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "coop-study: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--out") {
            out_dir = next();
        } else if (a == "--machine") {
            machine = next();
        } else if (a == "--samples") {
            samples = std::max(3, std::atoi(next().c_str()));
        } else if (a == "--cpus") {
            cpu_list = next();
        } else if (a == "--cpuinfo") {
            cpuinfo_path = next();
        } else if (a == "--identify") {
            identify = true;
        } else if (a == "--list-figures") {
            std::printf("%s\n", figures_json("").c_str());
            return 0;
        } else {
            std::fprintf(stderr,
                         "usage: %s [--out DIR] [--machine NAME] [--samples N] [--cpus LIST]\n"
                         "       %s --list-figures\n"
                         "       %s --identify [--cpuinfo FILE]\n",
                         argv[0], argv[0], argv[0]);
            return 2;
        }
    }
    if (!identify && cpuinfo_path != "/proc/cpuinfo") {
        std::fprintf(stderr, "coop-study: --cpuinfo only goes with --identify (measurements describe this machine)\n");
        return 2;
    }
    struct utsname u {};
    uname(&u);
    if (machine.empty()) machine = u.nodename;

    std::vector<cpu_info> infos = read_cpuinfo(cpuinfo_path);
    if (identify) {
        if (infos.empty()) {
            std::fprintf(stderr, "coop-study: no processors in %s\n", cpuinfo_path.c_str());
            return 1;
        }
        for (const cpu_info& c : infos) {
            std::printf("cpu %d: %s.json  brand %s", c.id, model_key(c).c_str(),
                        c.brand.empty() ? "?" : c.brand.c_str());
            if (!c.vendor_id.empty())
                std::printf("  vendor_id %s family %s model %s stepping %s", c.vendor_id.c_str(),
                            num_or_null(c.family).c_str(), num_or_null(c.model).c_str(),
                            num_or_null(c.stepping).c_str());
            if (c.implementer)
                std::printf("  implementer %s part %s variant %s revision %s",
                            hex(static_cast<unsigned long>(*c.implementer), 2).c_str(),
                            c.part ? hex(static_cast<unsigned long>(*c.part), 3).c_str() : "null",
                            c.variant ? hex(static_cast<unsigned long>(*c.variant), 1).c_str() : "null",
                            num_or_null(c.revision).c_str());
            std::printf("  microcode %s\n", c.microcode.empty() ? "null" : c.microcode.c_str());
        }
        return 0;
    }
    std::vector<int> online = parse_list(read_file("/sys/devices/system/cpu/online"));
    if (online.empty())
        for (const cpu_info& c : infos) online.push_back(c.id);
    if (!cpu_list.empty()) online = parse_list(cpu_list);
    const virt_info virt = detect_virtualization(infos);
    const double hz = tick_hz();

    std::printf("coop-study: %zu CPUs, %d samples per figure (medians, ns per operation)\n", online.size(), samples);
    std::vector<cpu_result> results;
    results.reserve(online.size());
    for (int cpu : online) {
        cpu_result r;
        for (const cpu_info& c : infos)
            if (c.id == cpu) r.info = c;
        if (r.info.id < 0) r.info.id = cpu;
        if (!pin(cpu)) {
            std::printf("cpu %d: cannot pin to it, skipped\n", cpu);
            continue;
        }
        // Warm this core up (frequency ramp) before the first figure.
        measure([](std::uint64_t n) {
            for (std::uint64_t i = 0; i < n; ++i) keep(coop_bench::direct_callee(nullptr));
        }, 3);
        measure_cpu(r.fig, samples);
        std::printf("cpu %d: %s [%s] core %s, SMT siblings %s%s%s\n", cpu, r.info.brand.c_str(),
                    model_key(r.info).c_str(), r.info.core_id.c_str(), r.info.siblings.c_str(),
                    r.info.core_type.empty() ? "" : ", ", r.info.core_type.c_str());
        for (std::size_t k = 0; k < kNumFigures; ++k)
            if (r.fig[k]) std::printf("  %-62s %9.2f ns\n", kFigures[k].label, r.fig[k]->median);
        std::fflush(stdout);
        results.push_back(std::move(r));
    }
    if (results.empty()) {
        std::fprintf(stderr, "coop-study: could not run on any CPU\n");
        return 1;
    }

    // One file per CPU model.
    std::map<std::string, std::vector<const cpu_result*>> by_model;
    for (const cpu_result& r : results) by_model[model_key(r.info)].push_back(&r);

    if (::mkdir(out_dir.c_str(), 0755) != 0 && errno != EEXIST) {
        std::perror(out_dir.c_str());
        return 1;
    }
    char date[32];
    std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    for (auto& [key, list] : by_model) {
        const double to_cycles =
#if defined(__aarch64__)
            list.front()->info.freq_max_khz > 0 ? list.front()->info.freq_max_khz * 1e3 / hz : 1e9 / hz;
#else
            1.0;
#endif
        // The CPU-bound curve, on the first CPU of this model.
        const int gran_cpu = list.front()->info.id;
        pin(gran_cpu);
        auto [direct, curve] = granularity_curve(std::max(5, samples / 2));
        const std::string path = out_dir + "/" + key + ".json";
        if (!write_model_file(path, key, list, machine, u, virt, online.size(), samples, hz, to_cycles, date,
                              gran_cpu, direct, curve)) {
            std::fprintf(stderr, "coop-study: could not write %s\n", path.c_str());
            return 1;
        }
        std::printf("granularity (cpu %d): direct %.1f us;", gran_cpu, direct / 1e3);
        for (auto& [g, t] : curve)
            std::printf(" G=%llu %+.0f%%", static_cast<unsigned long long>(g), (t / direct - 1) * 100);
        std::printf("\nwrote %s\n", path.c_str());
    }
    return 0;
}
