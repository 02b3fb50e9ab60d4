#!/usr/bin/env python3
"""Regenerate README.md's "Results so far" section from the committed runs in docs/results/.

    python3 scripts/results_readme.py           # rewrite the section in README.md
    python3 scripts/results_readme.py --check   # exit 1 with a diff if README.md differs
    python3 scripts/results_readme.py --print   # write the section to stdout

The section is the text between `<!-- results:begin ... -->` and `<!-- results:end -->` in
README.md. It is never edited by hand: change a run's files or docs/results/index.json and
run this script. Python 3 standard library only; docs tooling, never on the serving path.

docs/results/index.json (the manifest) lists the entries in order. Each entry names its kind,
its bold title, its links, the files it reads, and wording that carries no figure (which
backend a note is about, a method note). Titles, links and that wording are written by hand;
every figure in the section is computed here from a file a benchmark wrote. A manifest text
field that looks like a measured figure (a number with a unit, or a ratio like 0.9x) is an
error, and so is a link to a file that does not exist.

What each kind reads, and the rules (all ranges are min-max, rounded to nearest):

serving-matrix (`pdserve bench` on the CPU host): the run folder's
  - report-inputs.json: date, preset, compute, the number of cells (`runs`), the CPUs a cell
    may use (`usage.allowed_cpus`), KV bytes per prompt length (`transfer_baselines`), the
    transfer baselines' cold p50 per backend and prompt length, and the run time (the leading
    "<N> min" of `timing`);
  - summary.csv: per cell `ttft_to_model_ratio` (TTFT model: cells at the lowest rate, not
    host-bound; "within" means |ratio - 1| <= 0.15), `host_bound`, `mean_kv_transfer_ms`
    (serving / microbenchmark = mean_kv_transfer_ms / the baseline's cold p50, in cells that
    are not host-bound; target <= 1.5x);
  - report.md, the table under "## Backends against <baseline>" (the one table the report
    writes with bootstrap intervals; they are not recomputed here): a row whose verdict starts
    with "excluded" is not comparable; "differs" rows count as higher or lower by the sign of
    the TTFT difference; the largest is the "differs" row with the largest |difference|;
  - `quiet_rerun` (a sub-folder's summary.csv): host-bound cells at the lower inputs and rates
    of the full run that were run again on a quiet host.
  Host-bound cells are grouped as: at the highest rate; at the longest prompt (other rates);
  the rest ("at input <= <second-longest> and <lower rates>").

serving-gpu (`pdserve bench --device cuda`, one folder per KV layout): summary.csv of each
  layout (KV transfer mean at the longest prompt, TTFT p99 at `ttft_rate`), and the
  `transfer_bench` text table (`pdserve bench transfer --device cuda` output: the ucx
  layer-major scattered row at the longest prompt gives the put count, the put size =
  bytes / ops, and the time per put = time / ops); the ucx transport name is the first one on
  its "transports used" line.

kernels-gpu (`pdserve bench kernels --device cuda` JSON): `prefill` rows with kernel "wgmma"
  (ratio_to_gemm, tflops, attention_only_tflops); the peer JSON (PyTorch SDPA backends): for
  each length the kernel's attention alone is "above" a peer when more than 5% faster,
  "level with" it within +-5%, "below" it otherwise; `decode` rows at the largest batch of
  the "before" and "now" JSONs (kernel "decode" and "checksum", ratio_to_d2d_copy); GPU
  names from `device`.

transfer-cpu (`pdserve bench transfer --json`): `summary.local_vs_memcpy` and
  `summary.ucx_posix_vs_perftest_64k` (median, rows, rows below target, the target,
  latency-bound rows); the rows behind them (notes "sweep" and "request-2048"; ucx blocks of
  64 KiB and more) give the batch sizes of latency-bound rows (overhead per batch > the
  baseline's time for the batch's bytes) and the range of the rows below target;
  `summary.request_layer_vs_block` gives the 256 MiB request's layer-major / block-major.

faults (`pdserve bench faults`, one folder per run): the number of runs listed, and for the
  runs shown: results.json (`pass`, `totals`), trials.csv (trials per transfer; medians of
  `serving_again_s` over kill-* faults ("kill -9") and term-* faults ("SIGTERM"), pooled over
  the runs shown, rounded to 0.1 s). "Every token verified": verified + clean errors =
  requests in each run shown.

http (`pdserve bench http`): http_bench.json's `compare` (ttft_p50_diff_ms and its 95%
  interval, target_diff_ms, target_met, concurrent, completed / verify_mismatches per api)
  and `streams` (peak_open_streams, failed, router_threads_peak) of the current run, and
  `streams.router_threads_peak` of the run before it.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import re
import statistics
import sys
import textwrap
from pathlib import Path

BEGIN_PREFIX = "<!-- results:begin"
BEGIN = ("<!-- results:begin: generated by scripts/results_readme.py from docs/results/index.json;"
         " do not edit by hand -->")
END = "<!-- results:end -->"
WIDTH = 100
MIB = 1024 * 1024

# A measured figure written by hand in the manifest: a number with a unit, or a ratio.
FIGURE_RE = re.compile(
    r"(?<![\w.-])[+-]?\d[\d,]*(\.\d+)?\s*(x\b|%|ms\b|µs\b|us\b|s\b|min\b|GB/s|MiB\b|GiB\b|KiB\b|"
    r"TFLOP/s|req/s)")

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten"]


class ResultsError(Exception):
    """A result file is missing or does not hold what the manifest says it does."""


# --------------------------------------------------------------------------- formatting

def words(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else f"{n:,}"


def fnum(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


def signed(x: float, decimals: int) -> str:
    return f"{x:+.{decimals}f}"


def frange(lo: float, hi: float, decimals: int, dash: str = "–") -> str:
    a, b = fnum(lo, decimals), fnum(hi, decimals)
    return a if a == b else f"{a}{dash}{b}"


def size_label(nbytes: float) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= div:
            v = nbytes / div
            return f"{v:.0f} {unit}" if abs(v - round(v)) < 1e-9 else f"{v:.1f} {unit}"
    return f"{nbytes:.0f} B"


def join_and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def md_link(label: str, href: str) -> str:
    return f"[{label}]({href})"


# Kept on one line when wrapping: links, intervals, a number and its unit, "kill -9".
UNBREAKABLE_RE = re.compile(
    r"\[[^\]]*\]\([^)]*\)|\[[+-]?[\d.]+, [+-]?[\d.]+\]|kill -9|"
    r"[~+-]?\d[\d.,]*(?:x)? (?:ms|s|µs|min|MiB|KiB|GiB|GB/s|TFLOP/s|req/s|cells|rows)\b")
NBSP = "\x00"


def wrap(text: str, first: str = "", rest: str = "") -> list[str]:
    """Wrap at WIDTH columns without breaking a link, an interval or a figure from its unit."""
    glued = UNBREAKABLE_RE.sub(lambda m: m.group(0).replace(" ", NBSP), text)
    lines = textwrap.wrap(glued, width=WIDTH, initial_indent=first, subsequent_indent=rest,
                          break_long_words=False, break_on_hyphens=False)
    return [line.replace(NBSP, " ") for line in lines]


def wrap_bullet(text: str, indent: int) -> list[str]:
    """One markdown bullet, wrapped at WIDTH columns."""
    return wrap(text, " " * indent + "- ", " " * (indent + 2))


# --------------------------------------------------------------------------- file readers

def read_json(path: Path):
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ResultsError(f"missing result file {path}") from None
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not JSON ({e})") from None


def read_csv(path: Path) -> list[dict]:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        raise ResultsError(f"missing result file {path}") from None


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"missing result file {path}") from None


def markdown_table(text: str, heading: str, path: Path) -> list[dict]:
    """The first pipe table after the line `heading` (a whole markdown heading line)."""
    lines = text.splitlines()
    try:
        i = lines.index(heading)
    except ValueError:
        raise ResultsError(f"{path}: no heading {heading!r}") from None
    rows: list[list[str]] = []
    for line in lines[i + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    if len(rows) < 2 or not all(set(c) <= set("-: ") for c in rows[1]):
        raise ResultsError(f"{path}: no table under {heading!r}")
    header = rows[0]
    return [dict(zip(header, r)) for r in rows[2:]]


def num(value: str, path: Path, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ResultsError(f"{path}: {what} is not a number: {value!r}") from None


# --------------------------------------------------------------------------- extractors
# Each returns a plain dict of figures (unrounded), so tests can check them directly.

def extract_serving_matrix(run: Path, quiet_rerun: Path | None = None) -> dict:
    inputs = read_json(run / "report-inputs.json")
    cells = read_csv(run / "summary.csv")
    if not cells:
        raise ResultsError(f"{run}/summary.csv: no cells")
    m = re.match(r"\s*([\d.]+) min", inputs.get("timing", ""))
    if not m:
        raise ResultsError(f"{run}/report-inputs.json: timing does not start with '<N> min'")
    baselines = inputs.get("transfer_baselines", [])
    kv_bytes = sorted({b["bytes"] for b in baselines})
    cold_p50 = {(b["backend"], int(b["input_len"])): float(b["p50_ms"]) for b in baselines}
    cpus = {r.get("usage", {}).get("allowed_cpus") for r in inputs.get("runs", [])} - {None}

    def cell_key(r):
        return (r["backend"], int(r["input_len"]), int(r["output_len"]), float(r["request_rate"]))

    hb = [r for r in cells if r["host_bound"] not in ("0", "")]
    ok = [r for r in cells if r["host_bound"] in ("0", "")]
    rates = sorted({float(r["request_rate"]) for r in cells})
    ins = sorted({int(r["input_len"]) for r in cells})

    # TTFT model at the lowest rate.
    low = [r for r in ok if float(r["request_rate"]) == rates[0]
           and num(r["ttft_to_model_ratio"], run, "ttft_to_model_ratio") > 0]
    ratios = [float(r["ttft_to_model_ratio"]) for r in low]
    # Serving KV transfer against the same-run microbenchmark's cold p50.
    xfer = []
    for r in ok:
        base = cold_p50.get((r["backend"], int(r["input_len"])))
        mean = num(r["mean_kv_transfer_ms"], run, "mean_kv_transfer_ms")
        if base and mean > 0:
            xfer.append(mean / base)
    # Host-bound cells by group.
    top_rate, top_in = rates[-1], ins[-1]
    at_top_rate = [r for r in hb if float(r["request_rate"]) == top_rate]
    at_top_in = [r for r in hb if float(r["request_rate"]) != top_rate
                 and int(r["input_len"]) == top_in]
    rest = [r for r in hb if r not in at_top_rate and r not in at_top_in]
    top_in_rates = sorted({float(r["request_rate"]) for r in at_top_in})
    rerun = None
    if quiet_rerun is not None:
        again = {cell_key(r): r for r in read_csv(quiet_rerun / "summary.csv")}
        missing = [cell_key(r) for r in rest if cell_key(r) not in again]
        if missing:
            raise ResultsError(f"{quiet_rerun}: does not rerun host-bound cells {missing}")
        rerun = {"cells": len(again),
                 "host_bound": sum(r["host_bound"] not in ("0", "") for r in again.values())}
    return {
        "date": inputs.get("date", "").split(" ")[0],
        "preset": inputs.get("preset", ""),
        "compute": inputs.get("compute", ""),
        "cells": len(inputs.get("runs", [])) or len(cells),
        "cpus": max(cpus) if cpus else None,
        "kv_mib": [b / MIB for b in kv_bytes],
        "minutes": float(m.group(1)),
        "rates": rates,
        "inputs": ins,
        "model_rate": rates[0],
        "model_cells": len(low),
        "model_within": sum(abs(x - 1) <= 0.15 for x in ratios),
        "model_min": min(ratios) if ratios else None,
        "model_max": max(ratios) if ratios else None,
        "xfer_cells": len(xfer),
        "xfer_within": sum(x <= 1.5 for x in xfer),
        "xfer_median": statistics.median(xfer) if xfer else None,
        "host_bound": len(hb),
        "hb_top_rate": len(at_top_rate),
        "hb_top_in": len(at_top_in),
        "hb_top_in_rates": top_in_rates,
        "hb_rest": len(rest),
        "rerun": rerun,
        "differences": extract_backend_differences(run / "report.md", inputs.get("baseline", "")),
    }


DIFF_RE = re.compile(r"^([+-]?[\d.]+) \[([+-]?[\d.]+), ([+-]?[\d.]+)\]$")


def extract_backend_differences(report: Path, baseline: str) -> dict:
    """Per backend: comparable cells, higher / lower counts, and the largest difference."""
    rows = markdown_table(read_text(report), f"## Backends against {baseline}", report)
    out: dict[str, dict] = {}
    for r in rows:
        b = out.setdefault(r["backend"], {"vs": r["vs"], "comparable": 0, "higher": 0,
                                          "lower": 0, "largest": None})
        verdict = r["verdict"]
        if verdict.startswith("excluded"):
            continue
        b["comparable"] += 1
        if not verdict.startswith("differs"):
            continue
        t = DIFF_RE.match(r["TTFT mean diff (ms) [95% CI]"])
        k = DIFF_RE.match(r["KV transfer mean diff (ms) [95% CI]"])
        if not t or not k:
            raise ResultsError(f"{report}: cannot read the differences of {r}")
        ttft = tuple(float(x) for x in t.groups())
        b["higher" if ttft[0] > 0 else "lower"] += 1
        if b["largest"] is None or abs(ttft[0]) > abs(b["largest"]["ttft"][0]):
            mib = [p.strip().split(" / ")[0] for p in r["MiB / ops (this, baseline)"].split(",")]
            b["largest"] = {"workload": r["workload"], "rate": r["rate"], "ttft": ttft,
                            "kv": tuple(float(x) for x in k.groups()),
                            "mib": [float(x) for x in mib]}
    return out


def extract_serving_gpu(layouts: dict[str, Path], transfer_bench: Path, rate: float) -> dict:
    out: dict = {"layouts": {}}
    longest = None
    for layout, run in layouts.items():
        cells = read_csv(run / "summary.csv")
        longest = max(int(r["input_len"]) for r in cells)
        per: dict[str, dict] = {}
        for r in cells:
            if int(r["input_len"]) != longest:
                continue
            b = per.setdefault(r["backend"], {"kv_ms": [], "ttft_p99": None})
            b["kv_ms"].append(float(r["mean_kv_transfer_ms"]))
            if float(r["request_rate"]) == rate:
                b["ttft_p99"] = float(r["p99_ttft_ms"])
        out["layouts"][layout] = per
    out["prompt"] = longest
    out["rate"] = rate
    text = read_text(transfer_bench)
    row_re = re.compile(r"^(\S+)\s+(layer-major|block-major)\s+(contiguous|scattered)\s+(\d+) tok"
                        r"\s+([\d.]+) MiB\s+(\d+)\s+([\d.]+)\s", re.M)
    for backend, layout, dst, tokens, mib, ops, ms in row_re.findall(text):
        if (backend, layout, dst, int(tokens)) == ("ucx", "layer-major", "scattered", longest):
            out["puts"] = int(ops)
            out["put_bytes"] = float(mib) * MIB / int(ops)
            out["put_us"] = float(ms) * 1000 / int(ops)
    if "puts" not in out:
        raise ResultsError(f"{transfer_bench}: no ucx layer-major scattered row at {longest} tok")
    m = re.search(r"^\s+ucx\s+([a-z_]+)", text.split("transports used:")[-1], re.M)
    out["ucx_transport"] = m.group(1) if m else None
    return out


def gpu_name(device: str) -> str:
    m = re.match(r"NVIDIA ([^\s,]+)", device)
    return m.group(1) if m else device.split(",")[0]


PEER_NAMES = {"flash": "FlashAttention-2", "cudnn": "cuDNN", "efficient": "memory-efficient",
              "math": "math"}


def extract_kernels_gpu(prefill: Path, peer: Path, before: Path, now: Path) -> dict:
    pre = read_json(prefill)
    rows = sorted((r for r in pre["prefill"] if r.get("kernel") == "wgmma"),
                  key=lambda r: r["prompt_len"])
    if not rows:
        raise ResultsError(f"{prefill}: no wgmma prefill rows")
    peers = read_json(peer)
    by_backend: dict[str, dict[int, float]] = {}
    for r in peers["rows"]:
        by_backend.setdefault(r["backend"], {})[int(r["prompt_len"])] = float(r["tflops"])
    compare = {}
    for backend, per_len in by_backend.items():
        verdicts = {}
        for r in rows:
            theirs = per_len.get(int(r["prompt_len"]))
            if theirs is None:
                continue
            rel = r["attention_only_tflops"] / theirs - 1
            verdicts[int(r["prompt_len"])] = ("above" if rel > 0.05 else
                                              "level" if rel >= -0.05 else "below")
        compare[PEER_NAMES.get(backend, backend)] = verdicts

    def decode(path: Path) -> dict:
        d = read_json(path)
        batch = max(r["batch"] for r in d["decode"])
        sel = [r for r in d["decode"] if r["batch"] == batch]
        dec = [r["ratio_to_d2d_copy"] for r in sel if r["kernel"] == "decode"]
        chk = [r["ratio_to_d2d_copy"] for r in sel if r["kernel"] == "checksum"]
        return {"gpu": gpu_name(d.get("device", "")), "batch": batch,
                "decode": (min(dec), max(dec)), "checksum": (min(chk), max(chk))}

    return {
        "gpu": gpu_name(pre.get("device", "")),
        "prompt_lens": [int(r["prompt_len"]) for r in rows],
        "ratio": [r["ratio_to_gemm"] for r in rows],
        "tflops": [r["tflops"] for r in rows],
        "attention_tflops": [r["attention_only_tflops"] for r in rows],
        "peer_framework": "PyTorch" if "torch" in peers else "",
        "peers": compare,
        "before": decode(before),
        "now": decode(now),
    }


def extract_transfer_cpu(path: Path) -> dict:
    d = read_json(path)
    s = d.get("summary")
    if not s:
        raise ResultsError(f"{path}: no summary")

    def latency_bound(r) -> bool:
        copy_us = r["bytes_per_batch"] / (r["baseline_gbps"] * 1e3)
        return r["overhead_us_per_batch"] > copy_us

    def group(key: str, backend: str, min_block: int) -> dict:
        g = s[key]
        rows = [r for r in d["rows"] if r["backend"] == backend and r["block_bytes"] >= min_block]
        if len(rows) != g["rows"]:
            raise ResultsError(f"{path}: {g['rows']} rows in summary.{key}, {len(rows)} found")
        below = [r for r in rows if r["ratio"] < g["target"]]
        lb = [r for r in below if latency_bound(r)]
        if len(below) != g["rows_below_target"] or len(lb) != g["below_latency_bound"]:
            raise ResultsError(f"{path}: summary.{key} does not match its rows")
        return {"median": g["median"], "rows": g["rows"], "target": g["target"],
                "below": len(below), "below_range": (min(r["ratio"] for r in below),
                                                     max(r["ratio"] for r in below))
                if below else None,
                "latency_bound": len(lb),
                "latency_bound_sizes": sorted({r["bytes_per_batch"] for r in lb})}

    req = {}
    for backend, v in s["request_layer_vs_block"].items():
        req[backend] = v["ratio"]
    req_bytes = {r["bytes_per_batch"] for r in d["rows"] if r["note"].startswith("request")}
    return {
        "local": group("local_vs_memcpy", "local", 0),
        "ucx_posix": group("ucx_posix_vs_perftest_64k", "ucx/posix", 64 * 1024),
        "ucx_min_block": 64 * 1024,
        "request_bytes": max(req_bytes) if req_bytes else None,
        "request_layer_vs_block": req,
    }


def extract_kernels_cpu(path: Path) -> dict:
    """`pdserve bench kernels --json` on the CPU host: prefill against the FMA-loop peak, the
    checksum read (decode's KV read alone) against memcpy, and the mock's own work on one
    thread (K/V generation, the verification read) against what the modelled GPU needs."""
    d = read_json(path)
    prefill = [r["ratio_to_fma_peak"] for r in d.get("prefill", [])]
    checksum = [r["ratio_to_memcpy"] for r in d.get("decode", []) if r.get("kernel") == "checksum"]
    mock = d.get("mock", [])
    gen = [r for r in mock if r.get("work") == "generate"]
    ver = [r for r in mock if r.get("work") == "verify"]
    if not prefill or not checksum or not gen or not ver:
        raise ResultsError(f"{path}: prefill, checksum, generate or verify rows missing")
    longest = max(ver, key=lambda r: r["prompt_len"])
    return {
        "threads": d.get("threads"),
        "prefill": (min(prefill), max(prefill)),
        "checksum": (min(checksum), max(checksum)),
        "generate_gbps": (min(r["gbps"] for r in gen), max(r["gbps"] for r in gen)),
        "verify_gbps": (min(r["gbps"] for r in ver), max(r["gbps"] for r in ver)),
        "prefill_needs_gbps": (min(r["needed_gbps"] for r in gen),
                               max(r["needed_gbps"] for r in gen)),
        "generate_hidden": all(r["hidden"] for r in gen),
        "longest": longest["prompt_len"],
        "longest_mib": longest["seconds"] * longest["gbps"] * 1e9 / MIB,
        "longest_hidden": longest["hidden"],
        "step_ms": longest["modelled_seconds"] * 1e3,
    }


def extract_loadgen(path: Path) -> dict:
    """`pdserve bench loadgen --json`: the highest requested rate held and its achieved /
    requested ratio."""
    d = read_json(path)
    held = d.get("held_rate")
    runs = [r for r in d.get("runs", []) if r.get("requested_rate") == held]
    if not held or not runs:
        raise ResultsError(f"{path}: no held rate")
    return {"held": held, "ratio": runs[0]["achieved_to_requested"]}


def extract_fault_run(run: Path) -> dict:
    res = read_json(run / "results.json")
    trials = read_csv(run / "trials.csv")
    t = res["totals"]
    per_transfer: dict[str, int] = {}
    recover: dict[str, list[float]] = {"kill": [], "term": []}
    for r in trials:
        per_transfer[r["transfer"]] = per_transfer.get(r["transfer"], 0) + 1
        kind = r["fault"].split("-")[0]
        if kind in recover and r["serving_again_s"] not in ("", "-1"):
            recover[kind].append(float(r["serving_again_s"]))
    if len(trials) != t["trials"]:
        raise ResultsError(f"{run}: {t['trials']} trials in results.json, {len(trials)} rows")
    return {"pass": bool(res.get("pass")), "totals": t, "per_transfer": per_transfer,
            "recover": recover,
            "all_verified": t["verified"] + t["clean_errors"] == t["requests"]}


def extract_http(compare: Path, streams: Path, streams_before: Path) -> dict:
    c = read_json(compare)["compare"]
    s = read_json(streams)["streams"]
    before = read_json(streams_before)["streams"]
    apis = [c[a] for a in ("grpc", "http")]
    return {
        "diff": c["ttft_p50_diff_ms"],
        "ci": tuple(c["ttft_p50_diff_ci95_ms"]),
        "target": c["target_diff_ms"],
        "target_met": bool(c["target_met"]),
        "concurrent": bool(c.get("concurrent")),
        "requests": sum(a["completed"] for a in apis),
        "verified": all(a["verify_mismatches"] == 0 and a["failed"] == 0 for a in apis),
        "streams": s["streams"],
        "peak_open": s["peak_open_streams"],
        "errors": s["failed"] + s["verify_mismatches"],
        "threads": s["router_threads_peak"],
        "threads_before": before["router_threads_peak"],
    }


# --------------------------------------------------------------------------- renderers

class Ctx:
    """Where the results live and how links are written from README.md."""

    def __init__(self, results: Path, link_prefix: str):
        self.results = results
        self.prefix = link_prefix

    def path(self, rel: str) -> Path:
        return self.results / rel

    def link(self, label: str, rel: str) -> str:
        if not self.path(rel.split("#")[0]).exists():
            raise ResultsError(f"manifest links to {rel}, which is not in {self.results}")
        return md_link(label, self.prefix + rel)

    def links(self, groups: list) -> str:
        """[{"text": optional lead-in, "links": [{"label", "href"}]}] -> 'a, b; text: c'."""
        parts = []
        for g in groups:
            ls = ", ".join(self.link(x["label"], x["href"]) for x in g["links"])
            parts.append(f"{g['text']}: {ls}" if g.get("text") else ls)
        return "; ".join(parts)


def render_serving_matrix(e: dict, ctx: Ctx) -> list[str]:
    quiet = ctx.path(e["quiet_rerun"]) if e.get("quiet_rerun") else None
    f = extract_serving_matrix(ctx.path(e["dir"]), quiet)
    compute = re.sub(r"roofline \((\w+)\)", lambda m: "roofline " + m.group(1).upper(),
                     f["compute"])
    kv = "/".join(f"{x:.0f}" for x in f["kv_mib"])
    out = wrap_bullet(
        f"**{e['title']}**, {f['date']} ({ctx.links(e['links'])}): {e['what']} ({f['cells']} "
        f"cells, {f['preset']} shapes, {compute}, {kv} MiB of real KV per request) in "
        f"{f['minutes']:.1f} min.", 0)
    rate = f"{f['model_rate']:g} req/s"
    ratios = frange(f["model_min"], f["model_max"], 3, "-")
    model = ("(modelled prefill + measured KV transfer + measured control-plane gaps + modelled "
             "first step)")
    if f["model_within"] == f["model_cells"]:
        within = f"within {ratios} of {model} in {f['model_within']} of {f['model_cells']} cells"
    else:
        within = (f"within 15% of {model} in {f['model_within']} of {f['model_cells']} cells "
                  f"(ratios {ratios})")
    out += wrap_bullet(f"With the mock's own work kept inside the modelled time, mean TTFT at "
                       f"{rate} is {within}.", 2)
    diffs = sorted(f["differences"].items(),
                   key=lambda kv_: -abs(kv_[1]["largest"]["ttft"][0]) if kv_[1]["largest"] else 0)
    parts = []
    for backend, d in diffs:
        n, hi, lo, big = d["comparable"], d["higher"], d["lower"], d["largest"]
        if big is None:
            parts.append(f"{backend} is within noise of {d['vs']} in all {n} cells")
            continue
        t, k = big["ttft"], big["kv"]
        where = big["workload"].split("/")[0]
        same = (f"the same {big['mib'][0]:.0f} MiB" if len(set(big["mib"])) == 1 else
                f"{big['mib'][0]:.0f} against {big['mib'][1]:.0f} MiB")
        if hi and not lo:
            parts.append(f"{backend} adds up to {signed(t[0], 0)} ms TTFT [{t[1]:.0f}, {t[2]:.0f}] "
                         f"at {where} (KV transfer {signed(k[0], 0)} ms [{k[1]:.0f}, {k[2]:.0f}] "
                         f"for {same})")
        elif lo and not hi:
            parts.append(f"{backend} is lower than {d['vs']} in {lo} of {n} cells and within "
                         f"noise in the rest")
        else:
            parts.append(f"{backend} differs from {d['vs']} in {hi + lo} of {n} cells ({hi} "
                         f"higher, {lo} lower)")
    out += wrap_bullet("Headline (non-host-bound cells, 95% bootstrap intervals): "
                       + "; ".join(parts) + ".", 2)
    out += wrap_bullet(
        f"Serving KV transfer within 1.5x of the same-run microbenchmark in {f['xfer_within']} "
        f"of {f['xfer_cells']} usable cells (median {f['xfer_median']:.2f}x).", 2)
    rates, ins = f["rates"], f["inputs"]
    groups = []
    if f["hb_top_rate"]:
        groups.append(f"{f['hb_top_rate']} at {rates[-1]:g} req/s")
    if f["hb_top_in"]:
        at = "/".join(f"{r:g}" for r in f["hb_top_in_rates"])
        groups.append(f"{f['hb_top_in']} with {ins[-1]}-token prompts at {at} req/s")
    low_scope = (f"input <= {ins[-2] if len(ins) > 1 else ins[0]} and "
                 f"{frange(rates[0], rates[-2] if len(rates) > 1 else rates[0], 0, '-')} req/s")
    if f["hb_rest"]:
        groups.append(f"{f['hb_rest']} at {low_scope}")
    text = (f"{f['host_bound']} of {f['cells']} cells are host-bound on {f['cpus']} cores "
            f"({', '.join(groups)}) and are kept out of the headline")
    r = f["rerun"]
    if not f["hb_rest"]:
        text += f"; none at {low_scope}."
    elif r and r["host_bound"] == 0:
        text += (f"; none at {low_scope} on a quiet host (0 of {r['cells']} cells in a "
                 f"{ctx.link('quiet rerun', e['quiet_rerun'] + '/report.md')}).")
    else:
        text += "."
    return out + wrap_bullet(text, 2)


def render_serving_gpu(e: dict, ctx: Ctx) -> list[str]:
    layouts = {k: ctx.path(v) for k, v in e["layouts"].items()}
    f = extract_serving_gpu(layouts, ctx.path(e["transfer_bench"]), float(e["ttft_rate"]))
    ipc, ucx = e["ipc_backend"], e["ucx_backend"]
    lay = list(f["layouts"])
    out = wrap_bullet(f"**{e['title']}**, {e['lead']} ({ctx.links(e['links'])}):", 0)
    ipc_ms = [x for k in lay for x in f["layouts"][k][ipc]["kv_ms"]]
    out += wrap_bullet(f"{f['prompt']}-token request, KV moved by {ipc} in "
                       f"{frange(min(ipc_ms), max(ipc_ms), 1)} ms.", 2)

    def ucx_range(layout):
        ms = f["layouts"][layout][ucx]["kv_ms"]
        d = 0 if min(ms) >= 10 else 1
        return frange(min(ms), max(ms), d)

    via = f" (UCX's {f['ucx_transport']})" if f["ucx_transport"] else ""
    out += wrap_bullet(
        f"{ucx} on device memory{via}: {ucx_range(lay[0])} ms with {lay[0]} pools "
        f"({f['puts']:,} puts of {size_label(f['put_bytes'])} at about {f['put_us']:.0f} µs "
        f"each), {ucx_range(lay[1])} ms with {lay[1]} pools.", 2)
    p = [(f["layouts"][k][ipc]["ttft_p99"], f["layouts"][k][ucx]["ttft_p99"]) for k in lay]
    out += wrap_bullet(
        f"TTFT p99 at {f['rate']:g} req/s ({f['prompt']}-token prompts): {p[0][0]:.1f} ms ({ipc}) "
        f"against {p[0][1]:.1f} ms ({ucx}) with {lay[0]} pools, and {p[1][0]:.1f} ms against "
        f"{p[1][1]:.1f} ms with {lay[1].split('-')[0]}-major.", 2)
    return out


def render_kernels_gpu(e: dict, ctx: Ctx) -> list[str]:
    f = extract_kernels_gpu(ctx.path(e["prefill"]), ctx.path(e["peer"]),
                            ctx.path(e["decode_before"]), ctx.path(e["decode_now"]))
    out = wrap_bullet(f"**{e['title']}** ({ctx.links(e['links'])}):", 0)
    lens = " / ".join(str(x) for x in f["prompt_lens"])
    ratios = " / ".join(f"{x:.2f}x" for x in f["ratio"])
    tflops = " / ".join(f"{x:.0f}" for x in f["tflops"])
    fw = f"{f['peer_framework']}'s " if f["peer_framework"] else ""
    peers = []
    for i, (name, v) in enumerate(f["peers"].items()):
        bits = []
        for verdict, word in (("above", "above"), ("level", "level with"), ("below", "below")):
            at = [n for n, x in v.items() if x == verdict]
            if not at:
                continue
            where = ("at every length" if len(at) == len(v) else
                     f"at {' / '.join(str(n) for n in at)} tokens")
            subject = ("it" if bits else
                       f"{fw}{name} on the same GPU" if i == 0 else name)
            bits.append(f"{word} {subject} {where}")
        if bits:
            peers.append(join_and(bits))
    peer_text = f" Attention alone is {', '.join(peers)}." if peers else ""
    out += wrap_bullet(
        f"GPU prefill, {e['prefill_what']}: {ratios} of a cuBLAS GEMM at {lens} tokens "
        f"({tflops} TFLOP/s).{peer_text}", 2)
    b, n = f["before"], f["now"]
    out += wrap_bullet(
        f"GPU decode attention: {frange(*b['decode'], 2)}x of a D2D copy at batch {b['batch']} "
        f"on the {b['gpu']} {e['decode_before_note']}; {e['decode_now_note']}, "
        f"{frange(*n['decode'], 2)}x on an {n['gpu']} (checksum pass alone "
        f"{frange(*n['checksum'], 2)}x; {ctx.links(e['decode_now_links'])}).", 2)
    return out


def render_transfer_cpu(e: dict, ctx: Ctx) -> list[str]:
    f = extract_transfer_cpu(ctx.path(e["file"]))

    def below(g: dict) -> str:
        text = f"{g['below']} of {g['rows']} rows below {g['target']:g}x"
        if g["latency_bound"]:
            sizes = join_and([size_label(x) for x in g["latency_bound_sizes"]])
            text += f", {g['latency_bound']} of them {sizes} batches bound by latency"
        elif g["below"]:
            text += f", at {frange(*g['below_range'], 2)}x"
        return text

    lo, ux = f["local"], f["ucx_posix"]
    req = f["request_layer_vs_block"]
    text = (f"**{e['title']}** (`{e['command']}`, {ctx.links(e['links'])}; {e['note']}): "
            f"`local` reaches a median {lo['median']:.2f}x of memcpy ({below(lo)}), ucx/posix a "
            f"median {ux['median']:.2f}x of `ucx_perftest` for blocks of "
            f"{size_label(f['ucx_min_block'])} and more ({below(ux)}). A layer-major "
            f"{size_label(f['request_bytes'])} request moves at {req['local']:.2f}x (local) and "
            f"{req['ucx/posix']:.2f}x (ucx/posix) of block-major.")
    return wrap_bullet(text, 0)


def render_kernels_cpu(e: dict, ctx: Ctx) -> list[str]:
    f = extract_kernels_cpu(ctx.path(e["file"]))
    out = wrap_bullet(f"**{e['title']}** (`{e['command']}`, {ctx.links(e['links'])}):", 0)
    out += wrap_bullet(
        f"CPU prefill: {frange(*f['prefill'], 2)}x of an FMA-loop peak. CPU decode checksum "
        f"pass: {frange(*f['checksum'], 2)}x of memcpy ({f['threads']} threads).", 2)
    hidden = ("fits" if f["longest_hidden"] else "does not fit")
    out += wrap_bullet(
        f"The mock's own work on one CPU thread ({e['mock_preset']}): K/V generation at "
        f"{frange(*f['generate_gbps'], 0)} GB/s and the checksum read at "
        f"{frange(*f['verify_gbps'], 0)} GB/s, against {frange(*f['prefill_needs_gbps'], 1)} GB/s "
        f"that an H100 prefill needs. A {f['longest']}-token request's full check read "
        f"({f['longest_mib']:.0f} MiB) {hidden} inside one modelled decode step "
        f"({f['step_ms']:.1f} ms).", 2)
    return out


def render_loadgen(e: dict, ctx: Ctx) -> list[str]:
    f = extract_loadgen(ctx.path(e["file"]))
    return wrap_bullet(
        f"**{e['title']}** ({ctx.links(e['links'])}): holds {f['held']:.0f} req/s against the "
        f"built-in echo target (achieved/requested {f['ratio']:.4f}) on the 2-core host.", 0)


def render_faults(e: dict, ctx: Ctx) -> list[str]:
    for d in e["runs"]:
        if not ctx.path(d).is_dir():
            raise ResultsError(f"manifest lists fault run {d}, which is not in {ctx.results}")
    shown = [(s, extract_fault_run(ctx.path(s["dir"]))) for s in e["shown"]]
    runs = [r for _, r in shown]
    t0 = runs[0]["totals"]
    trials = {r["totals"]["trials"] for r in runs}
    split = {tuple(sorted(r["per_transfer"].items())) for r in runs}
    lead = f"`{e['command']}`"
    if len(trials) == 1:
        lead += f", {t0['trials']:,} trials a run"
    if len(split) == 1:
        lead += ", " + " + ".join(f"{n} {k}" for k, n in sorted(runs[0]["per_transfer"].items()))
    if all(r["all_verified"] for r in runs):
        lead += ", every token verified"
    links = join_and([ctx.link(s["label"], s["dir"] + "/README.md") for s, _ in shown])
    last = "the last" if len(shown) == 1 else f"the last {words(len(shown))}"
    n_runs = len(e["runs"])
    lead += f"; {words(n_runs)} run{'s' if n_runs != 1 else ''}, {e['runs_note']}; {last}: {links}"

    def each(key: str, fmt=lambda x: f"{x:,}") -> str:
        vals = [r["totals"][key] for r in runs]
        return fmt(vals[0]) if len(set(vals)) == 1 else join_and([fmt(v) for v in vals])

    met = all(r["pass"] for r in runs)
    verdict = (f"every {e['issue']} target met" + ("" if len(runs) == 1 else
                                                   " in both" if len(runs) == 2 else " in each")
               if met else f"{e['issue']} targets not all met")
    kill = statistics.median([x for r in runs for x in r["recover"]["kill"]])
    term = statistics.median([x for r in runs for x in r["recover"]["term"]])
    within = each("recovered_within_5s", str)
    total = each("trials", str)
    text = (f"**{e['title']}** ({lead}): {verdict}: {each('wrong_tokens')} wrong tokens in "
            f"{each('requests')} requests, {each('never_ended')} requests that "
            f"never ended, {each('failed_elsewhere')} failures outside the faulty worker, "
            f"{each('leaked_blocks')} leaked blocks and {each('leftover_segments')} leftover "
            f"segments at every checkpoint, and every victim serving again within 5 s ({within} "
            f"of {total}, max {each('recovery_max_s', lambda x: f'{x:.2f} s')}; kill -9 "
            f"~{kill:.1f} s, SIGTERM ~{term:.1f} s).")
    return wrap_bullet(text, 0)


def render_http(e: dict, ctx: Ctx) -> list[str]:
    f = extract_http(ctx.path(e["compare"]), ctx.path(e["streams"]), ctx.path(e["streams_before"]))
    links = ", ".join([ctx.link(e["compare_label"], e["compare_link"]),
                       ctx.link(f"{f['streams']:,} streams", e["streams_link"])])
    when = " at the same moment" if f["concurrent"] else ""
    target = f"target {signed(f['target'], 1)} ms" + ("" if f["target_met"] else ", not met")
    verified = (f", every token of {f['requests']:,} requests verified" if f["verified"] else
                f", {f['requests']:,} requests, not all verified")
    at_once = "open at once" if f["peak_open"] == f["streams"] else \
        f"({f['peak_open']:,} open at once)"
    text = (f"**{e['title']}** (`{e['command']}`, {links}): HTTP TTFT p50 is "
            f"{signed(f['diff'], 3)} ms over gRPC on the same cluster{when} (95% CI "
            f"{signed(f['ci'][0], 3)} to {signed(f['ci'][1], 3)} ms; {target}){verified}; "
            f"{f['streams']:,} SSE streams {at_once} with {f['errors']} errors and "
            f"{f['threads']} router threads ({e['streams_before_label']} needed "
            f"{f['threads_before']:,}).")
    return wrap_bullet(text, 0)


RENDERERS = {
    "serving-matrix": render_serving_matrix,
    "serving-gpu": render_serving_gpu,
    "kernels-gpu": render_kernels_gpu,
    "transfer-cpu": render_transfer_cpu,
    "faults": render_faults,
    "http": render_http,
    "kernels-cpu": render_kernels_cpu,
    "loadgen": render_loadgen,
}

# Manifest fields that hold paths, kinds or keys (not prose): exempt from the figure check.
NON_PROSE = {"kind", "dir", "href", "file", "prefill", "peer", "decode_before", "decode_now",
             "transfer_bench", "quiet_rerun", "compare", "compare_link", "streams",
             "streams_link", "streams_before", "runs", "ttft_rate", "ipc_backend",
             "ucx_backend", "about"}


def check_manifest_prose(node, where: str = "index.json") -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k not in NON_PROSE:
                check_manifest_prose(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            check_manifest_prose(v, f"{where}[{i}]")
    elif isinstance(node, str):
        m = FIGURE_RE.search(node)
        if m:
            raise ResultsError(f"{where}: {node!r} holds a figure ({m.group(0)!r}); figures "
                               "come from result files, not the manifest")


def generate(results: Path, link_prefix: str = "docs/results/") -> str:
    """The section's text (between the markers), from results/index.json."""
    manifest = read_json(results / "index.json")
    check_manifest_prose(manifest)
    ctx = Ctx(results, link_prefix)
    lines = wrap(manifest["intro"].replace("{results}", link_prefix))
    lines.append("")
    for e in manifest["entries"]:
        kind = e.get("kind")
        if kind not in RENDERERS:
            raise ResultsError(f"index.json: unknown kind {kind!r}")
        lines += RENDERERS[kind](e, ctx)
    return "\n".join(lines) + "\n"


def split_readme(text: str) -> tuple[str, str, str]:
    """(before and including the begin marker line, the section, the end marker and after)."""
    start = text.find(BEGIN_PREFIX)
    if start < 0:
        raise ResultsError(f"README.md has no '{BEGIN_PREFIX} ...' marker")
    head_end = text.index("\n", start) + 1
    end = text.find(END, head_end)
    if end < 0:
        raise ResultsError(f"README.md has no '{END}' marker after the begin marker")
    return text[:start] + BEGIN + "\n", text[head_end:end], text[end:]


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="exit 1 and print a diff if README.md's section is not what the "
                           "result files give")
    mode.add_argument("--print", action="store_true", help="print the section to stdout")
    ap.add_argument("--readme", type=Path, default=root / "README.md")
    ap.add_argument("--results", type=Path, default=root / "docs" / "results")
    args = ap.parse_args(argv)
    try:
        section = generate(args.results)
        if args.print:
            sys.stdout.write(section)
            return 0
        text = args.readme.read_text(encoding="utf-8")
        head, current, tail = split_readme(text)
        if args.check:
            if current == section and head + current + tail == text:
                return 0
            diff = difflib.unified_diff(current.splitlines(keepends=True),
                                        section.splitlines(keepends=True),
                                        f"{args.readme} (results section)",
                                        "generated from docs/results/ "
                                        "(python3 scripts/results_readme.py)")
            sys.stdout.writelines(diff)
            if current == section:
                print("the begin marker line differs from the generator's")
            print(f"\n{args.readme}: the results section is not what the committed runs give; "
                  "run python3 scripts/results_readme.py (do not edit the section by hand)")
            return 1
        new = head + section + tail
        if new != text:
            args.readme.write_text(new, encoding="utf-8")
            print(f"{args.readme}: results section rewritten")
        return 0
    except ResultsError as e:
        print(f"results_readme: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
