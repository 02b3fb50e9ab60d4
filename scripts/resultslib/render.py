"""The renderers of scripts/results_readme.py: one manifest entry -> its lines of the README
section, every figure from the entry's extractor."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from .common import (ResultsError, frange, join_and, md_link, signed, size_label, words,
                     wrap_bullet)
from .extract import (extract_colocated, extract_fault_run, extract_http, extract_kernels_cpu, extract_kernels_gpu,
                      extract_loadgen, extract_serving_gpu, extract_serving_matrix,
                      extract_transfer_cpu)

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
    if f["alone_cells"]:
        rs = f["rates"]
        low = frange(rs[0], rs[-2], 0, "-") if len(rs) > 1 else f"{rs[0]:g}"
        out += wrap_bullet(
            f"Serving KV transfer, the transfers that ran alone (as the microbenchmark's do), "
            f"within 1.5x of the same-run microbenchmark in {f['alone_within']} of "
            f"{f['alone_cells']} usable cells (median {f['alone_median']:.2f}x; at {low} req/s "
            f"{f['alone_low_within']} of {f['alone_low_cells']}); every transfer: "
            f"{f['xfer_within']} of {f['xfer_cells']} (median {f['xfer_median']:.2f}x).", 2)
    else:
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


def render_colocated(e: dict, ctx: Ctx) -> list[str]:
    """One bullet per run: every P/D backend's TTFT p50 / colocated per prompt length."""
    out = wrap_bullet(f"**{e['title']}** (`{e['command']}`):", 0)
    for run in e["runs"]:
        f = extract_colocated(ctx.path(run["dir"]))
        parts = []
        for backend, rows in f.items():
            cells = ", ".join(f"in{r['input']} {r['ttft']:.2f}x [{r['lo']:.2f}, {r['hi']:.2f}]"
                              for r in rows)
            parts.append(f"{backend} {cells}")
        tpot = [r["tpot"] for rows in f.values() for r in rows]
        rates = sorted({r["rate"] for rows in f.values() for r in rows})
        rate = join_and([f"{x:g}" for x in rates])
        out += wrap_bullet(
            f"{ctx.link(run['label'], run['dir'] + '/report.md')}: P/D TTFT p50 / colocated at "
            f"{rate} req/s (95% CI): {'; '.join(parts)}; TPOT p50 ratio "
            f"{frange(min(tpot), max(tpot), 2)}x.", 2)
    return out


RENDERERS = {
    "colocated": render_colocated,
    "serving-matrix": render_serving_matrix,
    "serving-gpu": render_serving_gpu,
    "kernels-gpu": render_kernels_gpu,
    "transfer-cpu": render_transfer_cpu,
    "faults": render_faults,
    "http": render_http,
    "kernels-cpu": render_kernels_cpu,
    "loadgen": render_loadgen,
}
