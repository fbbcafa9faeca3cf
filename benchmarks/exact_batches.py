"""Exact CURL scoring on a CPU: wall time against the size of a batch of masked copies.

Exact scoring runs one masked forward pass per unit, ``k`` masks at a time, ``k`` set by an
activation budget in floats (``edgekit.compress.curl.ACTIVATION_BUDGET``; a CUDA device uses a
quarter of its free memory instead). This times :func:`edgekit.compress.curl.kl_scores` of one
checkpoint on its own proxy set for each budget given, in the order given (repeat one to see the
run-to-run spread), and checks that every budget gives the same scores (batching must not change
them).

    python benchmarks/exact_batches.py CKPT PROXY BUDGET_M [BUDGET_M ...]   # budgets in millions of floats
"""
from __future__ import annotations

import sys
import time

import torch

from edgekit.checkpoint import load_checkpoint
from edgekit.compress import curl
from edgekit.compress.prune import curl_readout, proxy_set
from edgekit.compress.units import UnitGraph


def main() -> None:
    path, proxy, budgets = sys.argv[1], int(sys.argv[2]), [float(b) for b in sys.argv[3:]]
    torch.set_num_threads(torch.get_num_threads())
    ck = load_checkpoint(path)
    x, _, _ = proxy_set(ck.load_data(), ck.eval_transform, proxy, 0)
    model = ck.model.eval()
    graph = UnitGraph(model, x[:1])
    ref = None
    for b in budgets:
        t0 = time.perf_counter()
        scores = curl.kl_scores(model, graph, x, progress=False, readout=curl_readout(None), budget=int(b * 2 ** 20))
        seconds = time.perf_counter() - t0
        flat = torch.cat([scores[k] for k in sorted(scores)])
        ref = flat if ref is None else ref
        diff = ((flat - ref).abs() / ref.abs().clamp_min(1e-12)).max().item()
        print(f"{ck.arch} proxy {proxy}: budget {b:g} M floats: {seconds:.1f} s (max relative score difference "
              f"to the first budget {diff:.1e})", flush=True)


if __name__ == "__main__":
    main()
