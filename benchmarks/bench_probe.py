"""Evaluation time: embedding (``transform``) and linear probes of one fitted model.

The paper's figure probes every trained model: the shared code (shared1 ‖ shared2, 200
features) after step 1 and specific1 / specific2 (100 features each) after step 2, each on three
labels (yc, y1, y2) with a logistic regression on the 80/20 split. This times those pieces for
one model at a given data size, so that ``bench_end_to_end.py`` can tell how much of a sweep is
training and how much is evaluation.

Usage::

    python benchmarks/bench_probe.py                         # n = 20000, ~30 s
    python benchmarks/bench_probe.py --n-samples 90000       # the paper's size

Writes ``benchmarks/results/probe.json``.
"""

from __future__ import annotations

import argparse
import time

from _common import (
    add_common_args,
    fmt,
    machine_info,
    set_threads,
    summary,
    write_json,
)

from disentangled_ssl import DisentangledSSL, linear_probe, make_synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, n_samples=20000, epochs=1, repeats=3)
    args = parser.parse_args()
    set_threads(args.threads)
    machine = machine_info()
    tic = time.perf_counter()
    train, test = make_synthetic(n_samples=args.n_samples, seed=0).split(0.2, seed=0)
    generate_s = time.perf_counter() - tic
    est = DisentangledSSL(shared_epochs=args.epochs, specific_epochs=args.epochs, random_state=0,
                          device="cpu", verbose=False).fit(train.x1, train.x2)
    times: dict[str, list[float]] = {"transform_s": [], "probe_shared_s": [],
                                      "probe_specific1_s": [], "probe_specific2_s": []}
    accuracy: dict[str, dict[str, float]] = {}
    for rep in range(args.repeats):
        tic = time.perf_counter()
        tr, te = est.transform(train.x1, train.x2), est.transform(test.x1, test.x2)
        times["transform_s"].append(time.perf_counter() - tic)
        for rep_name in ("shared", "specific1", "specific2"):
            tic = time.perf_counter()
            accuracy[rep_name] = linear_probe(getattr(tr, rep_name), train.labels,
                                              getattr(te, rep_name), test.labels)
            times[f"probe_{rep_name}_s"].append(time.perf_counter() - tic)
        print(f"repeat {rep + 1}/{args.repeats}: " + ", ".join(
            f"{k} {v[-1]:.2f}" for k, v in times.items()), flush=True)
    stats = {k: summary(v) for k, v in times.items()}
    per_step1 = stats["transform_s"]["median"] / 2 + stats["probe_shared_s"]["median"]
    per_step2 = (stats["transform_s"]["median"] + stats["probe_specific1_s"]["median"]
                 + stats["probe_specific2_s"]["median"])
    payload = {
        "benchmark": "probe",
        "settings": {"n_samples": args.n_samples, "n_train": len(train.x1),
                     "n_test": len(test.x1), "repeats": args.repeats,
                     "probe": "StandardScaler + LogisticRegression(lbfgs, max_iter=1000), "
                              "3 labels"},
        "machine": machine,
        "results": {**stats, "generate_data_s": round(generate_s, 3),
                    "evaluation_per_step1_run_s": round(per_step1, 3),
                    "evaluation_per_step2_run_s": round(per_step2, 3),
                    "accuracy": accuracy},
    }
    for k, v in stats.items():
        print(f"{k}: {fmt(v, ' s', digits=2)}")
    print(f"evaluation per step-1 run ≈ {per_step1:.2f} s, per step-2 run ≈ {per_step2:.2f} s "
          f"(n = {args.n_samples})")
    write_json("probe", payload, args.out)


if __name__ == "__main__":
    main()
