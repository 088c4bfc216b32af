#!/usr/bin/env python3
"""tests/check/hardening.py — does each build of the context switch claim
exactly the control-flow protections it implements, and does its code back
the claim?

For every build variant of the assembly, arch/<arch>/switch.S (the C ABI)
and arch/<arch>/fiber.S (the coroutine layer's trampoline) (compiler x
flags), this
  1. reads the GNU property note (readelf -n) and compares the claimed
     features with what the variant must claim: x86-64 IBT exactly when the
     build asks for IBT (-fcf-protection=branch|full), SHSTK never (coop does
     not switch shadow stacks); AArch64 BTI and PAC exactly as
     -mbranch-protection asks, nothing without it;
  2. links the object into a throw-away shared object (so every address is
     final), disassembles it and checks the code:
       - IBT: every function symbol and every address the code computes as a
         continuation (lea ...(%rip)) starts with endbr64, and every indirect
         jmp carries notrack (its targets include plain return sites);
       - BTI: every function symbol starts with `bti c` (or `bti jc`), every
         computed continuation (adr) and the entry trampoline with `bti j`
         (or `bti jc`), and there is no `br` at all (return sites are no
         landing pads; BTI builds leave with `ret`);
       - PAC: every store of x30 is preceded by paciasp in its function,
         every reload of x30 is followed by autiasp before the function
         leaves, and the first continuation built by coop_make is signed
         (pacia1716).
Then it checks the objects of the real builds present under build/ the same
way, and reports (without judging) what the linked libraries claim.
Exit status 1 if any check fails.
"""
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "build", "check", "hardening")

X86 = "x86_64"
A64 = "aarch64"

TOOLS = {
    X86: {"objdump": "objdump", "link": ["gcc"]},
    A64: {"objdump": "aarch64-linux-gnu-objdump", "link": ["aarch64-linux-gnu-gcc"]},
}

# (arch, name, compiler command, flags, features the object must claim)
VARIANTS = [
    (X86, "gcc-default", ["gcc"], [], set()),
    (X86, "gcc-cf-full", ["gcc"], ["-fcf-protection=full"], {"IBT"}),
    (X86, "gcc-cf-branch", ["gcc"], ["-fcf-protection=branch"], {"IBT"}),
    (X86, "gcc-cf-return", ["gcc"], ["-fcf-protection=return"], set()),
    (X86, "clang-cf-full", ["clang"], ["-fcf-protection=full"], {"IBT"}),
    (A64, "gcc-none", ["aarch64-linux-gnu-gcc"], [], set()),
    (A64, "gcc-standard", ["aarch64-linux-gnu-gcc"], ["-mbranch-protection=standard"], {"BTI", "PAC"}),
    (A64, "gcc-bti", ["aarch64-linux-gnu-gcc"], ["-mbranch-protection=bti"], {"BTI"}),
    (A64, "gcc-pac-ret", ["aarch64-linux-gnu-gcc"], ["-mbranch-protection=pac-ret"], {"PAC"}),
    (A64, "clang-standard", ["clang", "--target=aarch64-linux-gnu"], ["-mbranch-protection=standard"], {"BTI", "PAC"}),
    (A64, "clang-none", ["clang", "--target=aarch64-linux-gnu"], [], set()),
]

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg)


def run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)


def claimed_features(path):
    """Features in the GNU property note, e.g. {'IBT'} or {'BTI', 'PAC'}."""
    r = run(["readelf", "-n", path])
    if r.returncode != 0:
        raise RuntimeError(r.stdout)
    feats = set()
    for m in re.finditer(r"(?:x86|AArch64) feature(?: \(used\))?: (.*)", r.stdout):
        for f in m.group(1).split(","):
            f = f.strip()
            if f and not f.startswith("<"):
                feats.add(f)
    return feats, r.stdout


def disassemble(arch, so):
    """{function name: [(address, mnemonic, operands), ...]} for .text."""
    r = run([TOOLS[arch]["objdump"], "-d", "--no-show-raw-insn", "-j", ".text", so])
    if r.returncode != 0:
        raise RuntimeError(r.stdout)
    funcs, cur = {}, None
    for line in r.stdout.splitlines():
        m = re.match(r"^([0-9a-f]+) <([^>]+)>:$", line)
        if m:
            cur = m.group(2)
            funcs[cur] = []
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+(\S+(?: \S+)?)\s*(.*)$", line)
        if m and cur:
            addr = int(m.group(1), 16)
            text = (m.group(2) + " " + m.group(3)).strip()
            # "notrack jmp *%rcx" / "bti c" / "ldp x29, x30, [sp, #144]"
            funcs[cur].append((addr, text))
    return funcs


def func_symbols(so):
    """{name: address} of the FUNC symbols defined in the object."""
    r = run(["readelf", "-sW", so])
    syms = {}
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 8 and f[3] == "FUNC" and f[6] != "UND" and not f[7].endswith("@plt"):
            syms[f[7].split("@")[0]] = int(f[1], 16)
    return syms


def insn_at(funcs, addr):
    for body in funcs.values():
        for a, text in body:
            if a == addr:
                return text
    return None


def check_code(arch, label, objs, claims):
    so = objs[0][:-2] + ".so"
    r = run(TOOLS[arch]["link"] + ["-shared", "-nostdlib", "-o", so] + objs)
    if r.returncode != 0:
        fail(f"{label}: cannot link {objs} into a shared object:\n{r.stdout}")
        return
    funcs = disassemble(arch, so)
    syms = func_symbols(so)
    all_insns = [(a, t, fn) for fn, body in funcs.items() for a, t in body]
    if not all_insns:
        fail(f"{label}: nothing disassembled")
        return
    # Continuations the code computes: lea X(%rip) on x86-64, adr on AArch64.
    computed = set()
    for a, t, fn in all_insns:
        m = re.match(r"lea\s+\S*\(%rip\),%\w+\s+# ([0-9a-f]+)", t) if arch == X86 else \
            re.match(r"adr\s+x\d+, ([0-9a-f]+)", t)
        if m:
            computed.add(int(m.group(1), 16))
    # Trampolines are where a fresh context first continues: jump targets.
    jump_targets = set(computed) | {a for n, a in syms.items() if n.endswith("trampoline")}
    call_targets = {a for n, a in syms.items() if not n.endswith("trampoline")}
    checked = 0

    if arch == X86 and "IBT" in claims:
        for addr in sorted(jump_targets | call_targets):
            t = insn_at(funcs, addr)
            checked += 1
            if t != "endbr64":
                fail(f"{label}: indirect-branch target {addr:#x} starts with {t!r}, not endbr64")
        for a, t, fn in all_insns:
            if re.match(r"(?:notrack )?jmp\s+\*", t) and not t.startswith("notrack"):
                fail(f"{label}: {fn}+{a:#x}: indirect jmp without notrack: {t}")
    if arch == A64 and "BTI" in claims:
        for addr in sorted(call_targets):
            t = insn_at(funcs, addr)
            checked += 1
            if t not in ("bti c", "bti jc"):
                fail(f"{label}: function at {addr:#x} starts with {t!r}, not bti c")
        for addr in sorted(jump_targets):
            t = insn_at(funcs, addr)
            checked += 1
            if t not in ("bti j", "bti jc"):
                fail(f"{label}: continuation at {addr:#x} starts with {t!r}, not bti j")
        for a, t, fn in all_insns:
            if re.match(r"br\s", t):
                fail(f"{label}: {fn}+{a:#x}: `{t}` in a BTI build (its target is a return site, no landing pad)")
    if arch == A64 and "PAC" in claims:
        for fn, body in funcs.items():
            signed = False
            pending_auth = False
            for a, t in body:
                if t in ("paciasp", "pacibsp"):
                    signed = True
                elif re.match(r"st[rp]\s.*\bx30\b", t) and not signed:
                    fail(f"{label}: {fn}+{a:#x}: x30 stored unsigned: {t}")
                elif re.match(r"ld[rp]\s.*\bx30\b", t):
                    pending_auth = True
                elif t in ("autiasp", "autibsp"):
                    pending_auth = False
                elif (t == "ret" or re.match(r"br\s+x30", t)) and pending_auth:
                    fail(f"{label}: {fn}+{a:#x}: leaves with a reloaded x30 that was not authenticated")
            checked += 1
        make = funcs.get("coop_make", [])
        if not any(t == "pacia1716" for _, t in make):
            fail(f"{label}: coop_make does not sign the first continuation (pacia1716)")
    if claims and checked == 0:
        fail(f"{label}: claims {sorted(claims)} but no landing pad was checked")
    return checked


ASM_FILES = ("switch", "fiber")


def check_variant(arch, name, cc, flags, want):
    label = f"{arch}/{name}"
    if not shutil.which(cc[0]) or not shutil.which(TOOLS[arch]["objdump"]):
        fail(f"{label}: {cc[0]} or {TOOLS[arch]['objdump']} not installed")
        return
    objs = []
    for base in ASM_FILES:
        obj = os.path.join(OUT, f"{arch}-{name}-{base}.o")
        src = os.path.join("arch", arch, f"{base}.S")
        r = run(cc + flags + ["-Iinclude", "-c", src, "-o", obj])
        if r.returncode != 0:
            fail(f"{label}: {src} does not assemble:\n{r.stdout}")
            return
        got, _ = claimed_features(obj)
        if "SHSTK" in got:
            fail(f"{label}: {base}.S claims SHSTK, which coop does not implement")
        if got != want:
            fail(f"{label}: {base}.S claims {sorted(got) or 'nothing'}, expected {sorted(want) or 'nothing'}")
            return
        objs.append(obj)
    before = len(failures)
    n = check_code(arch, label, objs, want)
    if len(failures) != before:
        return
    print(f"ok   {label:24} {' '.join(flags) or '(no flags)':32} claims {', '.join(sorted(want)) or 'nothing':10}"
          f" {n or 0} landing-pad/PAC checks")


FIBER_PROBE = """
#include <coop/coroutine.hpp>
void* coop_probe_resume(coop::coroutine& c, void* v) { return c.resume(v); }
void* coop_probe_yield(void* v) { return coop::this_coroutine::yield(v); }
"""

# The coroutine switch is inline asm in coop/detail/fiber_switch.hpp, so it is
# compiled into user code: check its continuations in a probe TU.
FIBER_VARIANTS = [
    (X86, "fiber-gcc-cf-full", ["g++"], ["-fcf-protection=full"]),
    (X86, "fiber-clang-cf-full", ["clang++"], ["-fcf-protection=full"]),
    (A64, "fiber-gcc-standard", ["aarch64-linux-gnu-g++"], ["-mbranch-protection=standard"]),
    (A64, "fiber-clang-standard", ["clang++", "--target=aarch64-linux-gnu"], ["-mbranch-protection=standard"]),
]


def check_fiber_variant(arch, name, cxx, flags):
    label = f"{arch}/{name}"
    if not shutil.which(cxx[0]):
        fail(f"{label}: {cxx[0]} not installed")
        return
    src = os.path.join(OUT, "fiber_probe.cpp")
    with open(src, "w") as f:
        f.write(FIBER_PROBE)
    obj = os.path.join(OUT, f"{arch}-{name}.o")
    r = run(cxx + ["-std=c++20", "-O2", "-Iinclude"] + flags + ["-c", src, "-o", obj])
    if r.returncode != 0:
        fail(f"{label}: probe does not compile:\n{r.stdout}")
        return
    # Link it first: inline functions the compiler did not inline sit in
    # sections of their own, and a link gives every address its final value.
    so = obj[:-2] + ".so"
    r = run(TOOLS[arch]["link"] + ["-shared", "-nostdlib", "-o", so, obj])
    if r.returncode != 0:
        fail(f"{label}: cannot link the probe into a shared object:\n{r.stdout}")
        return
    funcs = disassemble(arch, so)
    insns = [(a, t) for body in funcs.values() for a, t in body]
    # A continuation is an address the code computes and pushes as the
    # place to continue: lea X(%rip),%reg then push %reg (x86-64); adr xN, X
    # then str xN, [sp, ...]! (AArch64).
    conts = []
    for (a, t), (_, nxt) in zip(insns, insns[1:]):
        if arch == X86:
            m = re.match(r"lea\s+\S*\(%rip\),%(\w+)\s+# ([0-9a-f]+)", t)
            if m and re.match(r"push\s+%" + m.group(1) + r"$", nxt):
                conts.append(int(m.group(2), 16))
        else:
            m = re.match(r"adr\s+(x\d+), ([0-9a-f]+)", t)
            if m and re.match(r"str\s+" + m.group(1) + r", \[sp", nxt):
                conts.append(int(m.group(2), 16))
    if not conts:
        fail(f"{label}: found no continuation in the coroutine switch (probe out of date?)")
        return
    pad = ("endbr64",) if arch == X86 else ("bti j", "bti jc")
    before = len(failures)
    for c in conts:
        t = insn_at(funcs, c)
        if t not in pad:
            fail(f"{label}: continuation at {c:#x} starts with {t!r}, not {pad[0]}")
    if len(failures) == before:
        print(f"ok   {label:24} {' '.join(flags):32} {len(conts)} continuation(s) start with {pad[0]}")


def expected_for_build(arch, build_dir):
    """What the switch object of an existing build must claim."""
    if arch == A64:
        return set() if build_dir.endswith("-nobp") or "-nobp-" in build_dir else {"BTI", "PAC"}
    # x86-64: whatever -fcf-protection the compiler applies by default.
    r = run(["sh", "-c", "echo | gcc -dM -E - | grep -c __CET__"])
    return {"IBT"} if r.stdout.strip() not in ("", "0") else set()


def check_real_builds():
    bdir = os.path.join(ROOT, "build")
    if not os.path.isdir(bdir):
        return
    for d in sorted(os.listdir(bdir)):
        for arch in (X86, A64):
            if not (d == arch or d.startswith(arch + "-")):
                continue
            objs = [os.path.join(bdir, d, "obj", "arch", arch, f"{b}.o") for b in ASM_FILES]
            if not all(os.path.exists(o) for o in objs):
                continue
            want = expected_for_build(arch, d)
            label = f"build/{d}"
            bad = False
            for obj in objs:
                got, _ = claimed_features(obj)
                if "SHSTK" in got:
                    fail(f"{label}: {os.path.basename(obj)} claims SHSTK")
                if got != want:
                    fail(f"{label}: {os.path.basename(obj)} claims {sorted(got) or 'nothing'}, "
                         f"expected {sorted(want) or 'nothing'}")
                    bad = True
            if bad:
                continue
            got = want
            # The C++ objects of an AArch64 BTI build must agree, or the
            # library as a whole cannot claim BTI.
            if arch == A64 and "BTI" in want:
                for sub in ("src",):
                    sd = os.path.join(bdir, d, "obj", sub)
                    for f in sorted(os.listdir(sd)) if os.path.isdir(sd) else []:
                        if f.endswith(".o"):
                            g, _ = claimed_features(os.path.join(sd, f))
                            if not {"BTI", "PAC"} <= g:
                                fail(f"{label}: obj/{sub}/{f} claims {sorted(g) or 'nothing'}, expected BTI, PAC")
            before = len(failures)
            n = check_code(arch, label, objs, got)
            if len(failures) != before:
                continue
            print(f"ok   {label:24} {'switch.o fiber.o':32} claims {', '.join(sorted(got)) or 'nothing':10}"
                  f" {n or 0} landing-pad/PAC checks")
            for lib in ("libcoop.so", "bin/coop-tests"):
                p = os.path.join(bdir, d, lib)
                if os.path.exists(p):
                    g, _ = claimed_features(p)
                    print(f"info {label}/{lib}: claims {', '.join(sorted(g)) or 'nothing'}"
                          + ("" if g >= got else
                             " (the linker keeps a feature only if every linked object has it;"
                             " the distribution's crt*.o and libgcc carry no property note)"))


def check_hooks_compiled_out():
    """The sanitizer fiber hooks must cost nothing in normal builds: a plain
    build's library refers to none of them, a sanitizer build's does."""
    bdir = os.path.join(ROOT, "build")
    hooks = {"asan": "__sanitizer_start_switch_fiber", "tsan": "__tsan_switch_to_fiber"}
    for d in sorted(os.listdir(bdir)) if os.path.isdir(bdir) else []:
        lib = os.path.join(bdir, d, "libcoop.a")
        if not os.path.exists(lib) or not re.match(r"(x86_64|aarch64)(-|$)", d):
            continue
        nm = "nm" if d.startswith(X86) else "aarch64-linux-gnu-nm"
        r = run([nm, "-u", lib])
        undefined = set(r.stdout.split())
        for kind, sym in hooks.items():
            want = f"-{kind}" in d
            if (sym in undefined) != want:
                fail(f"build/{d}/libcoop.a {'lacks' if want else 'refers to'} {sym}")
        if not any(f"-{k}" in d for k in hooks):
            leaked = sorted(u for u in undefined if u.startswith(("__sanitizer", "__tsan", "__asan")))
            if leaked:
                fail(f"build/{d}/libcoop.a refers to sanitizer symbols: {leaked}")
            else:
                print(f"ok   build/{d:18} libcoop.a refers to no sanitizer hook (compiled out)")


def main():
    os.makedirs(OUT, exist_ok=True)
    for v in VARIANTS:
        check_variant(*v)
    for v in FIBER_VARIANTS:
        check_fiber_variant(*v)
    check_real_builds()
    check_hooks_compiled_out()
    if failures:
        print(f"hardening: {len(failures)} problem(s)")
        return 1
    print("hardening: every variant claims exactly what it implements")
    return 0


if __name__ == "__main__":
    sys.exit(main())
