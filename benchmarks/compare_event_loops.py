#!/usr/bin/env python3
"""pyevent-envoy vs asyncio vs uvloop on the event-layer workloads, side by side.

Each round runs every workload on the three implementations back to back,
in an order rotated from round to round, each measurement in a fresh
interpreter (``event_loop_workloads.py``) with an untimed warm-up run on its
own loop first.  The table reports, per workload, the median time of each
implementation over the rounds and the median of the per-round ratios
(rate of pyevent-envoy / rate of uvloop, and / rate of asyncio), with the
lowest and highest ratio of the rounds in brackets.  Pairing within a round
cancels most of the machine's drift; see README.md in this directory.

Usage::

    python3 benchmarks/compare_event_loops.py                 # 5 rounds, full sizes
    python3 benchmarks/compare_event_loops.py --rounds 9
    python3 benchmarks/compare_event_loops.py --quick         # smoke run: 1 round, sizes / 10
    python3 benchmarks/compare_event_loops.py --json out.json # also write everything as JSON
    python3 benchmarks/compare_event_loops.py --json -        # JSON on stdout instead of the table
    python3 benchmarks/compare_event_loops.py --only ping_pong,timers
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cffi  # noqa: E402
import uvloop  # noqa: E402

from event_loop_workloads import (  # noqa: E402
    ASYNCIO,
    IMPLEMENTATIONS,
    PE,
    UVLOOP,
    WORKLOADS,
    Result,
    run_workload,
    settle_allocator,
)
from pyevent_envoy.event import libevent_version  # noqa: E402

WORKER = HERE / "event_loop_workloads.py"
SHORT = {PE: "pe", ASYNCIO: "asyncio", UVLOOP: "uvloop"}


def machine_facts() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_build": " ".join(platform.python_build()),
        "gil": "disabled" if getattr(sys, "_is_gil_enabled", lambda: True)() is False else "enabled",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "libevent": libevent_version(),
        "uvloop": uvloop.__version__,
        "cffi": cffi.__version__,
        "switch_interval_s": sys.getswitchinterval(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def measure(workload: str, impl: str, n: int, warmup: int, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement; returns the Result as a dict, or ``{"error": ...}``."""
    if args.in_process:
        try:
            if warmup:
                run_workload(workload, impl, warmup)
            result: Result = run_workload(workload, impl, n)
        except Exception as exc:  # reported in the table, the run goes on
            return {"error": f"{type(exc).__name__}: {exc}"}
        return {k: getattr(result, k) for k in ("workload", "impl", "n", "seconds", "counts", "extra")}
    cmd = [sys.executable, str(WORKER), workload, impl, str(n), "--warmup", str(warmup)]
    if args.fresh_malloc:
        cmd.append("--fresh-malloc")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(proc.stdout)


def run_rounds(args: argparse.Namespace, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """``{workload: [ {impl: measurement} per round ]}``."""
    raw: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    impls = list(IMPLEMENTATIONS)
    for r in range(args.rounds):
        k = r % len(impls)
        order = impls[k:] + impls[:k]
        for name in names:
            w = WORKLOADS[name]
            n = sizes(args)[name]
            # a tenth of N, as a multiple of every producer count
            warmup = 0 if args.no_warmup else max(4, n // 10 // 4 * 4)
            row: dict[str, Any] = {}
            for impl in order:
                row[impl] = measure(name, impl, n, warmup, args)
            raw[name].append(row)
            if not args.silent:
                parts = []
                for impl in impls:
                    m = row[impl]
                    parts.append(f"{SHORT[impl]} " + ("ERROR" if "error" in m else f"{m['seconds'] * 1e3:.1f} ms"))
                print(f"round {r + 1}/{args.rounds} {w.name:<20} ({' > '.join(SHORT[i] for i in order)}): "
                      + ", ".join(parts), file=sys.stderr, flush=True)
    return raw


def sizes(args: argparse.Namespace) -> dict[str, int]:
    out = {}
    for name, w in WORKLOADS.items():
        n = w.n // w.quick_divisor if args.quick else w.n
        n = max(4, int(n * args.scale))
        if name.startswith("cross_thread"):
            n -= n % 4
        out[name] = n
    return out


def summarize(raw: dict[str, list[dict[str, Any]]], n_of: dict[str, int]) -> list[dict[str, Any]]:
    rows = []
    for name, rounds in raw.items():
        w = WORKLOADS[name]
        errors = sorted({f"{SHORT[i]}: {m['error']}" for row in rounds for i, m in row.items() if "error" in m})
        ok = [row for row in rounds if all("error" not in m for m in row.values())]
        summary: dict[str, Any] = {
            "workload": name,
            "title": w.title,
            "n": n_of[name],
            "unit": w.unit,
            "rounds_ok": len(ok),
            "errors": errors,
            "uvloop_target": w.uvloop_target,
            "asyncio_target": w.asyncio_target,
        }
        if ok:
            for impl in IMPLEMENTATIONS:
                times = [row[impl]["seconds"] for row in ok]
                summary[f"{impl}_median_s"] = statistics.median(times)
                summary[f"{impl}_times_s"] = times
                summary[f"{impl}_median_rate"] = summary["n"] / statistics.median(times)
            for peer in (UVLOOP, ASYNCIO):
                # rate(pe) / rate(peer) = time(peer) / time(pe), paired within each round
                ratios = [row[peer]["seconds"] / row[PE]["seconds"] for row in ok]
                summary[f"vs_{peer}_ratios"] = ratios
                summary[f"vs_{peer}"] = statistics.median(ratios)
            tgt = w.uvloop_target
            summary["vs_uvloop_pass"] = None if tgt is None else summary["vs_uvloop"] >= tgt
            summary["vs_asyncio_pass"] = summary["vs_asyncio"] >= w.asyncio_target
        rows.append(summary)
    return rows


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1e3:.2f} s"


def _ratio(summary: dict[str, Any], peer: str) -> str:
    ratios = summary[f"vs_{peer}_ratios"]
    med = summary[f"vs_{peer}"]
    if len(ratios) == 1:
        return f"{med:.2f}x"
    return f"{med:.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"


def _verdict(passed: bool | None) -> str:
    return "-" if passed is None else ("PASS" if passed else "**MISS**")


def render_markdown(facts: dict[str, Any], rows: list[dict[str, Any]], args: argparse.Namespace,
                    load_before: Any, load_after: Any, wall: float) -> str:
    out = []
    out.append("## pyevent-envoy vs asyncio vs uvloop: event-layer workloads\n")
    out.append(f"- python: {facts['python']} ({facts['python_build']}), GIL {facts['gil']}, "
               f"switch interval {facts['switch_interval_s'] * 1e3:g} ms")
    out.append(f"- libevent: {facts['libevent']}; uvloop: {facts['uvloop']}; cffi: {facts['cffi']}")
    out.append(f"- cpu: {facts['processor']}, {facts['cpu_count']} cpus ({facts['cpus_usable']} usable); "
               f"{facts['platform']}")
    out.append(f"- load average before/after: {load_before} / {load_after}")
    mode = "in-process, fresh loop per run" if args.in_process else "fresh subprocess per run"
    out.append(f"- {args.rounds} round(s), interleaved, implementation order rotated per round; {mode}; "
               f"{'no warm-up' if args.no_warmup else 'one untimed warm-up run (N/10) first'}; "
               f"{'fresh allocator state' if args.fresh_malloc else 'allocator settled (1 MiB block freed first)'}; "
               f"{'quick sizes; ' if args.quick else ''}wall time {wall:.0f} s\n")
    out.append("Times are medians over rounds (lower is better).  Ratios are rate(pyevent-envoy) / rate(peer), "
               "the median of the per-round paired ratios (higher is better; > 1 means pyevent-envoy is "
               "faster), with the lowest and highest round in brackets.\n")
    header = ["workload", "N", "pyevent-envoy", "asyncio", "uvloop",
              "pe / uvloop", "target", "vs uvloop", "pe / asyncio", "target", "vs asyncio"]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join(["---"] + ["--:"] * 4 + ["--:", "--:", ":-:", "--:", "--:", ":-:"]) + "|")
    for s in rows:
        label = WORKLOADS[s["workload"]].title
        if WORKLOADS[s["workload"]].name == "chain_current":
            label += " (16 rounds/poll, see note)"
        if not s["rounds_ok"]:
            out.append(f"| {label} | {s['n']:,} | ERROR | | | | | | | | |")
            continue
        tgt_uv = s["uvloop_target"]
        cells = [
            label,
            f"{s['n']:,}",
            _ms(s[f"{PE}_median_s"]),
            _ms(s[f"{ASYNCIO}_median_s"]),
            _ms(s[f"{UVLOOP}_median_s"]),
            _ratio(s, UVLOOP),
            "-" if tgt_uv is None else f">= {tgt_uv:.2f}x",
            _verdict(s["vs_uvloop_pass"]),
            _ratio(s, ASYNCIO),
            f">= {s['asyncio_target']:.2f}x",
            _verdict(s["vs_asyncio_pass"]),
        ]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("What each row runs (pyevent-envoy | asyncio and uvloop):\n")
    for s in rows:
        w = WORKLOADS[s["workload"]]
        line = f"- **{w.title}**: {w.pe_side} | {w.asyncio_side}."
        if w.note:
            line += f" {w.note}"
        out.append(line)
    errors = [e for s in rows for e in s["errors"]]
    if errors:
        out.append("\nErrors (rounds with an error are left out of the medians):\n")
        for s in rows:
            for e in s["errors"]:
                out.append(f"- {s['workload']}: {e}")
    miss_uv = [s["workload"] for s in rows if s["rounds_ok"] and s["vs_uvloop_pass"] is False]
    miss_aio = [s["workload"] for s in rows if s["rounds_ok"] and s["vs_asyncio_pass"] is False]
    out.append("")
    if miss_uv or miss_aio:
        out.append(f"Missed vs uvloop: {', '.join(miss_uv) or 'none'}.  "
                   f"Missed vs asyncio: {', '.join(miss_aio) or 'none'}.")
    else:
        out.append("All targets met.")
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke run: sizes / 10 and 1 round unless --rounds is given")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every workload size by this")
    p.add_argument("--only", default="", help=f"comma-separated workloads; default all: {','.join(WORKLOADS)}")
    p.add_argument("--json", metavar="PATH",
                   help="write machine facts, raw runs and summary as JSON ('-': stdout, no table)")
    p.add_argument("--in-process", action="store_true",
                   help="fresh loop per run in this process, not a fresh interpreter")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run")
    p.add_argument("--fresh-malloc", action="store_true",
                   help="do not free a 1 MiB block before measuring (see settle_allocator in event_loop_workloads.py)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per measurement subprocess")
    p.add_argument("--silent", action="store_true", help="no per-round progress on stderr")
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        print(f"unknown workload(s): {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}", file=sys.stderr)
        return 2
    if args.in_process and not args.fresh_malloc:
        settle_allocator()
    facts = machine_facts()
    load_before = _loadavg()
    start = time.monotonic()
    raw = run_rounds(args, names)
    wall = time.monotonic() - start
    load_after = _loadavg()
    rows = summarize(raw, sizes(args))
    report = {
        "machine": facts,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "settings": {"rounds": args.rounds, "quick": args.quick, "scale": args.scale,
                     "in_process": args.in_process, "warmup": not args.no_warmup,
                     "fresh_malloc": args.fresh_malloc, "sizes": sizes(args)},
        "summary": rows,
        "raw": raw,
    }
    if args.json == "-":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_markdown(facts, rows, args, load_before, load_after, wall))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(s["errors"] for s in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
