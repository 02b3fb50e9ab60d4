#!/usr/bin/env python3
"""Peer reference for `pdserve bench kernels --device cuda`: PyTorch's causal GQA
scaled_dot_product_attention on the same llama3-8b shapes (32 query heads, 8 KV heads, head dim
128, bf16, all 32 layers as one batch), timed with CUDA events, FLOPs counted as pdserve counts
them (the causal triangle). Optional: needs torch on a CUDA machine; never on the serving path.

    python3 bench/peers/torch_sdpa.py [--lens 512 2048 8192] [--json out.json]
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def causal_flops(n, heads=32, layers=32, dim=128):
    return 4.0 * n * (n + 1) / 2.0 * dim * heads * layers


def time_ms(fn, iters):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lens", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    print(f"peer: torch {torch.__version__} on {torch.cuda.get_device_name()}")
    rows = []
    for n in args.lens:
        q = torch.randn(args.layers, 32, n, 128, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(args.layers, 8, n, 128, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(args.layers, 8, n, 128, device="cuda", dtype=torch.bfloat16)
        for name, backend in [("flash", SDPBackend.FLASH_ATTENTION),
                              ("cudnn", SDPBackend.CUDNN_ATTENTION)]:
            try:
                with sdpa_kernel([backend]):
                    ms = time_ms(lambda: F.scaled_dot_product_attention(
                        q, k, v, is_causal=True, enable_gqa=True), args.iters)
            except Exception as e:  # a backend this torch build or GPU lacks
                print(f"peer  {name:6s} {n:6d} tokens  unavailable: {str(e).splitlines()[0][:80]}")
                continue
            tflops = causal_flops(n, layers=args.layers) / (ms * 1e-3) / 1e12
            print(f"peer  {name:6s} {n:6d} tokens  {ms:9.3f} ms  {tflops:7.1f} TFLOP/s")
            rows.append({"backend": name, "prompt_len": n, "ms": ms, "tflops": tflops})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "device": torch.cuda.get_device_name(),
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
