"""float32 vs bf16 mixed precision: training throughput and probe accuracies side by side.

Fits DisentangledSSL (step 1 then step 2, β = 1, λ = 1) twice per repeat on the same data and
seed, once in float32 and once with ``bf16=True`` (``torch.autocast`` with bfloat16 for the
forward passes; weights, gradients, Adam and vMF sampling stay float32), and reports the
loop's samples/s per step and the test-split linear-probe accuracies of the shared and
specific representations for both. On CPUs the gain depends on bf16 instructions
(AVX512-BF16 / AMX); on GPUs on bf16 tensor cores.

Usage::

    python benchmarks/bench_precision.py                          # ~1 min on 2 cores
    python benchmarks/bench_precision.py --n-samples 90000 --epochs 50 --specific-epochs 30

Writes ``benchmarks/results/precision.json``.
"""

from __future__ import annotations

import argparse

from _common import add_common_args, machine_info, set_threads, summary, write_json

from disentangled_ssl import DisentangledSSL, make_synthetic
from disentangled_ssl.evaluation.probe import linear_probe


def one_run(train, test, epochs: int, specific_epochs: int, seed: int, bf16: bool) -> dict:
    est = DisentangledSSL(beta=1.0, lam=1.0, shared_epochs=epochs,
                          specific_epochs=specific_epochs, random_state=seed, device="cpu",
                          verbose=False, bf16=bf16).fit(train.x1, train.x2)
    out: dict = {}
    for stage, step in (("shared", 1), ("specific", 2)):
        history = est.history_[stage]
        rows = (len(train.x1) // est.batch_size) * est.batch_size
        out[f"step{step}_samples_per_s"] = rows * len(history) / sum(
            r["seconds"] for r in history)
    tr, te = est.transform(train.x1, train.x2), est.transform(test.x1, test.x2)
    for rep in ("shared", "specific1", "specific2"):
        scores = linear_probe(getattr(tr, rep), train.labels, getattr(te, rep), test.labels)
        for label, acc in scores.items():
            out[f"{rep}_{label}"] = acc
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, n_samples=20000, epochs=5, repeats=1)
    parser.add_argument("--specific-epochs", type=int, default=None,
                        help="step-2 epochs (default: --epochs)")
    args = parser.parse_args()
    set_threads(args.threads)
    machine = machine_info()
    train, test = make_synthetic(n_samples=args.n_samples, seed=0).split(0.2, seed=0)
    specific_epochs = args.specific_epochs if args.specific_epochs is not None else args.epochs
    runs: dict[str, list[dict]] = {"float32": [], "bf16": []}
    for rep in range(args.repeats):
        for name in ("float32", "bf16"):  # interleaved: both see the same machine state
            result = one_run(train, test, args.epochs, specific_epochs, rep, name == "bf16")
            runs[name].append(result)
            print(f"repeat {rep + 1} {name}: step 1 {result['step1_samples_per_s']:,.0f} /s, "
                  f"step 2 {result['step2_samples_per_s']:,.0f} /s; shared yc/y1/y2 "
                  f"{result['shared_yc']:.3f}/{result['shared_y1']:.3f}/"
                  f"{result['shared_y2']:.3f}; specific1 y1/yc/y2 "
                  f"{result['specific1_y1']:.3f}/{result['specific1_yc']:.3f}/"
                  f"{result['specific1_y2']:.3f}", flush=True)
    stats = {name: {k: summary([r[k] for r in rs]) for k in rs[0]} for name, rs in runs.items()}
    for k in (1, 2):
        ratio = (stats["bf16"][f"step{k}_samples_per_s"]["median"]
                 / stats["float32"][f"step{k}_samples_per_s"]["median"])
        print(f"step {k}: bf16 / float32 throughput ×{ratio:.2f}")
    gaps = {k: abs(stats["bf16"][k]["median"] - stats["float32"][k]["median"])
            for k in stats["float32"] if "samples" not in k}
    print(f"largest probe-accuracy difference: {max(gaps.values()):.4f} "
          f"({max(gaps, key=gaps.__getitem__)})")
    write_json("precision", {
        "benchmark": "precision",
        "settings": {"n_samples": args.n_samples, "shared_epochs": args.epochs,
                     "specific_epochs": specific_epochs, "repeats": args.repeats,
                     "beta": 1.0, "lam": 1.0},
        "machine": machine, "results": stats, "probe_gaps": gaps,
    }, args.out)


if __name__ == "__main__":
    main()
