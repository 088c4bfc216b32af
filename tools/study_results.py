#!/usr/bin/env python3
"""The per-CPU study's results/ directory: one JSON per CPU model.

  study_results.py merge RUN_DIR RESULTS_DIR
      What `make study` does after coop-study: every file of a fresh run
      (RUN_DIR, schema coop-study/2) goes to RESULTS_DIR under the same name.
      A fresh run replaces the figures of a file that is already there
      (results hold one set of figures per CPU model: the latest full run);
      the replaced file's provenance (source, date, machine, kernel,
      microcode, compiler, notes, ...) is appended to the new file's
      "history", so where earlier figures came from stays on record (the
      figures themselves stay in git history).

  study_results.py import OLD_JSON RESULTS_DIR --vendor V --family F --model M
                  [--stepping S] [--microcode X] [--note TEXT]
                  [--bench-summary FILE] [--figures-from COOP_STUDY]
      Converts a file of the first schema (coop-study/1), which named the CPU
      by its brand string only, into coop-study/2 under the new name
      <vendor>-family<F>-model<M>.json. The identification it lacked is
      given on the command line (what is not given stays null). Every figure
      the first schema did not measure is recorded as null, never
      estimated. --bench-summary copies that machine's `make bench` summary
      beside it as <name>-bench-summary.txt and names it in the file. The
      list of figures comes from `coop-study --list-figures` (default
      build/<arch>/bin/coop-study). Refuses to overwrite an existing file.

Python 3 standard library only.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys

SCHEMA = "coop-study/2"

# What a provenance entry in "history" keeps of a replaced file.
PROVENANCE_KEYS = ("schema", "source", "note", "date", "machine", "kernel", "compiler", "flags",
                   "samples", "online_cpus", "virtualization", "bench_summary", "imported_from")
CPU_PROVENANCE_KEYS = ("brand", "stepping", "microcode", "variant", "revision", "midr_el1")

# CPUID vendor strings of the vendors coop-study names (coop_study.cpp x86_vendor).
VENDOR_IDS = {"amd": "AuthenticAMD", "intel": "GenuineIntel", "hygon": "HygonGenuine",
              "centaur": "CentaurHauls"}

# The figures of coop-study/1 and their keys in coop-study/2 (the same names).
V1_FIGURES = ("direct_call", "switch_round_trip", "switch_fp_round_trip", "coroutine_round_trip")


def load(path):
    with open(path) as f:
        return json.load(f)


def write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def provenance(d):
    p = {k: d[k] for k in PROVENANCE_KEYS if k in d}
    cpu = d.get("cpu", {})
    p["cpu"] = {k: cpu[k] for k in CPU_PROVENANCE_KEYS if k in cpu}
    return p


def merge(run_dir, results_dir):
    names = sorted(n for n in os.listdir(run_dir) if n.endswith(".json"))
    if not names:
        print(f"study_results: no results in {run_dir}", file=sys.stderr)
        return 1
    os.makedirs(results_dir, exist_ok=True)
    for name in names:
        new = load(os.path.join(run_dir, name))
        if new.get("schema") != SCHEMA:
            print(f"study_results: {name}: schema {new.get('schema')!r}, expected {SCHEMA}", file=sys.stderr)
            return 1
        target = os.path.join(results_dir, name)
        history = []
        if os.path.exists(target):
            old = load(target)
            history = list(old.get("history", [])) + [provenance(old)]
            print(f"study_results: {target}: figures replaced by this run; "
                  f"the replaced file's provenance ({old.get('source', '?')}, {old.get('date', '?')}) "
                  f"is kept in its history")
        else:
            print(f"study_results: {target}: new CPU model")
        new["history"] = history
        write(target, new)
    return 0


def figure_list(binary):
    if binary is None:
        arch = platform.machine().replace("arm64", "aarch64").replace("amd64", "x86_64")
        binary = os.path.join("build", arch, "bin", "coop-study")
    try:
        out = subprocess.run([binary, "--list-figures"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"study_results: cannot run {binary} --list-figures ({e}); build it with `make study-build`")
    return json.loads(out.stdout)


def import_v1(args):
    old = load(args.old)
    if old.get("schema") != "coop-study/1":
        sys.exit(f"study_results: {args.old}: schema {old.get('schema')!r}, expected coop-study/1")
    key = f"{args.vendor}-family{args.family}-model{args.model}"
    target = os.path.join(args.results, key + ".json")
    if os.path.exists(target):
        sys.exit(f"study_results: {target} exists; not overwritten")
    figures = figure_list(args.figures_from)
    keys = [f["key"] for f in figures]
    missing = [k for k in V1_FIGURES if k not in keys]
    if missing:
        sys.exit(f"study_results: coop-study no longer lists {missing}")

    cpus = []
    for c in old.get("cpus", []):
        results = {}
        for k in keys:
            if k in V1_FIGURES and c.get(f"{k}_ns") is not None:
                results[k] = {"ns": c[f"{k}_ns"], "cycles": c.get(f"{k}_cycles"),
                              "min_ns": c.get(f"{k}_min_ns"), "max_ns": c.get(f"{k}_max_ns")}
            else:
                results[k] = None        # not measured by coop-study/1
        cpus.append({"cpu": c["cpu"], "core_id": c.get("core_id", ""),
                     "smt_siblings": c.get("smt_siblings", ""), "core_type": c.get("core_type", ""),
                     "microcode": old.get("microcode") or args.microcode,
                     "cpuinfo_mhz": c.get("cpuinfo_mhz"), "freq_max_khz": c.get("freq_max_khz"),
                     "freq_cur_khz": c.get("freq_cur_khz"), "results": results})

    virt = old.get("virtualized")
    new = {
        "schema": SCHEMA,
        "source": "imported from a coop-study/1 file (figures that schema did not measure are null)",
        "imported_from": {"file": os.path.basename(args.old), "schema": "coop-study/1",
                          "cpu_model": old.get("cpu_model")},
        "note": args.note,
        "cpu": {"key": key, "arch": old.get("arch"), "brand": old.get("cpu_model"),
                "vendor": args.vendor, "vendor_id": VENDOR_IDS.get(args.vendor),
                "family": args.family, "model": args.model, "stepping": args.stepping,
                "microcode": old.get("microcode") or args.microcode},
        "virtualization": {"virtualized": virt, "hypervisor": None,
                           "evidence": "coop-study/1 'virtualized' (/proc/cpuinfo hypervisor flag)"
                           if virt is not None else None},
        "machine": old.get("machine"),
        "kernel": old.get("kernel"),
        "compiler": old.get("compiler"),
        "flags": old.get("flags"),
        "date": old.get("date"),
        "online_cpus": old.get("online_cpus"),
        "samples": old.get("samples"),
        "tick_hz": old.get("tick_hz"),
        "ticks_to_cycles": old.get("ticks_to_cycles"),
        "cycles_source": "rdtsc (TSC reference cycles at the nominal rate)"
        if old.get("arch") == "x86_64" else None,
        "units": "ns per operation (median of samples); a round trip is 2 switches",
        "figures": figures,
        "cpus": cpus,
        "granularity": old.get("granularity"),
        "history": [],
    }
    os.makedirs(args.results, exist_ok=True)
    if args.bench_summary:
        summary_name = key + "-bench-summary.txt"
        shutil.copyfile(args.bench_summary, os.path.join(args.results, summary_name))
        new["bench_summary"] = summary_name
    write(target, new)
    print(f"study_results: {args.old} -> {target}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("merge", help="merge a fresh coop-study run into results/")
    m.add_argument("run_dir")
    m.add_argument("results")
    i = sub.add_parser("import", help="convert a coop-study/1 file into results/")
    i.add_argument("old")
    i.add_argument("results")
    i.add_argument("--vendor", required=True)
    i.add_argument("--family", type=int, required=True)
    i.add_argument("--model", type=int, required=True)
    i.add_argument("--stepping", type=int)
    i.add_argument("--microcode")
    i.add_argument("--note")
    i.add_argument("--bench-summary")
    i.add_argument("--figures-from")
    args = ap.parse_args()
    if args.cmd == "merge":
        return merge(args.run_dir, args.results)
    return import_v1(args)


if __name__ == "__main__":
    sys.exit(main())
