"""The extractors of scripts/results_readme.py: what each manifest kind reads from its result
files (the rules are in results_readme.py's docstring)."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from .common import MIB, ResultsError, markdown_table, num, read_csv, read_json, read_text

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
    # The same, over the transfers that ran alone (summary.csv's mean_kv_transfer_alone_ms,
    # empty or nan in cells with too few of them; absent from older runs), leaving out the cells
    # the report set apart because starved copy threads explain their miss
    # (kv_transfer_starved_miss; absent from older runs).
    alone, alone_low = [], []
    for r in ok:
        if r.get("kv_transfer_starved_miss", "0") == "1":
            continue
        base = cold_p50.get((r["backend"], int(r["input_len"])))
        a = r.get("mean_kv_transfer_alone_ms", "")
        if base and a not in ("", "nan", "-nan") and float(a) > 0:
            alone.append(float(a) / base)
            if float(r["request_rate"]) < rates[-1]:
                alone_low.append(float(a) / base)
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
        "alone_cells": len(alone),
        "alone_within": sum(x <= 1.5 for x in alone),
        "alone_median": statistics.median(alone) if alone else None,
        "alone_low_cells": len(alone_low),
        "alone_low_within": sum(x <= 1.5 for x in alone_low),
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


def extract_colocated(run: Path) -> dict:
    """`pdserve bench --backends ...,colocated`: colocated_ratios.csv of the run folder, the
    comparable rows (P/D / colocated TTFT p50 ratio with its interval, TPOT p50 ratio) by P/D
    backend, in file order."""
    rows = read_csv(run / "colocated_ratios.csv")
    by_backend: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("comparable") != "1":
            continue
        by_backend.setdefault(r["pd_backend"], []).append({
            "input": int(num(r["input_len"], run, "input_len")),
            "rate": num(r["request_rate"], run, "request_rate"),
            "ttft": num(r["ttft_p50_ratio"], run, "ttft_p50_ratio"),
            "lo": num(r["ttft_p50_ratio_lo"], run, "ttft_p50_ratio_lo"),
            "hi": num(r["ttft_p50_ratio_hi"], run, "ttft_p50_ratio_hi"),
            "tpot": num(r["tpot_p50_ratio"], run, "tpot_p50_ratio")})
    if not by_backend:
        raise ResultsError(f"{run}: no comparable row in colocated_ratios.csv")
    return by_backend
