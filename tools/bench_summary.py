#!/usr/bin/env python3
"""Plain-text summary of one `make bench` run.

Reads every Google Benchmark JSON file in the directory given (default
build/<arch>/bench) and answers the four questions of the benchmark suite
with this run's numbers:

  1. what a yield costs next to a direct call (ns, cycles, multiples),
  2. CPU-bound work: overhead of splitting it across coroutines vs granularity,
  3. I/O-bound work: sequential vs concurrent waits on one thread,
  4. peers in the same run and the ratios the project is judged by,

plus the memory cost of sleeping tasks. Every figure is the median over the
run's repetitions (or the single run when there were none). Nothing is
subtracted from any measurement. Python 3 standard library only.
"""
import glob
import json
import os
import statistics
import sys


def load(directory):
    """name -> record with real/cpu time in ns, counters, error."""
    runs = {}
    contexts = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        if os.path.getsize(path) == 0:
            # A suite that ran no benchmark (BENCH_FILTER matched none of
            # its benchmarks) may leave an empty file: nothing to read.
            continue
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            print(f"(skipping {path}: {e})")
            continue
        contexts.append(data.get("context", {}))
        per_name = {}
        for b in data.get("benchmarks", []):
            name = b.get("run_name", b.get("name"))
            per_name.setdefault(name, []).append(b)
        for name, entries in per_name.items():
            runs[name] = reduce_runs(entries)
    return runs, contexts


SCALE = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
META = {"name", "run_name", "run_type", "aggregate_name", "aggregate_unit", "family_index",
        "per_family_instance_index", "repetitions", "repetition_index", "threads",
        "iterations", "real_time", "cpu_time", "time_unit", "error_occurred",
        "error_message", "label"}


def reduce_runs(entries):
    errors = [e for e in entries if e.get("error_occurred")]
    if errors:
        return {"error": errors[0].get("error_message", "error")}
    med = [e for e in entries if e.get("run_type") == "aggregate" and e.get("aggregate_name") == "median"]
    its = [e for e in entries if e.get("run_type") != "aggregate"]
    # Wall-clock benchmarks (UseRealTime: I/O, threads) are judged on real
    # time; single-threaded CPU-bound ones on CPU time, which a shared
    # machine's preemptions do not inflate. "ns" is the figure used.
    real = "/real_time" in (entries[0].get("name", ""))
    key = "real_time" if real else "cpu_time"
    if med:
        src = med[0]
        rec = {k: v for k, v in src.items() if k not in META and isinstance(v, (int, float))}
        unit = SCALE.get(src.get("time_unit", "ns"), 1.0)
        rec["real_ns"] = src["real_time"] * unit
        rec["cpu_ns"] = src["cpu_time"] * unit
        rec["ns"] = src[key] * unit
        rec["reps"] = len(its) or src.get("repetitions", 1)
        if its:
            vals = [e[key] * SCALE.get(e.get("time_unit", "ns"), 1.0) for e in its]
            rec["min_ns"], rec["max_ns"] = min(vals), max(vals)
        return rec
    if not its:
        return {"error": "no data"}
    rec = {}
    keys = set()
    for e in its:
        keys |= {k for k, v in e.items() if k not in META and isinstance(v, (int, float))}
    for k in keys:
        vals = [e[k] for e in its if k in e]
        rec[k] = statistics.median(vals)
    rec["real_ns"] = statistics.median(e["real_time"] * SCALE.get(e.get("time_unit", "ns"), 1.0) for e in its)
    rec["cpu_ns"] = statistics.median(e["cpu_time"] * SCALE.get(e.get("time_unit", "ns"), 1.0) for e in its)
    vals = [e[key] * SCALE.get(e.get("time_unit", "ns"), 1.0) for e in its]
    rec["ns"] = statistics.median(vals)
    rec["min_ns"], rec["max_ns"] = min(vals), max(vals)
    rec["reps"] = len(its)
    return rec


def fmt_ns(ns):
    if ns is None:
        return "-"
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e4:
        return f"{ns / 1e3:.1f} us"
    if ns >= 100:
        return f"{ns:.0f} ns"
    return f"{ns:.2f} ns"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "cpu model", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine


def cpu_flags_hint():
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        return "virtualized" if " hypervisor" in text else "bare metal"
    except OSError:
        return "?"


class Summary:
    def __init__(self, runs, contexts):
        self.r = runs
        self.ctx = contexts[0] if contexts else {}
        self.out = []

    def p(self, s=""):
        self.out.append(s)

    def get(self, name):
        rec = self.r.get(name)
        if rec is None or "error" in rec:
            return None
        return rec

    def err(self, name):
        rec = self.r.get(name)
        if rec is None:
            return "not run"
        return rec.get("error")

    def per(self, name, field="ns", per_counter=None):
        """time (or cycles) of one benchmark, divided by a counter if asked."""
        rec = self.get(name)
        if rec is None:
            return None
        v = rec.get(field)
        if v is None:
            return None
        if per_counter:
            d = rec.get(per_counter)
            if not d:
                return None
            v = v / d
        return v

    # ------------------------------------------------------------------ header
    def header(self):
        c = self.ctx
        self.p("=" * 78)
        self.p("coop benchmark summary")
        self.p("=" * 78)
        ncpu = c.get("num_cpus", os.cpu_count())
        self.p(f"CPU:       {cpu_model()} ({ncpu} CPUs, {cpu_flags_hint()})")
        self.p(f"Compiler:  {c.get('coop_compiler', '?')}   flags: {c.get('coop_flags', '?')}")
        try:
            hz = float(c.get("coop_tick_hz", "0"))
        except ValueError:
            hz = 0
        self.p(f"Cycles:    {c.get('coop_cycle_source', '?')}"
               + (f", counter at {hz / 1e9:.3f} GHz" if hz else ""))
        self.p("           (read around the whole timed loop: wall clock, so a preempted run")
        self.p("           shows more cycles than its CPU-time ns suggest)")
        if c.get("library_build_type") == "debug":
            self.p("Note:      Debian's libbenchmark reports itself as a debug build; that affects")
            self.p("           only the harness between timed loops, not the code measured.")
        self.p("Numbers:   medians over this run's repetitions (BENCH_REPS): CPU time for")
        self.p("           single-threaded CPU-bound benchmarks (immune to being preempted on a")
        self.p("           shared machine), wall-clock time for I/O and multi-threaded ones.")
        self.p("           A 'round trip' is 2 switches: into the other context and back.")
        d = self.get("BM_DirectCall")
        if d and d.get("min_ns") and d.get("max_ns"):
            self.p(f"Noise:     direct call repetitions ranged {d['min_ns']:.2f}-{d['max_ns']:.2f} ns "
                   f"(median {d['ns']:.2f}): compare ratios, not absolutes.")
        self.p()

    # ------------------------------------------------------------------ Q1
    def q1(self):
        self.p("1. What does a yield cost next to a direct call?")
        self.p("-" * 78)
        direct = self.per("BM_DirectCall")
        direct_c = self.per("BM_DirectCall", "cycles")
        rows = [
            ("direct call (out-of-line call+ret)", "BM_DirectCall", None, "0"),
            ("raw coop_jump round trip", "BM_SwitchRoundTrip", None, "2"),
            ("raw coop_jump_fp round trip (FP env kept)", "BM_SwitchRoundTripFp", None, "2"),
            ("coroutine resume+yield", "BM_CoroutineResumeYield", None, "2"),
            ("coroutine resume+yield, preserve_fp_env", "BM_CoroutineResumeYieldFp", None, "2"),
            ("coroutine resume + this_coroutine::yield", "BM_CoroutineResumeYieldTls", None, "2"),
            ("coroutine resume+yield, both in catch blocks", "BM_CoroutineResumeYieldInCatch", None, "2"),
        ]
        for n in self.by_arg("BM_CoroutineYieldDepth/"):
            rows.append((f"coroutine resume+yield from call depth {n.split('/')[1]}", n, None, "2"))
        rows.append(("coroutine create+run+destroy (pooled)", "BM_CoroutineCreateDestroy", None, "2"))
        for n in self.by_arg("BM_CoroutineRoundRobin/"):
            rows.append((f"resume+yield, {n.split('/')[1]} coroutines round-robin", n, "resumes", "2"))
        hops = self.all_prefix("BM_SchedulerYield/")
        for hop in hops:
            rows.append((f"scheduler yield, per hop ({int(self.r[hop].get('tasks', 0))} tasks)", hop, "hops", "1-2"))
        if not hops:
            rows.append(("scheduler yield, per hop", "BM_SchedulerYield/2", None, "1-2"))
        rows.append(("spawn+join (pooled stack)", "BM_SpawnJoin", None, "2-4"))
        rows += [
            ("floor: minimal switch ending in ret", "BM_FloorSwitchRet", None, "2"),
            ("floor: the same ending in pop+jmp / br", "BM_FloorSwitchJmp", None, "2"),
            ("floor: FP control state save+restore (call)", "BM_FloorFpEnv", None, "0"),
        ]
        self.p(f"{'operation':44s} {'ns':>9s} {'cycles':>8s} {'x call':>7s} {'switches':>8s}")
        for label, name, per, sw in rows:
            ns = self.per(name, "ns", per)
            cyc = self.per(name, "cycles", per)
            if ns is None:
                self.p(f"{label:44s} {'skipped: ' + str(self.err(name))}")
                continue
            mult = f"{ns / direct:.1f}" if direct else "-"
            self.p(f"{label:44s} {ns:9.2f} {cyc if cyc is None else round(cyc, 1):>8} {mult:>7s} {sw:>8s}")
        self.p(f"(direct call = {fmt_ns(direct)}, {direct_c:.1f} cycles)" if direct and direct_c else "")
        self.p("Switches: a scheduler hop is 1 switch when the yielding task hands over directly,")
        self.p("2 through the run loop; spawn+join is 2-4 the same way.")
        ret, jmp = self.per("BM_FloorSwitchRet"), self.per("BM_FloorSwitchJmp")
        fpenv = self.per("BM_FloorFpEnv")
        if ret and jmp:
            self.p(f"Floors:    ending a switch in ret instead of an indirect jmp/br costs {(ret - jmp) / 2:.2f} ns")
            self.p("           per switch on this CPU (the return-stack buffer predicts the wrong target).")
        if fpenv and direct:
            self.p(f"           Saving + restoring the FP control state costs {fpenv - direct:.2f} ns over a direct call.")
        self.p()

    def by_arg(self, prefix):
        """Names with this prefix, ordered by their numeric argument."""
        return sorted((n for n in self.r if n.startswith(prefix)),
                      key=lambda n: int(n.split("/")[1]) if n.split("/")[1].isdigit() else 0)

    def all_prefix(self, prefix):
        return sorted((n for n in self.r if n.startswith(prefix) and "error" not in self.r[n]),
                      key=lambda n: self.r[n].get("tasks", 0))

    def find_prefix(self, prefix):
        names = sorted((n for n in self.r if n.startswith(prefix) and "error" not in self.r[n]),
                       key=lambda n: self.r[n].get("tasks", 0))
        return names[0] if names else None

    # ------------------------------------------------------------------ Q2
    def q2(self):
        self.p("2. CPU-bound work gains nothing from coroutines")
        self.p("-" * 78)
        base = self.get("BM_WorkDirect")
        if not base:
            self.p(f"skipped: {self.err('BM_WorkDirect')}")
            self.p()
            return
        units = base.get("units", 0)
        self.p(f"{int(units)} work units (~20 instructions each, throughput-bound) per iteration;")
        self.p(f"direct calls: {fmt_ns(base['ns'])} ({base['ns'] / units:.2f} ns/unit).")
        noise = 0.0
        if base.get("min_ns") and base.get("max_ns"):
            noise = (base["max_ns"] - base["min_ns"]) / base["ns"] * 100 / 2
            self.p(f"Noise: direct-call repetitions spread +-{noise:.1f}% around their median;")
            self.p("overheads inside that band are reported as noise.")
        rows = sorted((n for n in self.r if n.startswith("BM_WorkCoroutines/") and self.get(n)),
                      key=lambda n: self.r[n].get("G", 0))
        if rows:
            k = int(self.r[rows[0]].get("K", 0))
            self.p(f"Split across K={k} coroutines, each yielding to the driver every G units:")
            self.p(f"{'G (units/yield)':>16s} {'time':>10s} {'switches':>9s} {'overhead':>9s} {'extra ns/switch':>16s}")
            for n in rows:
                rec = self.r[n]
                ov = (rec["ns"] / base["ns"] - 1) * 100
                sw = rec.get("switches", 0)
                extra = (rec["ns"] - base["ns"]) / sw if sw else 0
                if abs(ov) <= noise:
                    ov_txt, ex_txt = "noise", "-"
                else:
                    ov_txt, ex_txt = f"{ov:.1f}%", f"{extra:.2f}"
                self.p(f"{int(rec.get('G', 0)):>16d} {fmt_ns(rec['ns']):>10s} {sw:>9.0f} "
                       f"{ov_txt:>9s} {ex_txt:>16s}")
            self.p("overhead = coroutine time / direct time - 1 (switches: 2 per resume+yield).")
            self.p("It falls roughly as 1/G and disappears into the work once a slice between")
            self.p("yields is a few hundred ns; the curve per CPU is in results/ (make study).")
        for n in sorted(self.r):
            if n.startswith("BM_WorkTasks/") and self.get(n):
                rec = self.r[n]
                ov = (rec["ns"] / base["ns"] - 1) * 100
                self.p(f"  via reactor tasks + coop::yield(), G={int(rec.get('G', 0))}: "
                       f"{fmt_ns(rec['ns'])}, overhead {ov:.1f}%")
        self.p()

    # ------------------------------------------------------------------ Q3
    def q3(self):
        self.p("3. I/O-bound work gains by overlapping waits (one thread)")
        self.p("-" * 78)
        any_row = False
        for kind, label in (("Timer", "timer wait"), ("Socket", "socketpair request to a server task")):
            seq = {int(self.r[n].get("requests", 0)): self.r[n] for n in self.r
                   if n.startswith(f"BM_{kind}WaitSequential/") and self.get(n)}
            con = {int(self.r[n].get("requests", 0)): self.r[n] for n in self.r
                   if n.startswith(f"BM_{kind}WaitConcurrent/") and self.get(n)}
            if not con:
                err = next((self.err(n) for n in self.r if n.startswith(f"BM_{kind}Wait")), "not run")
                self.p(f"{label}: skipped: {err}")
                continue
            any_row = True
            wait_us = next(iter(con.values())).get("wait_us", 0)
            # cost of one sequential request, measured at the largest N run sequentially
            per_req = None
            if seq:
                nmax = max(seq)
                per_req = seq[nmax]["ns"] / nmax
            self.p(f"{label}, each request waits L = {wait_us:g} us:")
            self.p(f"{'N':>8s} {'sequential':>12s} {'concurrent':>12s} {'speedup':>9s} {'ideal':>7s} {'efficiency':>10s}")
            sat = None
            for n in sorted(con):
                c = con[n]["ns"]
                if n in seq:
                    s = seq[n]["ns"]
                    s_txt = fmt_ns(s)
                elif per_req:
                    s = per_req * n
                    s_txt = fmt_ns(s) + "*"
                else:
                    s, s_txt = None, "-"
                sp = s / c if s else None
                eff = sp / n * 100 if sp else None
                if eff is not None and eff < 50 and sat is None:
                    sat = n
                self.p(f"{n:>8d} {s_txt:>12s} {fmt_ns(c):>12s} "
                       f"{(f'{sp:.1f}x' if sp else '-'):>9s} {n:>6d}x {(f'{eff:.0f}%' if eff else '-'):>10s}")
            if sat:
                below = max((n for n in con if n < sat), default=None)
                where = f"between N={below} and N={sat}" if below else f"by N={sat}"
                self.p(f"-> speedup tracks N up to N={below or 1}; the thread saturates {where}")
                self.p("   (efficiency < 50%: handling N requests takes longer than one wait).")
                cap = next(iter(con.values())).get("pool_capacity")
                if cap and below and below <= cap < sat:
                    self.p(f"   The per-thread stack pool keeps {int(cap)} stacks: beyond that every task")
                    self.p("   maps a fresh stack (mmap + first-touch page fault) and unmaps it at the end.")
            else:
                self.p("-> speedup tracks N over the whole range measured (no saturation reached).")
        if any_row:
            self.p("* sequential time extrapolated from the largest sequential run (requests")
            self.p("  one after another cost the same each: N x that run's per-request time).")
        self.p()

    # ------------------------------------------------------------------ Q4
    def q4(self):
        self.p("4. Peers in the same binary and the judged ratios")
        self.p("-" * 78)
        peers = [
            ("Boost.Context fcontext round trip", "BM_BoostFcontextRoundTrip"),
            ("Boost.Context continuation round trip", "BM_BoostContinuation"),
            ("C++20 stackless resume+suspend", "BM_Cpp20ResumeSuspend"),
            ("ucontext swapcontext round trip", "BM_UcontextSwapRoundTrip"),
        ]
        for label, name in peers:
            ns = self.per(name)
            if ns is None:
                self.p(f"{label:44s} skipped: {self.err(name)}")
            else:
                self.p(f"{label:44s} {fmt_ns(ns):>10s}  {self.per(name, 'cycles') or 0:8.1f} cycles")
        # Echo series: (key, label, name prefix); a name continues with /<conns>/real_time.
        echo_series = (("uring", "coop on io_uring", "BM_EchoCoop/io_uring/"),
                       ("cepoll", "coop on epoll", "BM_EchoCoop/epoll/"),
                       ("libuv", "libuv", "BM_EchoLibuv/"),
                       ("raw", "raw epoll loop", "BM_EchoEpoll/"))
        echo = {}
        echo_names = {}
        for key, label, prefix in echo_series:
            names = sorted((n for n in self.r if n.startswith(prefix)),
                           key=lambda n: int(n[len(prefix):].split("/")[0] or 0))
            for n in names:
                rec = self.get(n)
                conns = n[len(prefix):].split("/")[0]
                echo.setdefault(conns, {})[key] = rec
                echo_names[(conns, key)] = n
                if rec:
                    rt = rec["ns"] / rec.get("roundtrips", 1)
                    self.p(f"{'echo ping-pong, ' + label + ', ' + conns + ' conn':44s} "
                           f"{fmt_ns(rt):>10s}  per message round trip")
                else:
                    self.p(f"{'echo ping-pong, ' + label + ', ' + conns + ' conn':44s} "
                           f"skipped: {self.err(n)}")
        self.p()
        self.p(f"{'judged ratio':46s} {'value':>7s} {'target':>8s}  verdict")

        def verdict(label, v, target, le=True, why=None):
            if v is None:
                self.p(f"{label:46s} {'-':>7s} {target:>8s}  not measured ({why})")
                return
            if target[0] not in "<>":
                self.p(f"{label:46s} {v:7.2f} {target:>8s}")
                return
            limit = float(target.strip("<=>x "))
            ok = v <= limit if le else v >= limit
            self.p(f"{label:46s} {v:7.2f} {target:>8s}  {'met' if ok else 'MISSED'}")

        def ratio(label, num, den, target, num_per=None):
            a, b = self.per(num, "ns", num_per), self.per(den)
            miss = num if a is None else den
            verdict(label, a / b if a is not None and b else None, target, why=self.err(miss))

        ratio("coop_jump round trip / Boost fcontext", "BM_SwitchRoundTrip", "BM_BoostFcontextRoundTrip", "<=0.5")
        ratio("coop_jump_fp round trip / Boost fcontext", "BM_SwitchRoundTripFp", "BM_BoostFcontextRoundTrip", "(info)")
        ratio("coroutine resume+yield / C++20 resume", "BM_CoroutineResumeYield", "BM_Cpp20ResumeSuspend", "<=2")
        ratio("  the same, both sides in catch blocks", "BM_CoroutineResumeYieldInCatch",
              "BM_Cpp20ResumeSuspend", "<=2")
        ratio("raw coop_jump round trip / C++20 resume", "BM_SwitchRoundTrip", "BM_Cpp20ResumeSuspend", "(info)")
        ratio("coroutine, yield at call depth 1 / C++20", "BM_CoroutineYieldDepth/1",
              "BM_Cpp20ResumeSuspend", "(info)")
        for n in ("16", "256"):
            ratio(f"round robin ({n}) per resume / resume+yield", f"BM_CoroutineRoundRobin/{n}",
                  "BM_CoroutineResumeYield", "<=1.3", num_per="resumes")
        for n, target in (("2", "<=0.6"), ("16", "<=0.8"), ("1024", "<=1.5")):
            ratio(f"scheduler hop ({n} tasks) / raw round trip", f"BM_SchedulerYield/{n}", "BM_SwitchRoundTrip",
                  target, num_per="hops")
        ratio("spawn+join / raw round trip", "BM_SpawnJoin", "BM_SwitchRoundTrip", "<=8")
        ratio("floor: ret-ending / jmp-ending switch", "BM_FloorSwitchRet", "BM_FloorSwitchJmp", "(info)")
        mem = self.get("BM_SleepingTasksMemory/100000") or next(
            (self.get(n) for n in sorted(self.r) if n.startswith("BM_SleepingTasksMemory")), None)
        verdict("RSS per sleeping task, KiB", mem["rss_per_task"] / 1024 if mem and "rss_per_task" in mem else None,
                "<=8", why=next((self.err(n) for n in self.r if n.startswith("BM_SleepingTasksMemory")), "not run"))
        # Throughput ratios (time per iteration of the other / of coop on io_uring).
        def echo_ratio(conns, num, den, target, label):
            d = echo.get(conns, {})
            a, b = d.get(num), d.get(den)
            why = self.err(echo_names.get((conns, num), "")) if not a else self.err(echo_names.get((conns, den), ""))
            v = b["ns"] / a["ns"] if a and b else None
            if target == "(info)":
                if v is not None:
                    self.p(f"{label:46s} {v:7.2f} {'(info)':>8s}")
                return
            verdict(label, v, target, le=False, why=why)

        for conns in sorted(echo, key=lambda s: int(s) if s.isdigit() else 0):
            many = conns.isdigit() and int(conns) >= 16
            echo_ratio(conns, "uring", "libuv", ">=1.25" if many else ">=1.0",
                       f"echo throughput coop io_uring / libuv ({conns} conn)")
            echo_ratio(conns, "uring", "cepoll", ">=1.25" if many else ">=0.95",
                       f"echo throughput io_uring / coop epoll ({conns} conn)")
            echo_ratio(conns, "cepoll", "libuv", "(info)", f"echo throughput coop epoll / libuv ({conns} conn)")
            echo_ratio(conns, "uring", "raw", "(info)", f"echo throughput coop io_uring / raw epoll ({conns} conn)")
        if not echo:
            verdict("echo throughput coop io_uring / libuv", None, ">=1.25", le=False, why="not run")
        self.p("(time ratios: lower is better for coop; throughput ratios: higher is better)")
        self.p()

    # ------------------------------------------------------------------ memory
    def memory(self):
        self.p("Memory: sleeping tasks")
        self.p("-" * 78)
        names = [n for n in self.r if n.startswith("BM_SleepingTasksMemory")]
        if not names:
            self.p("not run")
        for n in sorted(names):
            rec = self.get(n)
            if not rec:
                self.p(f"{n}: skipped: {self.err(n)}")
                continue
            per = rec.get("rss_per_task", 0)
            tasks = int(rec.get("tasks", 0))
            self.p(f"{tasks} tasks parked in sleep_for: RSS +{rec.get('rss_delta', 0) / 2**20:.1f} MiB, "
                   f"{per / 1024:.2f} KiB per task (target <= 8 KiB: {'met' if per <= 8192 else 'MISSED'})")
            if rec.get("maps_per_task") is not None:
                self.p(f"  page tables {rec.get('pte_per_task', 0):.0f} B/task (not in RSS); kernel mappings "
                       f"per task {rec['maps_per_task']:.2f}; spawn {fmt_ns(rec.get('spawn_ns_per_task'))}/task")
                self.p(f"  each task reserves {rec.get('stack_reserved', 0) / 1024:.0f} KiB of address space; "
                       f"only touched pages count.")
        self.p()

    def render(self):
        self.header()
        self.q1()
        self.q2()
        self.q3()
        self.q4()
        self.memory()
        return "\n".join(self.out)


def kv_summary(directory):
    """coop-kv vs redis-server: bench/kv_bench.py writes its own summary."""
    path = os.path.join(directory, "kv", "summary.txt")
    try:
        with open(path) as f:
            return f.read().rstrip("\n")
    except OSError:
        return None


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "build/x86_64/bench"
    runs, contexts = load(directory)
    kv = kv_summary(directory)
    if not runs and kv is None:
        print(f"no benchmark results in {directory} (run `make bench` first)")
        return 0
    if runs:
        print(Summary(runs, contexts).render())
    if kv is not None:
        print(kv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
