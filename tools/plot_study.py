#!/usr/bin/env python3
"""Compare every CPU model in results/ (coop-study/2 files), figure by figure.

Reads results/*.json (one per CPU model, written by `make study` through
tools/study_results.py) and writes
  results/study-table.md          the CPU models, then every figure in ns and in
                                  multiples of that CPU's direct call (median over
                                  each model's CPUs), then every CPU of every
                                  model with its deviation from its model's
                                  median, then the CPU-bound overhead curves
  results/study-models-ns.png     every figure, one bar per CPU model, ns
  results/study-models-x-call.png the same in multiples of the direct call
  results/study-per-cpu.png       every figure, one bar per CPU of every model
  results/study-granularity.png   CPU-bound overhead vs yield granularity G
A figure a file does not have (null: not measured by the schema it was
taken with) is shown as a dash and left out of the plots, never estimated.
Plots are drawn by gnuplot (Debian gnuplot-nox). Python 3 standard library only.
"""
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

SCHEMA = "coop-study/2"
PNGS = ("study-models-ns.png", "study-models-x-call.png", "study-per-cpu.png", "study-granularity.png")


def load(directory):
    files = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            print(f"plot_study: skipping {path}: {e}", file=sys.stderr)
            continue
        if d.get("schema") != SCHEMA:
            print(f"plot_study: skipping {path}: schema {d.get('schema')!r}, not {SCHEMA} "
                  f"(convert with tools/study_results.py import)", file=sys.stderr)
            continue
        d["_file"] = os.path.basename(path)
        d["_label"] = label(d)
        files.append(d)
    return files


def ident(d):
    """How the CPU model is told apart from others, in words."""
    c = d.get("cpu", {})
    if c.get("family") is not None:
        return f"{c.get('vendor', '?')} family {c['family']} model {c.get('model', '?')}"
    if c.get("part") is not None:
        return f"{c.get('vendor', '?')} implementer {c.get('implementer', '?')} part {c['part']}"
    return c.get("key", "?")


def label(d):
    c = d.get("cpu", {})
    if c.get("family") is not None:
        short = f"f{c['family']} m{c.get('model', '?')}"
    elif c.get("part") is not None:
        short = f"{c.get('implementer', '?')}/{c['part']}"
    else:
        short = c.get("key", "?")
    vm = " vm" if d.get("virtualization", {}).get("virtualized") else ""
    return f"{c.get('brand') or '?'} {short}{vm}"


def figures(files):
    """Every figure key of every file, in the order the files list them."""
    out, seen = [], set()
    for d in files:
        for f in d.get("figures", []):
            if f["key"] not in seen:
                seen.add(f["key"])
                out.append(f)
    return out


def value(cpu, key):
    r = (cpu.get("results") or {}).get(key)
    return r.get("ns") if r else None


def model_value(d, key):
    vals = [v for v in (value(c, key) for c in d.get("cpus", [])) if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=2):
    return "—" if v is None else f"{v:.{digits}f}"


def fmt_x(v, direct):
    if v is None or not direct:
        return "—"
    x = v / direct
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def write_table(files, figs, path):
    L = ["# coop per-CPU study", "",
         "Written by `tools/plot_study.py` from `results/*.json` (`make study`, `make study-plot`).", "",
         "## CPU models", "",
         "| file | CPU | identification | stepping / microcode | virtualized | figures from | earlier sources |",
         "|---|---|---|---|---|---|---|"]
    for d in files:
        c = d.get("cpu", {})
        v = d.get("virtualization", {})
        virt = {True: "yes", False: "no"}.get(v.get("virtualized"), "unknown")
        if v.get("hypervisor"):
            virt += f" ({v['hypervisor']})"
        step = c.get("stepping") if c.get("family") is not None else (
            f"variant {c.get('variant', '?')} revision {c.get('revision', '?')}")
        step_mc = f"{'—' if step is None else step} / {c.get('microcode') or '—'}"
        src = f"{d.get('source', '?')}; {d.get('date', '?')}; {d.get('kernel', '?').split(' #')[0]}; " \
              f"compiler {d.get('compiler', '?')}"
        if d.get("note"):
            src += f"; {d['note']}"
        if d.get("bench_summary"):
            src += f"; `make bench` summary: `results/{d['bench_summary']}`"
        hist = "; ".join(f"{h.get('source', '?')} ({h.get('date', '?')})"
                         + (f", summary `results/{h['bench_summary']}`" if h.get("bench_summary") else "")
                         for h in d.get("history", [])) or "—"
        L.append(f"| `{d['_file']}` | {c.get('brand') or '?'} | {ident(d)} | {step_mc} | {virt} | {src} | {hist} |")
    L += ["", "## Figure by figure", "",
          "Median over each model's CPUs: ns per operation, and × = multiples of that CPU model's "
          "own direct call. A round trip is 2 switches. — = not measured (the file's schema did "
          "not have the figure).", ""]
    head = "| figure | switches |" + "".join(f" {d['_label']} ns | × call |" for d in files)
    L += [head, "|---|---:|" + "---:|---:|" * len(files)]
    directs = [model_value(d, "direct_call") for d in files]
    for f in figs:
        sw = "—" if f.get("switches") is None else str(f["switches"])
        row = f"| {f['label']} | {sw} |"
        for d, direct in zip(files, directs):
            v = model_value(d, f["key"])
            row += f" {fmt(v)} | {fmt_x(v, direct)} |"
        L.append(row)
    L += ["", "Scheduler hops and spawn + join have no fixed switch count: a hop is one switch "
          "when a task hands over directly, two through the run loop.", "",
          "## Every CPU", "",
          "Deviation: this CPU's coop_jump round trip against the median over its model's CPUs; "
          "a slower core type (hybrid parts) or a busy SMT sibling stands out here.", "",
          "| CPU model | cpu | core | SMT siblings | type/capacity | direct call ns | coop_jump round trip ns "
          "| coroutine resume+yield ns | hop, 16 tasks ns | round trip vs model median |",
          "|---|---|---|---|---|---:|---:|---:|---:|---:|"]
    for d in files:
        med = model_value(d, "switch_round_trip")
        for c in d.get("cpus", []):
            rt = value(c, "switch_round_trip")
            dev = f"{(rt / med - 1) * 100:+.0f}%" if rt and med else "—"
            L.append(f"| {d['_label']} | {c['cpu']} | {c.get('core_id', '')} | {c.get('smt_siblings', '')} | "
                     f"{c.get('core_type') or '-'} | {fmt(value(c, 'direct_call'))} | {fmt(rt)} | "
                     f"{fmt(value(c, 'coroutine_round_trip'))} | {fmt(value(c, 'scheduler_hop_16'))} | {dev} |")
    L += ["", "## CPU-bound work split across coroutines", ""]
    for d in files:
        g = d.get("granularity") or {}
        pts = g.get("points", [])
        if pts:
            L.append(f"- {d['_label']} (cpu {g.get('cpu')}, {g.get('units')} units over {g.get('coroutines')} "
                     f"coroutines, overhead against direct calls): " +
                     ", ".join(f"G={p['G']}: {p['overhead_pct']:+.0f}%" for p in pts))
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def terminal():
    """The best PNG terminal this gnuplot has."""
    try:
        out = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True, timeout=20)
        text = out.stdout + out.stderr
    except (OSError, subprocess.SubprocessError):
        return None
    if "pngcairo" in text:
        return "pngcairo noenhanced font 'DejaVu Sans,10'"
    if " png" in text:
        return "png noenhanced"
    return None


def esc(s):
    return s.replace('"', "'").replace("'", "")


def bars(term, datafile, series, rows, width, title, ylabel, out):
    """A clustered histogram: one cluster per row of `rows` (figure, values),
    one bar per series. Every figure keeps its slot, measured or not; the
    log-scale y range spans the values present, so no bar starts at its top."""
    cols = " , ".join(f"'{datafile}' using {i + 2}:xtic(1) title \"{esc(name)}\""
                      for i, name in enumerate(series))
    present = [v for _, vals in rows for v in vals if v is not None and v > 0]
    lo, hi = (min(present) / 2, max(present) * 2) if present else (0.1, 10)
    with open(datafile, "w") as f:
        for key, vals in rows:
            f.write(f'"{key}" ' + " ".join("?" if v is None else f"{v:.4f}" for v in vals) + "\n")
    return f"""
reset
set terminal {term} size {width},640
set output '{out}'
set title "{title}"
set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [{lo:.4g}:{hi:.4g}]
set xrange [-0.5:{len(rows) - 0.5}]
set ylabel '{ylabel}'
set grid ytics mytics
set key outside top center horizontal
set xtics rotate by -35 left noenhanced
set bmargin 11
plot {cols}
unset output
"""


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "results"
    files = load(directory)
    if not files:
        print(f"plot_study: no {SCHEMA} results in {directory}/ (run `make study`)")
        return 0
    figs = figures(files)
    write_table(files, figs, os.path.join(directory, "study-table.md"))
    print(f"plot_study: {len(files)} CPU model(s); table -> {directory}/study-table.md")
    if not shutil.which("gnuplot"):
        print("plot_study: gnuplot not found (apt-get install gnuplot-nox); PNGs not drawn")
        return 0
    term = terminal()
    if not term:
        print("plot_study: this gnuplot has no PNG terminal; PNGs not drawn")
        return 0

    tmp = tempfile.mkdtemp(prefix="coop-study-")
    try:
        directs = [model_value(d, "direct_call") for d in files]
        ns_rows, x_rows = [], []
        for f in figs:
            vals = [model_value(d, f["key"]) for d in files]
            ns_rows.append((f["key"], vals))
            x_rows.append((f["key"], [v / dc if v is not None and dc else None for v, dc in zip(vals, directs)]))
        cpu_series = [(d, c) for d in files for c in d.get("cpus", [])]
        cpu_rows = [(f["key"], [value(c, f["key"]) for _, c in cpu_series]) for f in figs]
        cpu_names = []
        for d, c in cpu_series:
            name = f"{d['_label']} cpu{c['cpu']}"
            if len({x.get("core_type", "") for x in d.get("cpus", [])}) > 1:
                name += f" [{c.get('core_type', '')}]"   # hybrid part: say which kind of core
            cpu_names.append(name)

        def width(nseries):
            return max(1000, 160 + len(figs) * (20 + 14 * nseries))

        models = [d["_label"] for d in files]
        script = bars(term, os.path.join(tmp, "models_ns.dat"), models, ns_rows, width(len(models)),
                      "coop per CPU model: ns per operation (median over the model's CPUs)",
                      "ns per operation (log scale)", os.path.join(directory, PNGS[0]))
        script += bars(term, os.path.join(tmp, "models_x.dat"), models, x_rows, width(len(models)),
                       "coop per CPU model: multiples of that CPU's own direct call",
                       "x direct call (log scale)", os.path.join(directory, PNGS[1]))
        script += bars(term, os.path.join(tmp, "per_cpu.dat"), cpu_names, cpu_rows, width(len(cpu_names)),
                       "coop per CPU: ns per operation, every CPU of every model",
                       "ns per operation (log scale)", os.path.join(directory, PNGS[2]))
        gran = []
        for i, d in enumerate(files):
            pts = (d.get("granularity") or {}).get("points", [])
            if not pts:
                continue
            p = os.path.join(tmp, f"gran{i}.dat")
            with open(p, "w") as f:
                for pt in pts:
                    f.write(f"{pt['G']} {pt['overhead_pct']:.3f}\n")
            gran.append((p, d["_label"]))
        if gran:
            lines = " , ".join(f"'{p}' using 1:2 with linespoints lw 2 title \"{esc(lab)}\"" for p, lab in gran)
            script += f"""
reset
set terminal {term} size 900,560
set output '{os.path.join(directory, PNGS[3])}'
set title "CPU-bound work split across coroutines: overhead vs yield granularity"
set logscale x 2
set xlabel 'G = work units between yields (1 unit = ~20 ALU instructions)'
set ylabel 'time vs direct calls - 1  [%]'
set grid
set key top right noenhanced
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
        for name in PNGS:
            p = os.path.join(directory, name)
            if os.path.exists(p):
                print(f"plot_study: wrote {p}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
