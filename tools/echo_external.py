#!/usr/bin/env python3
"""Echo ping-pong with an external client: servers and client as separate
processes, pinned to two different CPUs, every server driven by the same
client program (coop-echo-load) in the same run.

  echo_external.py [--bin DIR] [--conns 1,16,64] [--reps 5] [--seconds 2]
                   [--servers coop-io_uring,coop-epoll,libuv,raw-epoll]
      Throughput. Each repetition runs every (server, connections) pair
      once, in a fresh random order (a slow phase of a shared machine then
      spreads over all of them). Prints the median messages per second of
      each pair, its spread, and the judged ratios at each connection count:
        coop on io_uring / libuv         >= 1.25 at 16 and 64 connections
        coop on io_uring / coop on epoll >= 1.25 at 16 and 64, >= 0.95 at 1
  echo_external.py --syscalls [--rounds 4000] [--conns 1,16,64]
      System calls per echoed message: each server runs under strace -f -c
      twice, once for a client that only connects and leaves, once for a
      client that runs a fixed number of rounds; the difference in calls,
      divided by the messages echoed, is what echoing costs, without
      start-up and shutdown. Judged: coop on io_uring <= 0.5.

The servers: coop-echo (COOP_POLLER=io_uring or epoll), and coop-echo-load's
libuv and raw epoll servers (the ones bench/echo_bench.cpp runs). CPUs: the
server gets the first CPU this process may use, the client the second
(--server-cpu / --client-cpu change that). Python 3 standard library, plus
taskset (util-linux) and, for --syscalls, strace.
"""
import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

SERVERS = {
    "coop-io_uring": (["{bin}/coop-echo", "--port", "0"], {"COOP_POLLER": "io_uring"}),
    "coop-epoll": (["{bin}/coop-echo", "--port", "0"], {"COOP_POLLER": "epoll"}),
    "libuv": (["{bin}/coop-echo-load", "serve", "libuv", "--port", "0"], {}),
    "raw-epoll": (["{bin}/coop-echo-load", "serve", "epoll", "--port", "0"], {}),
}


class Server:
    """One server process (optionally under strace), pinned to a CPU."""

    def __init__(self, name, args, cpu, strace_out=None):
        argv, env_add = SERVERS[name]
        argv = [a.format(bin=args.bin) for a in argv]
        if strace_out:
            argv = ["strace", "-f", "-c", "-o", strace_out] + argv
        argv = ["taskset", "-c", str(cpu)] + argv
        env = dict(os.environ)
        env.update(env_add)
        self.traced = bool(strace_out)
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        line = self.p.stdout.readline()
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            self.p.kill()
            err = self.p.stderr.read()
            raise RuntimeError(f"{name}: did not start: {line!r} {err.strip()}")
        self.port = int(m.group(1))

    def stop(self):
        # Under strace, the traced program must exit by itself for the
        # summary to be written: signal it, not strace.
        pids = [self.p.pid]
        if self.traced:
            pids = child_pids(self.p.pid) or pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def child_pids(pid):
    """The children of pid (taskset execs strace, which forks the server)."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def cpu_seconds(pid):
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_client(args, port, conns, cpu, seconds=None, rounds=None):
    argv = ["taskset", "-c", str(cpu), f"{args.bin}/coop-echo-load", "client", "--port", str(port),
            "--conns", str(conns)]
    if rounds is not None:
        # No untimed warm-up rounds: every message echoed is one counted.
        argv += ["--rounds", str(rounds), "--warmup", "0"]
    else:
        argv += ["--seconds", str(seconds)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"client failed: {r.stderr.strip()}")
    fields = r.stdout.split()
    return dict(zip(fields[0::2], (float(x) for x in fields[1::2])))


def pick_cpus(args):
    cpus = sorted(os.sched_getaffinity(0))
    s = args.server_cpu if args.server_cpu is not None else cpus[0]
    c = args.client_cpu if args.client_cpu is not None else (cpus[1] if len(cpus) > 1 else cpus[0])
    return s, c


def verdict(label, value, target):
    if value is None:
        return f"{label:48s} {'-':>7s} {target:>8s}  not measured"
    limit = float(target.strip("<=>"))
    ok = value >= limit if target.startswith(">") else value <= limit
    return f"{label:48s} {value:7.2f} {target:>8s}  {'met' if ok else 'MISSED'}"


def throughput(args):
    scpu, ccpu = pick_cpus(args)
    servers = args.servers.split(",")
    conns = [int(c) for c in args.conns.split(",")]
    print(f"echo ping-pong, external client: server on CPU {scpu}, client on CPU {ccpu}, "
          f"{args.reps} repetitions of {args.seconds:g} s, interleaved at random")
    rates, cpu = {}, {}
    for rep in range(args.reps):
        pairs = [(s, c) for s in servers for c in conns]
        random.shuffle(pairs)
        for name, c in pairs:
            srv = Server(name, args, scpu)
            try:
                cpu0 = cpu_seconds(srv.p.pid)
                res = run_client(args, srv.port, c, ccpu, seconds=args.seconds)
                cpu1 = cpu_seconds(srv.p.pid)
            finally:
                srv.stop()
            rates.setdefault((name, c), []).append(res["msgs_per_sec"])
            cpu.setdefault((name, c), []).append((cpu1 - cpu0) / max(res["messages"], 1))
        print(f"  repetition {rep + 1}/{args.reps} done", file=sys.stderr)
    print()
    print(f"{'server':16s} {'conns':>5s} {'median msg/s':>13s} {'min':>10s} {'max':>10s}  {'us/msg':>7s}"
          f"  {'server CPU us/msg':>17s}")
    med = {}
    for name in servers:
        for c in conns:
            v = rates.get((name, c))
            if not v:
                continue
            m = statistics.median(v)
            med[(name, c)] = m
            sc = statistics.median(cpu[(name, c)]) * 1e6
            print(f"{name:16s} {c:5d} {m:13.0f} {min(v):10.0f} {max(v):10.0f}  {1e6 / m:7.2f}  {sc:17.2f}")
    print()
    print(f"{'judged ratio (throughput, median of the run)':48s} {'value':>7s} {'target':>8s}  verdict")
    for c in conns:
        u = med.get(("coop-io_uring", c))
        for other, label in (("libuv", "libuv"), ("coop-epoll", "coop on epoll")):
            o = med.get((other, c))
            target = ">=1.25" if c >= 16 else (">=0.95" if other == "coop-epoll" else "(info)")
            v = u / o if u and o else None
            if target == "(info)":
                if v is not None:
                    print(f"{f'coop io_uring / {label} ({c} conn)':48s} {v:7.2f} {'(info)':>8s}")
                continue
            print(verdict(f"coop io_uring / {label} ({c} conn)", v, target))
        e, l = med.get(("coop-epoll", c)), med.get(("libuv", c))
        if e and l:
            print(f"{f'coop epoll / libuv ({c} conn)':48s} {e / l:7.2f} {'(info)':>8s}")
    print("(noisy shared machine: compare ratios within one run, not absolute figures; the server's")
    print(" CPU time per message, user + system from /proc, depends less on the rest of the machine)")


def strace_total(path):
    """Total calls and the per-call breakdown from an strace -c summary."""
    calls, total = {}, None
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[-1] == "total":
                total = int(parts[3])
            elif len(parts) >= 5 and re.match(r"^[\d.]+$", parts[0]):
                # % time, seconds, usecs/call, calls, [errors,] syscall
                calls[parts[-1]] = int(parts[3])
    return total, calls


def syscalls(args):
    scpu, ccpu = pick_cpus(args)
    servers = args.servers.split(",")
    conns = [int(c) for c in args.conns.split(",")]
    print(f"system calls per echoed message (strace -f -c on the server; {args.rounds} rounds "
          f"minus a connect-only run; server on CPU {scpu}, client on CPU {ccpu})")
    print(f"{'server':16s} {'conns':>5s} {'messages':>9s} {'calls':>9s} {'per msg':>8s}  most frequent")
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in servers:
            for c in conns:
                counts = []
                for rounds in (0, args.rounds):
                    out = os.path.join(tmp, f"{name}-{c}-{rounds}.txt")
                    srv = Server(name, args, scpu, strace_out=out)
                    try:
                        run_client(args, srv.port, c, ccpu, rounds=rounds)
                    finally:
                        srv.stop()
                    counts.append(strace_total(out))
                (base, base_calls), (full, full_calls) = counts
                msgs = args.rounds * c
                per = (full - base) / msgs
                result[(name, c)] = per
                diff = {k: full_calls.get(k, 0) - base_calls.get(k, 0) for k in full_calls}
                top = sorted(diff.items(), key=lambda kv: -kv[1])[:4]
                tops = ", ".join(f"{k} {v / msgs:.2f}" for k, v in top if v > 0)
                print(f"{name:16s} {c:5d} {msgs:9d} {full - base:9d} {per:8.3f}  {tops}")
    print()
    for c in conns:
        if ("coop-io_uring", c) in result:
            print(verdict(f"system calls per message, coop io_uring ({c} conn)", result[("coop-io_uring", c)],
                          "<=0.5"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="build/x86_64/bin")
    ap.add_argument("--conns", default="1,16,64")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--servers", default=None)
    ap.add_argument("--server-cpu", type=int, default=None)
    ap.add_argument("--client-cpu", type=int, default=None)
    ap.add_argument("--syscalls", action="store_true")
    ap.add_argument("--rounds", type=int, default=4000)
    args = ap.parse_args()
    for tool in ("taskset",) + (("strace",) if args.syscalls else ()):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            print(f"echo_external.py: {tool} is not installed", file=sys.stderr)
            return 1
    if args.servers is None:
        args.servers = "coop-io_uring,coop-epoll,libuv" + ("" if args.syscalls else ",raw-epoll")
    try:
        if args.syscalls:
            syscalls(args)
        else:
            throughput(args)
    except RuntimeError as e:
        print(f"echo_external.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
