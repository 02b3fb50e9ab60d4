#!/usr/bin/env python3
"""Regenerate README.md's "Results so far" section from the committed runs in docs/results/.

    python3 scripts/results_readme.py           # rewrite the section in README.md
    python3 scripts/results_readme.py --check   # exit 1 with a diff if README.md differs
    python3 scripts/results_readme.py --print   # write the section to stdout

The section is the text between `<!-- results:begin ... -->` and `<!-- results:end -->` in
README.md. It is never edited by hand: change a run's files or docs/results/index.json and
run this script. Python 3 standard library only; docs tooling, never on the serving path.
This file is the command line and the manifest check; the file readers, extractors and
renderers are in scripts/resultslib/.

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
    are not host-bound; target <= 1.5x) and, where the column exists,
    `mean_kv_transfer_alone_ms` (the same over the transfers that ran alone: the figure the
    target is held to; "low" rates are all but the highest);
  - report.md, the table under "## Backends against <baseline>" (the one table the report
    writes with bootstrap intervals; they are not recomputed here): a row whose verdict starts
    with "excluded" is not comparable; "differs" rows count as higher or lower by the sign of
    the TTFT difference; the largest is the "differs" row with the largest |difference|;
  - `quiet_rerun` (a sub-folder's summary.csv): host-bound cells at the lower inputs and rates
    of the full run that were run again on a quiet host.
  Host-bound cells are grouped as: at the highest rate; at the longest prompt (other rates);
  the rest ("at input <= <second-longest> and <lower rates>").

colocated (`pdserve bench` with the backend `colocated`): each run folder's
  colocated_ratios.csv, comparable rows only: P/D TTFT p50 / colocated with its 95% interval
  per P/D backend and prompt length, and the range of the TPOT p50 ratios.

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
import difflib
import re
import sys
from pathlib import Path

# The modules beside this script (scripts/resultslib/), also when it is loaded by path (the
# unit test); no __pycache__ left in the source tree.
sys.dont_write_bytecode = True
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

# Everything the section is made of, re-exported here for callers of this module (the unit test).
from resultslib.common import (  # noqa: E402,F401
    MIB, NUMBER_WORDS, WIDTH, ResultsError, fnum, frange, join_and, markdown_table, md_link, num,
    read_csv, read_json, read_text, signed, size_label, words, wrap, wrap_bullet)
from resultslib.extract import (  # noqa: E402,F401
    extract_backend_differences, extract_colocated, extract_fault_run, extract_http, extract_kernels_cpu,
    extract_kernels_gpu, extract_loadgen, extract_serving_gpu, extract_serving_matrix,
    extract_transfer_cpu, gpu_name)
from resultslib.render import (  # noqa: E402,F401
    RENDERERS, Ctx, render_colocated, render_faults, render_http, render_kernels_cpu, render_kernels_gpu,
    render_loadgen, render_serving_gpu, render_serving_matrix, render_transfer_cpu)

BEGIN_PREFIX = "<!-- results:begin"
BEGIN = ("<!-- results:begin: generated by scripts/results_readme.py from docs/results/index.json;"
         " do not edit by hand -->")
END = "<!-- results:end -->"

# A measured figure written by hand in the manifest: a number with a unit, or a ratio.
FIGURE_RE = re.compile(
    r"(?<![\w.-])[+-]?\d[\d,]*(\.\d+)?\s*(x\b|%|ms\b|µs\b|us\b|s\b|min\b|GB/s|MiB\b|GiB\b|KiB\b|"
    r"TFLOP/s|req/s)")

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
