#!/usr/bin/env python3
"""Matrix-product GFLOP/s with numpy, on the shapes `pocketlm bench kernels` uses.

Prints one JSON object per line, {"backend": "numpy", "threads", "op", "shape", "gflops"},
the same lines runKernelBench prints for its own backends, so ratios come from one run.
Timing matches src/kernels/bench.ts: one warm-up call, then repeat until --seconds elapse.

  python3 scripts/numpy-matmul-bench.py --threads 2 --shapes '[["nn",2048,576,192]]'

With --serve it reads one shape per stdin line and answers with one line each, so a caller
can alternate numpy and its own backend shape by shape (fairer on a busy machine).

Each shape is [form, M, N, K]: op(A) is M x K, op(B) is K x N, form nn / tn / nt says which
operand is stored transposed (numpy hands the transposed view to BLAS without a copy).
"""
import argparse
import json
import os
import sys
import time


def default_shapes():
    """The model shapes (see modelGemmShapes in src/kernels/wasm/measure.ts)."""
    out = []
    for rows in (512, 2048):
        for d in (128, 192, 256, 384):
            vocab = 1024 if d <= 128 else 2048 if d <= 256 else 4096
            for k, n in ((d, 3 * d), (d, d), (d, 8 * d), (4 * d, d), (d, vocab)):
                out += [["nn", rows, n, k], ["tn", k, n, rows], ["nt", rows, k, n]]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=0.2)
    ap.add_argument("--shapes", help="JSON list of [form, M, N, K]; default: the model shapes")
    ap.add_argument("--serve", action="store_true", help="read [form, M, N, K] lines from stdin, answer each")
    args = ap.parse_args()
    # OpenBLAS reads its thread count when numpy loads it: set it before the import.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np

    if args.serve:
        for line in sys.stdin:
            if line.strip():
                print(json.dumps(measure(np, args, *json.loads(line))), flush=True)
        return 0
    shapes = json.loads(args.shapes) if args.shapes else default_shapes()
    for form, M, N, K in shapes:
        print(json.dumps(measure(np, args, form, M, N, K)), flush=True)
    return 0


def measure(np, args, form, M, N, K):
    """One shape: the same JSON object runKernelBench emits for its own backends."""
    vals = lambda n, salt: ((np.arange(n, dtype=np.float64) + salt) * 7919 % 1000 / 1000 - 0.5).astype(np.float32)
    # Stored layouts as in the TypeScript bench: transposed operands are stored K x M / N x K.
    a = vals(M * K, 1).reshape((K, M) if form == "tn" else (M, K))
    b = vals(K * N, 2).reshape((N, K) if form == "nt" else (K, N))
    opa = a.T if form == "tn" else a
    opb = b.T if form == "nt" else b
    c = np.empty((M, N), dtype=np.float32)
    np.matmul(opa, opb, out=c)  # warm-up
    reps = 0
    t0 = time.perf_counter()
    while True:
        np.matmul(opa, opb, out=c)
        reps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= args.seconds:
            break
    gflops = 2.0 * M * N * K / (elapsed / reps) / 1e9
    return {"backend": "numpy", "threads": args.threads, "op": "gemm-" + form, "shape": f"{M}x{N}x{K}", "gflops": gflops}


if __name__ == "__main__":
    sys.exit(main())
