#!/usr/bin/env python3
"""Unit tests of scripts/results_readme.py: its extractors on synthetic result folders written
here, the section it renders from them, and --check against a hand-edited README."""

import contextlib
import csv
import importlib.util
import io
import json
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "results_readme.py"
spec = importlib.util.spec_from_file_location("results_readme", SCRIPT)
rr = importlib.util.module_from_spec(spec)
sys.modules["results_readme"] = rr
spec.loader.exec_module(rr)

SUMMARY_FIELDS = ["backend", "input_len", "output_len", "request_rate", "mean_kv_transfer_ms",
                  "ttft_to_model_ratio", "host_bound", "p99_ttft_ms"]


def flat(lines) -> str:
    """Rendered lines as one string with every run of whitespace made one space."""
    return " ".join(" ".join(lines).split())


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


def write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def cell(backend, inp, rate, kv, ratio, hb, out=64, p99=10.0):
    return {"backend": backend, "input_len": inp, "output_len": out, "request_rate": rate,
            "mean_kv_transfer_ms": kv, "ttft_to_model_ratio": ratio, "host_bound": hb,
            "p99_ttft_ms": p99}


def make_matrix(root: Path) -> Path:
    """2 backends x inputs 128/2048 x rates 1/4/16, a quiet rerun and a report table."""
    run = root / "matrix"
    baselines = [{"backend": b, "input_len": i, "bytes": i * 131072, "p50_ms": p}
                 for b, i, p in (("local", 128, 2.0), ("local", 2048, 20.0),
                                 ("ucx-tcp", 128, 5.0), ("ucx-tcp", 2048, 100.0))]
    write_json(run / "report-inputs.json", {
        "date": "2026-12-03 18:08:39 UTC", "preset": "llama3-8b", "compute": "roofline (h100)",
        "baseline": "local", "timing": "3.5 min in all: cells 3.0 min",
        "runs": [{"usage": {"allowed_cpus": 2}}] * 12, "transfer_baselines": baselines})
    cells = [
        cell("local", 128, 1, 2.0, 1.01, 0), cell("local", 128, 4, 2.5, 0, 1),
        cell("local", 128, 16, 4.0, 0, 1),
        cell("local", 2048, 1, 22.0, 1.20, 0), cell("local", 2048, 4, 30.0, 0, 1),
        cell("local", 2048, 16, 35.0, 0, 0),
        cell("ucx-tcp", 128, 1, 5.5, 1.03, 0), cell("ucx-tcp", 128, 4, 9.0, 0, 0),
        cell("ucx-tcp", 128, 16, 6.0, 0, 0),
        cell("ucx-tcp", 2048, 1, 110.0, 1.05, 0), cell("ucx-tcp", 2048, 4, 120.0, 0, 0),
        cell("ucx-tcp", 2048, 16, 300.0, 0, 1),
    ]
    write_csv(run / "summary.csv", SUMMARY_FIELDS, cells)
    write_csv(run / "quiet" / "summary.csv", SUMMARY_FIELDS,
              [cell("local", 128, 4, 2.1, 0, 0), cell("ucx-tcp", 128, 4, 5.1, 0, 0)])
    (run / "quiet" / "report.md").write_text("# quiet\n", encoding="utf-8")
    head = ("| backend | workload | rate | vs | TTFT mean diff (ms) [95% CI] | KV transfer mean "
            "diff (ms) [95% CI] | MiB / ops (this, baseline) | n (this, baseline) | verdict |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    rows = [
        ("in128/out64", 1, "+3.538 [1.257, 5.937]", "+5.093 [4.108, 6.325]", "16.0", "differs; ok"),
        ("in128/out64", 4, "+4.9 [3.3, 6.6]", "+5.3 [4.5, 6.1]", "16.0", "excluded: baseline"),
        ("in128/out64", 16, "+0.5 [-1.0, 2.0]", "+5.6 [4.8, 6.3]", "16.0", "excluded: both"),
        ("in2048/out64", 1, "+150.712 [110.363, 200.349]", "+124.819 [99.399, 152.090]",
         "256.0", "differs; explained"),
        ("in2048/out64", 4, "+128.4 [97.3, 161.9]", "+76.9 [69.3, 84.8]", "256.0", "excluded: x"),
        ("in2048/out64", 16, "+9.0 [-5.0, 20.0]", "+66.0 [60.2, 71.4]", "256.0",
         "no difference within noise"),
    ]
    body = "".join(f"| ucx-tcp | {w} | {r} | local | {t} | {k} | {m} / 32, {m} / 32 | 12, 12 | {v} |\n"
                   for w, r, t, k, m, v in rows)
    (run / "report.md").write_text("# report\n\n## Results per cell\n\n| a |\n|---|\n| 1 |\n\n"
                                   "## Backends against local\n\n" + head + body +
                                   "\n## Plots\n", encoding="utf-8")
    return run


class MatrixTest(unittest.TestCase):
    def test_figures(self):
        with tempfile.TemporaryDirectory() as d:
            run = make_matrix(Path(d))
            f = rr.extract_serving_matrix(run, run / "quiet")
        self.assertEqual(f["cells"], 12)
        self.assertEqual(f["cpus"], 2)
        self.assertEqual(f["kv_mib"], [16.0, 256.0])
        self.assertEqual(f["minutes"], 3.5)
        self.assertEqual(f["date"], "2026-12-03")
        # TTFT model: the four 1 req/s cells, 1.20 is outside 15%.
        self.assertEqual((f["model_within"], f["model_cells"]), (3, 4))
        self.assertEqual((f["model_min"], f["model_max"]), (1.01, 1.20))
        # Transfer: 8 cells not host-bound; 9.0 / 5.0 = 1.8x and 35 / 20 = 1.75x miss.
        self.assertEqual((f["xfer_within"], f["xfer_cells"]), (6, 8))
        self.assertAlmostEqual(f["xfer_median"], (1.1 + 1.2) / 2)
        # Host-bound: 2 at 16 req/s, 1 at in2048 / 4 req/s, 1 at in128 / 4 req/s (rerun quiet).
        self.assertEqual((f["host_bound"], f["hb_top_rate"], f["hb_top_in"], f["hb_rest"]),
                         (4, 2, 1, 1))
        self.assertEqual(f["hb_top_in_rates"], [4.0])
        self.assertEqual(f["rerun"], {"cells": 2, "host_bound": 0})
        d = f["differences"]["ucx-tcp"]
        self.assertEqual((d["comparable"], d["higher"], d["lower"]), (3, 2, 0))
        self.assertEqual(d["largest"]["workload"], "in2048/out64")
        self.assertEqual(d["largest"]["ttft"], (150.712, 110.363, 200.349))
        self.assertEqual(d["largest"]["mib"], [256.0, 256.0])

    def test_rerun_must_cover_low_host_bound_cells(self):
        with tempfile.TemporaryDirectory() as d:
            run = make_matrix(Path(d))
            write_csv(run / "quiet" / "summary.csv", SUMMARY_FIELDS,
                      [cell("ucx-tcp", 128, 4, 5.1, 0, 0)])
            with self.assertRaises(rr.ResultsError):
                rr.extract_serving_matrix(run, run / "quiet")

    def test_render(self):
        with tempfile.TemporaryDirectory() as d:
            run = make_matrix(Path(d))
            ctx = rr.Ctx(Path(d), "docs/results/")
            text = flat(rr.render_serving_matrix(
                {"title": "Main job", "dir": "matrix", "what": "the seed matrix",
                 "quiet_rerun": "matrix/quiet",
                 "links": [{"links": [{"label": "report", "href": "matrix/report.md"}]}]}, ctx))
        self.assertIn("(12 cells, llama3-8b shapes, roofline H100, 16/256 MiB", text)
        self.assertIn("in 3.5 min.", text)
        self.assertIn("mean TTFT at 1 req/s is within 15% of (modelled prefill", text)
        self.assertIn("in 3 of 4 cells (ratios 1.010-1.200).", text)
        self.assertIn("ucx-tcp adds up to +151 ms TTFT [110, 200] at in2048", text)
        self.assertIn("(KV transfer +125 ms [99, 152] for the same 256 MiB)", text)
        self.assertIn("in 6 of 8 usable cells (median 1.15x)", text)
        self.assertIn("4 of 12 cells are host-bound on 2 cores (2 at 16 req/s, 1 with 2048-token "
                      "prompts at 4 req/s, 1 at input <= 128 and 1-4 req/s)", text)
        self.assertIn("none at input <= 128 and 1-4 req/s on a quiet host (0 of 2 cells in a "
                      "[quiet rerun](docs/results/matrix/quiet/report.md))", text)


class GpuServingTest(unittest.TestCase):
    def test_figures(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            for layout, ipc, ucx in (("lm", [0.85, 0.55, 0.75], [27.5, 16.8, 19.4]),
                                     ("bm", [0.43, 0.45, 0.56], [1.41, 0.86, 0.99])):
                rows = [cell("cuda-ipc", 512, 1, 0.1, 0, 0)]
                for rate, a, b in zip((1, 4, 16), ipc, ucx):
                    rows.append(cell("cuda-ipc", 2048, rate, a, 0, 0, p99=8.0 + rate))
                    rows.append(cell("ucx", 2048, rate, b, 0, 0, p99=30.0 + rate))
                write_csv(root / layout / "summary.csv", SUMMARY_FIELDS, rows)
            (root / "bench.txt").write_text(
                "backend   layout       dst blocks  request       bytes    ops   time ms\n"
                "ucx       layer-major  contiguous  2048 tok    256 MiB     32     0.286     940.2\n"
                "ucx       layer-major  scattered   2048 tok    256 MiB   4096    33.059       8.1\n"
                "\ntransports used:\n  cuda-ipc  cuda_ipc (batched)\n  ucx       cuda_ipc/cuda+tcp/lo\n",
                encoding="utf-8")
            f = rr.extract_serving_gpu({"layer-major": root / "lm", "block-major": root / "bm"},
                                       root / "bench.txt", 4)
        self.assertEqual(f["prompt"], 2048)
        self.assertEqual(f["layouts"]["layer-major"]["ucx"]["kv_ms"], [27.5, 16.8, 19.4])
        self.assertEqual(f["layouts"]["block-major"]["cuda-ipc"]["ttft_p99"], 12.0)
        self.assertEqual((f["puts"], f["put_bytes"]), (4096, 65536))
        self.assertAlmostEqual(f["put_us"], 8.07, places=2)
        self.assertEqual(f["ucx_transport"], "cuda_ipc")


class KernelsTest(unittest.TestCase):
    def test_figures(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            pre = [{"kernel": "wgmma", "prompt_len": n, "ratio_to_gemm": r, "tflops": t,
                    "attention_only_tflops": a}
                   for n, r, t, a in ((512, 0.38, 304.1, 352.0), (2048, 0.58, 460.7, 479.0))]
            pre.append({"kernel": "mma.sync", "prompt_len": 512, "ratio_to_gemm": 0.2,
                        "tflops": 1.0, "attention_only_tflops": 1.0})
            dec = [{"batch": b, "kernel": k, "ratio_to_d2d_copy": x}
                   for b, k, x in ((8, "decode", 0.71), (8, "decode", 0.88), (1, "decode", 0.3),
                                   (8, "checksum", 0.9), (8, "checksum", 0.99))]
            write_json(root / "pre.json", {"device": "NVIDIA H100 80GB HBM3, sm_90",
                                           "prefill": pre, "decode": dec})
            write_json(root / "now.json", {"device": "NVIDIA H200, sm_90", "prefill": pre,
                                           "decode": dec})
            write_json(root / "peer.json", {"torch": "2.11", "rows": [
                {"backend": "flash", "prompt_len": 512, "tflops": 183.0},
                {"backend": "flash", "prompt_len": 2048, "tflops": 318.0},
                {"backend": "cudnn", "prompt_len": 512, "tflops": 336.0},
                {"backend": "cudnn", "prompt_len": 2048, "tflops": 563.0}]})
            f = rr.extract_kernels_gpu(root / "pre.json", root / "peer.json", root / "pre.json",
                                       root / "now.json")
        self.assertEqual(f["prompt_lens"], [512, 2048])
        self.assertEqual(f["tflops"], [304.1, 460.7])
        self.assertEqual(f["peers"], {"FlashAttention-2": {512: "above", 2048: "above"},
                                      "cuDNN": {512: "level", 2048: "below"}})
        self.assertEqual((f["before"]["gpu"], f["now"]["gpu"]), ("H100", "H200"))
        self.assertEqual(f["now"]["batch"], 8)
        self.assertEqual(f["now"]["decode"], (0.71, 0.88))
        self.assertEqual(f["now"]["checksum"], (0.9, 0.99))


class CpuKernelsAndLoadgenTest(unittest.TestCase):
    def test_figures(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            mock = [{"work": w, "prompt_len": n, "gbps": g, "needed_gbps": need,
                     "hidden": h, "seconds": sec, "modelled_seconds": 0.0063}
                    for w, n, g, need, h, sec in (
                        ("generate", 128, 13.3, 2.7, True, 0.001),
                        ("generate", 2048, 13.0, 6.3, True, 0.02),
                        ("verify", 128, 20.4, 2.7, True, 0.0008),
                        ("verify", 2048, 19.6, 42.8, False, 256 * rr.MIB / 19.6e9))]
            write_json(root / "k.json", {
                "threads": 2,
                "prefill": [{"ratio_to_fma_peak": 0.49}, {"ratio_to_fma_peak": 0.44}],
                "decode": [{"kernel": "decode", "ratio_to_memcpy": 0.2},
                           {"kernel": "checksum", "ratio_to_memcpy": 1.15},
                           {"kernel": "checksum", "ratio_to_memcpy": 0.64}],
                "mock": mock})
            write_json(root / "l.json", {"held_rate": 4000.0, "runs": [
                {"requested_rate": 1000.0, "achieved_to_requested": 1.01},
                {"requested_rate": 4000.0, "achieved_to_requested": 1.0002}]})
            k = rr.extract_kernels_cpu(root / "k.json")
            lg = rr.extract_loadgen(root / "l.json")
            write_json(root / "bad.json", {"prefill": []})
            with self.assertRaises(rr.ResultsError):
                rr.extract_kernels_cpu(root / "bad.json")
        self.assertEqual(k["prefill"], (0.44, 0.49))
        self.assertEqual(k["checksum"], (0.64, 1.15))  # the decode row is not the checksum pass
        self.assertEqual(k["generate_gbps"], (13.0, 13.3))
        self.assertEqual(k["longest"], 2048)
        self.assertFalse(k["longest_hidden"])
        self.assertAlmostEqual(k["longest_mib"], 256, places=6)
        self.assertAlmostEqual(k["step_ms"], 6.3)
        self.assertEqual(lg, {"held": 4000.0, "ratio": 1.0002})


def transfer_row(backend, block, batch_bytes, ratio, base_gbps, ovh, note="sweep"):
    return {"backend": backend, "block_bytes": block, "bytes_per_batch": batch_bytes,
            "ratio": ratio, "baseline_gbps": base_gbps, "overhead_us_per_batch": ovh,
            "note": note}


class TransferTest(unittest.TestCase):
    def test_figures(self):
        rows = [transfer_row("local", 16384, 16384, 0.25, 76.0, 0.7),       # latency-bound
                transfer_row("local", 262144, 4 << 20, 0.73, 23.8, 64.9),   # below, not latency
                transfer_row("local", 262144, 262144, 0.95, 38.0, 0.5),
                transfer_row("ucx/posix", 16384, 16384, 0.16, 71.0, 1.2),   # block < 64 KiB
                transfer_row("ucx/posix", 262144, 262144, 0.815, 39.0, 1.5),
                transfer_row("ucx/posix", 4 << 20, 4 << 20, 0.98, 12.0, 8.5),
                transfer_row("ucx/posix", 2 << 20, 256 << 20, 0.857, 8.5, 5227.0,
                             "request-2048")]
        summary = {
            "local_vs_memcpy": {"median": 0.9362, "rows": 3, "rows_below_target": 2,
                                "below_latency_bound": 1, "target": 0.8},
            "ucx_posix_vs_perftest_64k": {"median": 0.9848, "rows": 3, "rows_below_target": 2,
                                          "below_latency_bound": 0, "target": 0.9},
            "request_layer_vs_block": {"local": {"ratio": 0.9887},
                                       "ucx/posix": {"ratio": 1.0406}}}
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "t.json"
            write_json(path, {"rows": rows, "summary": summary})
            f = rr.extract_transfer_cpu(path)
            self.assertEqual(f["local"]["latency_bound_sizes"], [16384])
            self.assertEqual(f["ucx_posix"]["below_range"], (0.815, 0.857))
            self.assertEqual(f["request_bytes"], 256 << 20)
            text = flat(rr.render_transfer_cpu(
                {"title": "KV transfer", "command": "pdserve bench transfer", "file": "t.json",
                 "note": "medians", "links": []}, rr.Ctx(Path(d), "")))
            self.assertIn("(2 of 3 rows below 0.8x, 1 of them 16 KiB batches bound by latency)",
                          text)
            self.assertIn("(2 of 3 rows below 0.9x, at 0.81–0.86x)", text)
            self.assertIn("A layer-major 256 MiB request moves at 0.99x (local) and 1.04x", text)
            # A summary that disagrees with its rows is an error, not a figure.
            summary["local_vs_memcpy"]["rows_below_target"] = 1
            write_json(path, {"rows": rows, "summary": summary})
            with self.assertRaises(rr.ResultsError):
                rr.extract_transfer_cpu(path)


TRIAL_FIELDS = ["trial", "transfer", "fault", "serving_again_s"]


def make_fault_run(root: Path, name: str, requests: int, max_s: float) -> None:
    trials = []
    for i, (transfer, fault, s) in enumerate([("local", "kill-prefill", 0.7),
                                              ("local", "term-decode", 0.9),
                                              ("ucx", "kill-decode", 0.9),
                                              ("ucx", "stop-prefill", 0.02)]):
        trials.append({"trial": i, "transfer": transfer, "fault": fault, "serving_again_s": s})
    write_csv(root / name / "trials.csv", TRIAL_FIELDS, trials)
    write_json(root / name / "results.json", {"pass": True, "totals": {
        "trials": 4, "requests": requests, "verified": requests - 10, "clean_errors": 10,
        "wrong_tokens": 0, "never_ended": 0, "failed_elsewhere": 0, "leaked_blocks": 0,
        "leftover_segments": 0, "recovered_within_5s": 4, "recovery_max_s": max_s}})
    (root / name / "README.md").write_text("#\n", encoding="utf-8")


class FaultsTest(unittest.TestCase):
    def test_figures_and_text(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            make_fault_run(root, "a", 1000, 1.45)
            make_fault_run(root, "b", 2000, 1.38)
            f = rr.extract_fault_run(root / "a")
            self.assertEqual(f["per_transfer"], {"local": 2, "ucx": 2})
            self.assertEqual(f["recover"], {"kill": [0.7, 0.9], "term": [0.9]})
            self.assertTrue(f["all_verified"])
            text = flat(rr.render_faults(
                {"title": "Faults", "command": "pdserve bench faults", "issue": "issue-16",
                 "runs": ["a", "b"], "runs_note": "each after fixes",
                 "shown": [{"dir": "a", "label": "first"}, {"dir": "b", "label": "second"}]},
                rr.Ctx(root, "")))
        self.assertIn("4 trials a run, 2 local + 2 ucx, every token verified; two runs", text)
        self.assertIn("every issue-16 target met in both: 0 wrong tokens in 1,000 and 2,000 "
                      "requests", text)
        self.assertIn("(4 of 4, max 1.45 s and 1.38 s; kill -9 ~0.8 s, SIGTERM ~0.9 s)", text)


COLOCATED_FIELDS = ["pd_backend", "input_len", "output_len", "request_rate", "ttft_p50_ratio",
                    "ttft_p50_ratio_lo", "ttft_p50_ratio_hi", "tpot_p50_ratio", "comparable"]


class ColocatedTest(unittest.TestCase):
    def test_figures(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            row = {"output_len": 64, "request_rate": 1, "comparable": 1}
            write_csv(root / "a" / "colocated_ratios.csv", COLOCATED_FIELDS, [
                dict(row, pd_backend="local", input_len=512, ttft_p50_ratio=1.104,
                     ttft_p50_ratio_lo=1.071, ttft_p50_ratio_hi=1.19, tpot_p50_ratio=1.006),
                dict(row, pd_backend="local", input_len=2048, ttft_p50_ratio=1.5,
                     ttft_p50_ratio_lo=1.4, ttft_p50_ratio_hi=1.6, tpot_p50_ratio=1.0,
                     comparable=0),  # host-bound: left out
                dict(row, pd_backend="ucx-posix", input_len=512, ttft_p50_ratio=1.2,
                     ttft_p50_ratio_lo=1.17, ttft_p50_ratio_hi=1.26, tpot_p50_ratio=0.99)])
            (root / "a" / "report.md").write_text("#\n", encoding="utf-8")
            f = rr.extract_colocated(root / "a")
            self.assertEqual([r["input"] for r in f["local"]], [512])
            text = flat(rr.render_colocated(
                {"title": "P/D against colocated", "command": "pdserve bench",
                 "runs": [{"dir": "a", "label": "run a"}]}, rr.Ctx(root, "")))
        self.assertIn("at 1 req/s (95% CI): local in512 1.10x [1.07, 1.19]; ucx-posix in512 "
                      "1.20x [1.17, 1.26]; TPOT p50 ratio 0.99–1.01x.", text)


class HttpTest(unittest.TestCase):
    def test_figures(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            api = {"completed": 1000, "failed": 0, "verify_mismatches": 0}
            write_json(root / "c.json", {"compare": {
                "ttft_p50_diff_ms": 0.1342, "ttft_p50_diff_ci95_ms": [0.0222, 0.2497],
                "target_diff_ms": 0.3, "target_met": True, "concurrent": True,
                "grpc": api, "http": api}})
            write_json(root / "s.json", {"streams": {
                "streams": 2000, "peak_open_streams": 2000, "failed": 0, "verify_mismatches": 0,
                "router_threads_peak": 43}})
            write_json(root / "old.json", {"streams": {"router_threads_peak": 2025}})
            f = rr.extract_http(root / "c.json", root / "s.json", root / "old.json")
        self.assertEqual(f["requests"], 2000)
        self.assertTrue(f["verified"])
        self.assertEqual((f["threads"], f["threads_before"]), (43, 2025))
        self.assertEqual(f["ci"], (0.0222, 0.2497))


README = """# x

## Results so far

<!-- results:begin -->
old text
<!-- results:end -->

## Known gaps
"""


class CheckTest(unittest.TestCase):
    """The whole path: manifest -> section -> README, and --check on a hand edit."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        root = Path(self.tmp.name)
        self.results = root / "docs" / "results"
        make_fault_run(self.results, "a", 1000, 1.45)
        self.manifest = {
            "intro": "All from runs in [docs/results/]({results}).",
            "entries": [{"kind": "faults", "title": "Faults", "command": "pdserve bench faults",
                         "issue": "issue-16", "runs": ["a"], "runs_note": "each after fixes",
                         "shown": [{"dir": "a", "label": "only"}]}]}
        write_json(self.results / "index.json", self.manifest)
        self.readme = root / "README.md"
        self.readme.write_text(README, encoding="utf-8")

    def tearDown(self):
        self.tmp.cleanup()

    def run_main(self, *args):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            rc = rr.main(["--readme", str(self.readme), "--results", str(self.results), *args])
        return rc, out.getvalue()

    def test_write_then_check_then_hand_edit(self):
        self.assertEqual(self.run_main("--check")[0], 1)
        self.assertEqual(self.run_main()[0], 0)
        text = self.readme.read_text(encoding="utf-8")
        self.assertIn("0 wrong tokens in 1,000 requests", flat([text]))
        self.assertIn("1,000 requests", text)
        self.assertTrue(text.startswith("# x\n\n## Results so far\n\n<!-- results:begin"))
        self.assertTrue(text.endswith("<!-- results:end -->\n\n## Known gaps\n"))
        self.assertEqual(self.run_main("--check"), (0, ""))
        self.readme.write_text(text.replace("1,000 requests", "1,001 requests"), encoding="utf-8")
        rc, out = self.run_main("--check")
        self.assertEqual(rc, 1)
        self.assertIn("-", out)
        self.assertIn("+", out)
        self.assertIn("1,001 requests", out)
        self.assertIn("python3 scripts/results_readme.py", out)

    def test_result_file_change_is_caught(self):
        self.run_main()
        make_fault_run(self.results, "a", 1234, 1.45)
        rc, out = self.run_main("--check")
        self.assertEqual(rc, 1)
        self.assertIn("+", out)
        self.assertIn("1,234", out)

    def test_missing_markers(self):
        self.readme.write_text("# x\n", encoding="utf-8")
        self.assertEqual(self.run_main("--check")[0], 2)

    def test_manifest_may_not_hold_figures(self):
        self.manifest["entries"][0]["runs_note"] = "each after fixes (max 1.2 s)"
        write_json(self.results / "index.json", self.manifest)
        rc, out = self.run_main("--check")
        self.assertEqual(rc, 2)
        self.assertIn("holds a figure", out)

    def test_links_must_exist(self):
        self.manifest["entries"][0]["shown"][0]["dir"] = "missing"
        write_json(self.results / "index.json", self.manifest)
        self.assertEqual(self.run_main("--check")[0], 2)


class HelpersTest(unittest.TestCase):
    def test_wrap_keeps_figures_and_links_whole(self):
        text = ("word " * 17 + "+164 ms TTFT [132, 201] and [a long link label](x/y.md) "
                "and kill -9 ~0.8 s")
        for line in rr.wrap_bullet(text, 2):
            self.assertLessEqual(len(line), rr.WIDTH + 40)
        joined = "\n".join(rr.wrap_bullet(text, 2))
        for piece in ("+164 ms", "[132, 201]", "[a long link label](x/y.md)", "kill -9",
                      "~0.8 s"):
            self.assertIn(piece, joined)

    def test_formatting(self):
        self.assertEqual(rr.frange(0.426875, 0.847875, 1), "0.4–0.8")
        self.assertEqual(rr.frange(1.0045, 1.0490, 3, "-"), "1.004-1.049")
        self.assertEqual(rr.frange(2.0, 2.04, 1), "2.0")
        self.assertEqual(rr.size_label(65536), "64 KiB")
        self.assertEqual(rr.size_label(256 << 20), "256 MiB")
        self.assertEqual(rr.join_and(["a", "b", "c"]), "a, b and c")
        self.assertEqual(rr.gpu_name("NVIDIA H200, sm_90"), "H200")


if __name__ == "__main__":
    unittest.main()
