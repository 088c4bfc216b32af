#!/usr/bin/env python3
"""bench/kv_bench.py — coop-kv against redis-server under redis-benchmark.

  bench/kv_bench.py --coop-kv build/x86_64/bin/coop-kv [--out DIR] [--reps N]

Both servers run at once, each idle while the other is measured: coop-kv with
--threads 1 (one reactor) and redis-server with `--save "" --appendonly no`.
The same redis-benchmark command drives one, then the other, for every
combination of `-c 50` / `-c 1000` connections and `-P 1` / `-P 16`
pipelining, test by test (ping, set, get); which server goes first alternates.
With two or more CPUs the servers are pinned to one CPU and the client to
another (taskset), so that they do not compete for a core.

Reported per configuration and test, over the repetitions: the medians of
requests/s, p50 and p99 latency; coop-kv's ratios to redis-server, as the
median of the ratios of the two runs that followed each other (on a shared
machine the load drifts between repetitions; two runs a few seconds apart
see nearly the same machine); and per configuration each server's CPU time
per request (user + system from /proc/<pid>/stat), which depends much less on
the rest of the machine than throughput. Ops/s ratio above 1, latency and CPU
ratios below 1: coop-kv is ahead. Writes DIR/results.json and DIR/summary.txt.

Missing programs are skipped with the Debian package to install (exit 0):
redis-benchmark (redis-tools) is needed for anything, redis-server only for
the comparison.

Knobs: --reps (default 5); --requests per test at -P 1 (-P 16 runs ten times
as many; default 50000); --filter REGEX (run only if it matches
"KvRedisBenchmark", as BENCH_FILTER selects benchmarks of the other suites).
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
# redis-benchmark -t names and the result rows each one prints.
UNITS = [("ping", ["PING_INLINE", "PING_MBULK"]), ("set", ["SET"]), ("get", ["GET"])]
TESTS = [row for _, rows in UNITS for row in rows]
FIELDS = ("rps", "p50_ms", "p99_ms")


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


def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_benchmark(port, clients, pipeline, requests, unit, rows, cpu):
    cmd = pin(cpu) + ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
                      "-n", str(requests), "-P", str(pipeline), "-t", unit, "--csv"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"kv_bench: redis-benchmark failed ({out.returncode}): {out.stderr.strip()}")
    got = {}
    for line in out.stdout.splitlines():
        f = [x.strip('"') for x in line.split('","')]
        if len(f) >= 8 and f[0] in rows:
            got[f[0]] = {"rps": float(f[1]), "p50_ms": float(f[4]), "p99_ms": float(f[6])}
    missing = [t for t in rows if t not in got]
    if missing:
        sys.exit(f"kv_bench: redis-benchmark gave no result for {missing}:\n{out.stdout}")
    return got


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def paired(a, b):
    """Ratios a[i] / b[i] of runs made one after the other."""
    return [x / y for x, y in zip(a, b) if y]


def fmt(v, spec):
    return format(v, spec) if v is not None else format("-", spec.lstrip(",").split(".")[0] + "s")


def summarize(results, cpu_us, servers, cpus, reps):
    lines = []
    p = lines.append
    p("coop-kv vs redis-server under redis-benchmark (KvRedisBenchmark)")
    if cpus:
        p(f"  servers pinned to CPU {cpus[0]}, redis-benchmark to CPU {cpus[1]}; {reps} repetitions,")
    else:
        p(f"  one CPU: servers and client share it (not pinned); {reps} repetitions,")
    p("  medians; ratio = median of the ratios of back-to-back runs (ops/s > 1 and latency or")
    p("  CPU < 1: coop-kv ahead). A shared machine is noisy: trust the CPU per request most.")
    have_redis = "redis-server" in servers
    kv, rd = results["coop-kv"], results.get("redis-server")
    verdict = {}
    for clients, pipeline in CONFIGS:
        key = f"c{clients}_P{pipeline}"
        p("")
        cpu = f"server CPU per request: coop-kv {median(cpu_us['coop-kv'][key]):.2f} us"
        if have_redis:
            cpu += (f", redis-server {median(cpu_us['redis-server'][key]):.2f} us (ratio "
                    f"{fmt(median(paired(cpu_us['coop-kv'][key], cpu_us['redis-server'][key])), '.2f')})")
        p(f"  -c {clients} -P {pipeline}    {cpu}")
        head = f"    {'test':<12}{'coop-kv ops/s':>14}"
        if have_redis:
            head += f"{'redis ops/s':>13}{'ratio':>7}"
        head += f"{'p50 ms':>9}" + (f"{'redis':>8}" if have_redis else "")
        head += f"{'p99 ms':>9}" + (f"{'redis':>8}{'ratio':>7}" if have_redis else "")
        p(head)
        for t in TESTS:
            k = kv[key][t]
            row = f"    {t:<12}{median(k['rps']):>14,.0f}"
            if have_redis:
                r = rd[key][t]
                ops_ratio = median(paired(k["rps"], r["rps"]))
                p99_ratio = median(paired(k["p99_ms"], r["p99_ms"]))
                verdict.setdefault(key, []).append((t, ops_ratio, p99_ratio))
                row += f"{median(r['rps']):>13,.0f}{fmt(ops_ratio, '>7.2f')}"
            row += f"{median(k['p50_ms']):>9.3f}" + (f"{median(rd[key][t]['p50_ms']):>8.3f}" if have_redis else "")
            row += f"{median(k['p99_ms']):>9.3f}"
            if have_redis:
                row += f"{median(rd[key][t]['p99_ms']):>8.3f}{fmt(p99_ratio, '>7.2f')}"
            p(row)
    p("")
    if have_redis:
        p("  targets (issue 11): ops/s ratio >= 1.0 at -c 50 and -c 1000 (-P 1) and at -P 16;")
        p("  p99 ratio <= 1.1 at -c 50 -P 1")
        for clients, pipeline in CONFIGS:
            key = f"c{clients}_P{pipeline}"
            t, worst, _ = min(verdict[key], key=lambda v: v[1] if v[1] is not None else 0)
            p(f"    -c {clients} -P {pipeline}: lowest ops/s ratio {fmt(worst, '.3f')} ({t}): "
              f"{'met' if worst is not None and worst >= 1.0 else 'MISSED'}")
        t, _, worst = max(verdict["c50_P1"], key=lambda v: v[2] if v[2] is not None else 0)
        p(f"    -c 50 -P 1: highest p99 ratio {fmt(worst, '.3f')} ({t}): "
          f"{'met' if worst is not None and worst <= 1.1 else 'MISSED'}")
    else:
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
        results = {s: {f"c{c}_P{pl}": {t: {f: [] for f in FIELDS} for t in TESTS} for c, pl in CONFIGS}
                   for s in servers}
        cpu_us = {s: {f"c{c}_P{pl}": [] for c, pl in CONFIGS} for s in servers}
        for rep in range(args.reps):
            for clients, pipeline in CONFIGS:
                key = f"c{clients}_P{pipeline}"
                n = args.requests * (10 if pipeline > 1 else 1)
                cpu_run = {s: 0.0 for s in servers}
                for u, (unit, rows) in enumerate(UNITS):
                    order = servers if (rep + u) % 2 == 0 else list(reversed(servers))
                    for s in order:
                        cpu0 = cpu_seconds(procs[s][0].pid)
                        got = run_benchmark(procs[s][1], clients, pipeline, n, unit, rows, client_cpu)
                        cpu_run[s] += cpu_seconds(procs[s][0].pid) - cpu0
                        for t in rows:
                            for f in FIELDS:
                                results[s][key][t][f].append(got[t][f])
                for s in servers:
                    cpu_us[s][key].append(cpu_run[s] * 1e6 / (n * len(TESTS)))
                print(f"kv_bench: rep {rep + 1}/{args.reps} -c {clients} -P {pipeline}: " +
                      "  ".join(f"{s} " + " ".join(f"{t}={results[s][key][t]['rps'][-1]:.0f}/s" for t in TESTS)
                                for s in servers), flush=True)
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
                       "requests_at_P1": args.requests, "results": results,
                       "server_cpu_us_per_request": cpu_us}, f, indent=1)
        with open(os.path.join(args.out, "summary.txt"), "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
