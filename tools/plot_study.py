#!/usr/bin/env python3
"""Render every coop-study result in a directory (default results/).

Reads results/*.json written by build/<arch>/bin/coop-study and produces
  results/study-per-cpu.png      ns per operation for every CPU id of every file
  results/study-per-model.png    the same, one group per machine + CPU model
                                 (median over that model's CPUs)
  results/study-granularity.png  CPU-bound overhead vs yield granularity G
  results/study-table.md         the per-CPU table, with each CPU's deviation
                                 from its model's median (hybrid parts and SMT
                                 siblings show up here)
Plots are drawn by gnuplot (Debian gnuplot-nox, pngcairo or png terminal).
Python 3 standard library only.
"""
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

METRICS = [
    ("direct_call_ns", "direct call"),
    ("switch_round_trip_ns", "coop_jump round trip"),
    ("switch_fp_round_trip_ns", "coop_jump_fp round trip"),
    ("coroutine_round_trip_ns", "coroutine resume+yield"),
]


def load(directory):
    files = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            print(f"plot_study: skipping {path}: {e}", file=sys.stderr)
            continue
        if d.get("schema") != "coop-study/1":
            continue
        d["_label"] = f"{d.get('machine', '?')}: {d.get('cpu_model', '?')}"
        files.append(d)
    return files


def terminal():
    """The best PNG terminal this gnuplot has."""
    try:
        out = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True,
                             timeout=20)
        text = out.stdout + out.stderr
    except (OSError, subprocess.SubprocessError):
        return None
    if "pngcairo" in text:
        return "pngcairo noenhanced font 'DejaVu Sans,10'"
    if " png" in text:
        return "png noenhanced"
    return None


def esc(s):
    return s.replace('"', "'")


def write_table(files, path):
    lines = ["| machine: CPU model | cpu | core | SMT siblings | type/capacity | direct call ns | "
             "coop_jump round trip ns | coop_jump_fp round trip ns | coroutine resume+yield ns | "
             "round trip vs model median |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for d in files:
        cpus = d.get("cpus", [])
        med = statistics.median(c["switch_round_trip_ns"] for c in cpus) if cpus else 0
        for c in cpus:
            dev = (c["switch_round_trip_ns"] / med - 1) * 100 if med else 0
            lines.append(
                f"| {d['_label']} | {c['cpu']} | {c.get('core_id', '')} | {c.get('smt_siblings', '')} | "
                f"{c.get('core_type', '') or '-'} | {c['direct_call_ns']:.2f} | "
                f"{c['switch_round_trip_ns']:.2f} | {c['switch_fp_round_trip_ns']:.2f} | "
                f"{c['coroutine_round_trip_ns']:.2f} | {dev:+.0f}% |")
    lines.append("")
    lines.append("Round trip = 2 switches. Medians of each CPU's samples; deviation is from the "
                 "median over CPUs of the same file, so a slower core type or a loaded SMT "
                 "sibling stands out.")
    for d in files:
        g = d.get("granularity", {})
        pts = g.get("points", [])
        if pts:
            lines.append("")
            lines.append(f"CPU-bound overhead, {d['_label']} (cpu {g.get('cpu')}, {g.get('units')} "
                         f"units over {g.get('coroutines')} coroutines): " +
                         ", ".join(f"G={p['G']}: {p['overhead_pct']:+.0f}%" for p in pts))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "results"
    files = load(directory)
    if not files:
        print(f"plot_study: no coop-study results in {directory}/ (run `make study`)")
        return 0
    write_table(files, os.path.join(directory, "study-table.md"))
    print(f"plot_study: {len(files)} result file(s); table -> {directory}/study-table.md")
    if not shutil.which("gnuplot"):
        print("plot_study: gnuplot not found (apt-get install gnuplot-nox); PNGs not drawn")
        return 0
    term = terminal()
    if not term:
        print("plot_study: this gnuplot has no PNG terminal; PNGs not drawn")
        return 0

    tmp = tempfile.mkdtemp(prefix="coop-study-")
    try:
        # per CPU id: one row per (file, cpu)
        per_cpu = os.path.join(tmp, "per_cpu.dat")
        with open(per_cpu, "w") as f:
            for d in files:
                types = {c.get("core_type", "") for c in d.get("cpus", [])}
                for c in d.get("cpus", []):
                    lab = f"{d.get('machine', '?')} {d.get('cpu_model', '?')[:24]} cpu{c['cpu']}"
                    if len(types) > 1:      # hybrid part: say which kind of core
                        lab += f" [{c.get('core_type', '')}]"
                    f.write('"' + esc(lab) + '" ' + " ".join(f"{c[k]:.4f}" for k, _ in METRICS) + "\n")
        per_model = os.path.join(tmp, "per_model.dat")
        with open(per_model, "w") as f:
            for d in files:
                cpus = d.get("cpus", [])
                if not cpus:
                    continue
                lab = f"{d.get('machine', '?')} {d.get('cpu_model', '?')[:30]} ({len(cpus)} cpus)"
                f.write('"' + esc(lab) + '" ' + " ".join(
                    f"{statistics.median(c[k] for c in cpus):.4f}" for k, _ in METRICS) + "\n")
        gran = []
        for i, d in enumerate(files):
            pts = d.get("granularity", {}).get("points", [])
            if not pts:
                continue
            p = os.path.join(tmp, f"gran{i}.dat")
            with open(p, "w") as f:
                for pt in pts:
                    f.write(f"{pt['G']} {pt['overhead_pct']:.3f}\n")
            gran.append((p, d["_label"]))

        ncpu_rows = sum(len(d.get("cpus", [])) for d in files)
        width = max(900, 160 + 90 * ncpu_rows)

        def bars(datafile, title, out):
            cols = " , ".join(
                f"'{datafile}' using {i + 2}:xtic(1) title '{esc(name)}'"
                for i, (_, name) in enumerate(METRICS))
            return f"""
set terminal {term} size {width},560
set output '{out}'
set title "{title}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel 'ns per operation (median; round trip = 2 switches)'
set yrange [0:*]
set grid ytics
set key top left
set xtics rotate by -20 noenhanced
plot {cols}
unset output
"""
        script = bars(per_cpu, "coop switch costs per CPU id (every results file)",
                      os.path.join(directory, "study-per-cpu.png"))
        script += bars(per_model, "coop switch costs per machine + CPU model (median over its CPUs)",
                       os.path.join(directory, "study-per-model.png"))
        if gran:
            lines = " , ".join(f"'{p}' using 1:2 with linespoints lw 2 title \"{esc(lab)}\""
                               for p, lab in gran)
            script += f"""
reset
set terminal {term} size 900,560
set output '{os.path.join(directory, 'study-granularity.png')}'
set title "CPU-bound work split across coroutines: overhead vs yield granularity"
set logscale x 2
set xlabel 'G = work units between yields (1 unit = ~20 ALU instructions)'
set ylabel 'time vs direct calls - 1  [%]'
set grid
set key top right noenhanced
set yrange [*:*]
plot {lines}, 0 with lines lc rgb 'gray' notitle
unset output
"""
        sp = os.path.join(tmp, "study.gp")
        with open(sp, "w") as f:
            f.write(script)
        r = subprocess.run(["gnuplot", sp], capture_output=True, text=True)
        if r.returncode != 0:
            print("plot_study: gnuplot failed:\n" + r.stderr)
            return 1
        for name in ("study-per-cpu.png", "study-per-model.png", "study-granularity.png"):
            p = os.path.join(directory, name)
            if os.path.exists(p):
                print(f"plot_study: wrote {p}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
