#!/usr/bin/env python3
"""bench/kv_bench.py — coop-kv against redis-server under redis-benchmark.

  bench/kv_bench.py --coop-kv build/x86_64/bin/coop-kv [--out DIR] [--reps N]

Both servers run at once, idle while the other is measured: coop-kv with
--threads 1 (one reactor) and redis-server with `--save "" --appendonly no`.
The same redis-benchmark client drives them in turn, the order alternating
from one repetition to the next, for every combination of `-c 50` / `-c 1000`
connections and `-P 1` / `-P 16` pipelining, tests ping, set and get. With two
or more CPUs the servers are pinned to one CPU and the client to another
(taskset), so that they do not compete for a core.

Reported per configuration and test: the median over the repetitions of
requests/s, p50 and p99 latency, and coop-kv's ratios to redis-server (ops/s
ratio above 1: coop-kv is faster; latency ratio below 1: coop-kv is faster);
and per configuration the servers' CPU time per request (user + system, from
/proc), which a busy machine disturbs much less than throughput.
Writes DIR/results.json and DIR/summary.txt.

Missing programs are skipped with the Debian package to install (exit 0):
redis-benchmark (redis-tools) is needed for anything, redis-server only for
the comparison.

Knobs: --reps (default 5), --requests (per test at -P 1; -P 16 runs 10x as
many; default 100000), --filter REGEX (run only if it matches "KvRedisBenchmark",
as BENCH_FILTER does for the other suites).
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

CONFIGS = [(50, 1), (1000, 1), (50, 16), (1000, 16)]
TESTS = ["PING_INLINE", "PING_MBULK", "SET", "GET"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"kv_bench: {what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"kv_bench: {what} did not answer on port {port}")


def pin(cpu):
    return ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []


def start_coop_kv(path, cpu):
    proc = subprocess.Popen(pin(cpu) + [path, "--port", "0", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    m = re.match(r"listening on [\d.]+:(\d+)$", line)
    if not m:
        proc.kill()
        sys.exit(f"kv_bench: unexpected first line from coop-kv: {line!r}")
    port = int(m.group(1))
    wait_ready(port, proc, "coop-kv")
    return proc, port


def start_redis(cpu):
    port = free_port()      # redis-server cannot take port 0
    proc = subprocess.Popen(pin(cpu) + ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                        "--save", "", "--appendonly", "no", "--loglevel", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc, "redis-server")
    return proc, port


def run_benchmark(port, clients, pipeline, requests, cpu):
    cmd = pin(cpu) + ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
                      "-n", str(requests), "-P", str(pipeline), "-t", "ping,set,get", "--csv"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"kv_bench: redis-benchmark failed ({out.returncode}): {out.stderr.strip()}")
    rows = {}
    for line in out.stdout.splitlines():
        f = [x.strip('"') for x in line.split('","')]
        if len(f) >= 8 and f[0] in TESTS:
            rows[f[0]] = {"rps": float(f[1]), "p50_ms": float(f[4]), "p99_ms": float(f[6])}
    missing = [t for t in TESTS if t not in rows]
    if missing:
        sys.exit(f"kv_bench: redis-benchmark gave no result for {missing}:\n{out.stdout}")
    return rows


def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(xs):
    return statistics.median(xs) if xs else None


def summarize(results, cpu_us, servers, cpus, reps):
    lines = []
    p = lines.append
    p("coop-kv vs redis-server under redis-benchmark (KvRedisBenchmark)")
    if cpus:
        p(f"  servers pinned to CPU {cpus[0]}, redis-benchmark to CPU {cpus[1]}; "
          f"medians of {reps} alternated runs")
    else:
        p(f"  one CPU: servers and client share it (not pinned); medians of {reps} alternated runs")
    p("  ops/s ratio > 1 and latency ratio < 1 mean coop-kv is ahead; a shared machine is noisy,")
    p("  compare the ratios, not the absolute numbers.")
    have_redis = "redis-server" in servers
    for clients, pipeline in CONFIGS:
        key = f"c{clients}_P{pipeline}"
        p("")
        cpu = f"server CPU per request: coop-kv {median(cpu_us['coop-kv'][key]):.2f} us"
        if have_redis:
            rc = median(cpu_us["redis-server"][key])
            cpu += f", redis-server {rc:.2f} us"
            if rc:
                cpu += f" (ratio {median(cpu_us['coop-kv'][key]) / rc:.2f})"
        p(f"  -c {clients} -P {pipeline}    {cpu}")
        head = f"    {'test':<12}{'coop-kv ops/s':>14}"
        if have_redis:
            head += f"{'redis ops/s':>13}{'ratio':>7}"
        head += f"{'p50 ms':>9}"
        if have_redis:
            head += f"{'redis':>8}"
        head += f"{'p99 ms':>9}"
        if have_redis:
            head += f"{'redis':>8}{'ratio':>7}"
        p(head)
        for t in TESTS:
            kv = results["coop-kv"][key][t]
            row = f"    {t:<12}{median(kv['rps']):>14,.0f}"
            rd = results["redis-server"][key][t] if have_redis else None
            if rd:
                ratio = median(kv["rps"]) / median(rd["rps"])
                row += f"{median(rd['rps']):>13,.0f}{ratio:>7.2f}"
            row += f"{median(kv['p50_ms']):>9.3f}"
            if rd:
                row += f"{median(rd['p50_ms']):>8.3f}"
            row += f"{median(kv['p99_ms']):>9.3f}"
            if rd:
                p99r = median(kv["p99_ms"]) / median(rd["p99_ms"]) if median(rd["p99_ms"]) else float("nan")
                row += f"{median(rd['p99_ms']):>8.3f}{p99r:>7.2f}"
            p(row)
    if have_redis:
        p("")
        p("  targets (issue 11): ops/s ratio >= 1.0 at -c 50 and -c 1000 (-P 1) and at -P 16;")
        p("  p99 ratio <= 1.1 at -c 50 -P 1")
        verdicts = []
        for clients, pipeline in CONFIGS:
            key = f"c{clients}_P{pipeline}"
            worst = min(median(results["coop-kv"][key][t]["rps"]) / median(results["redis-server"][key][t]["rps"])
                        for t in TESTS)
            verdicts.append(f"-c {clients} -P {pipeline}: lowest ops/s ratio {worst:.2f} "
                            f"({'met' if worst >= 1.0 else 'MISSED'})")
        key = "c50_P1"
        worst_p99 = max(median(results["coop-kv"][key][t]["p99_ms"]) / median(results["redis-server"][key][t]["p99_ms"])
                        for t in TESTS if median(results["redis-server"][key][t]["p99_ms"]))
        verdicts.append(f"-c 50 -P 1: highest p99 ratio {worst_p99:.2f} ({'met' if worst_p99 <= 1.1 else 'MISSED'})")
        for v in verdicts:
            p("    " + v)
    else:
        p("")
        p("  redis-server not found: apt-get install redis-server (no comparison)")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coop-kv", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--requests", type=int, default=50000)
    ap.add_argument("--filter", default="")
    args = ap.parse_args()

    if args.filter and not re.search(args.filter, "KvRedisBenchmark"):
        return 0
    if not shutil.which("redis-benchmark"):
        print("kv_bench: redis-benchmark not found: apt-get install redis-tools (skipped)")
        return 0
    if not os.access(args.coop_kv, os.X_OK):
        sys.exit(f"kv_bench: {args.coop_kv} is not built")

    # 1000 connections need more than the usual 1024 fds on each side.
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, ValueError, OSError):
        pass

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pinned = cpus[:2] if len(cpus) >= 2 else []
    server_cpu = pinned[0] if pinned else None
    client_cpu = pinned[1] if pinned else None

    procs = {}
    try:
        procs["coop-kv"] = start_coop_kv(args.coop_kv, server_cpu)
        if shutil.which("redis-server"):
            procs["redis-server"] = start_redis(server_cpu)
        else:
            print("kv_bench: redis-server not found: apt-get install redis-server (coop-kv only)")
        servers = list(procs)
        results = {s: {f"c{c}_P{pl}": {t: {"rps": [], "p50_ms": [], "p99_ms": []} for t in TESTS}
                       for c, pl in CONFIGS} for s in servers}
        # Server CPU time per request over a whole configuration run (all
        # tests): unlike ops/s it hardly depends on what else the machine
        # is doing.
        cpu_us = {s: {f"c{c}_P{pl}": [] for c, pl in CONFIGS} for s in servers}
        for rep in range(args.reps):
            order = servers if rep % 2 == 0 else list(reversed(servers))
            for clients, pipeline in CONFIGS:
                key = f"c{clients}_P{pipeline}"
                n = args.requests * (10 if pipeline > 1 else 1)
                for s in order:
                    cpu0 = cpu_seconds(procs[s][0].pid)
                    rows = run_benchmark(procs[s][1], clients, pipeline, n, client_cpu)
                    cpu_us[s][key].append((cpu_seconds(procs[s][0].pid) - cpu0) * 1e6 / (n * len(TESTS)))
                    for t in TESTS:
                        for field in ("rps", "p50_ms", "p99_ms"):
                            results[s][key][t][field].append(rows[t][field])
                    print(f"kv_bench: rep {rep + 1}/{args.reps} -c {clients} -P {pipeline} {s}: " +
                          " ".join(f"{t}={rows[t]['rps']:.0f}/s" for t in TESTS), flush=True)
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    text = summarize(results, cpu_us, servers, pinned, args.reps)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"configs": CONFIGS, "tests": TESTS, "reps": args.reps, "cpus": pinned,
                       "results": results, "server_cpu_us_per_request": cpu_us}, f, indent=1)
        with open(os.path.join(args.out, "summary.txt"), "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
