"""One run of each compared method at the paper's 50 epochs (DisentangledSSL 50 + 50), seed 0,
per learning rate: its training time on this machine (to size ``bench_convergence.sh``), its
per-epoch loss, and its test-split probes of the modality-1 specific code. A reference for the
budget of the comparison: run with the settings of ``dssl compare`` (same data, split, seed and
estimator), so its numbers are those a 50-epoch ``dssl compare`` would give for seed 0.

Settings: DisentangledSSL β = 0.1, λ = 0.1; JointOpt and FOCAL a = 1, λ = 0.1; DMVAE a = 1e-5.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_convergence_timing.py \\
        --epochs 50 --lrs 1e-4,1e-3 --out benchmarks/results/convergence/epochs50_seed0.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from disentangled_ssl import DisentangledSSL, linear_probe, make_synthetic
from disentangled_ssl.experiments.compare import dmvae_diagnostics

SETTINGS = {
    "disentangled_ssl": {"beta": 0.1, "lam": 0.1},
    "joint": {"alpha": 1.0, "lam": 0.1},
    "focal": {"alpha": 1.0, "lam": 0.1},
    "dmvae": {"alpha": 1e-5},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--lrs", default="1e-4,1e-3")
    parser.add_argument("--methods", default=",".join(SETTINGS))
    parser.add_argument("--n-samples", type=int, default=20000)
    parser.add_argument("--out", default="benchmarks/results/convergence/epochs50_seed0.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = make_synthetic(n_samples=args.n_samples, seed=0)
    train, test = data.split(0.2, seed=0)
    runs = []
    for lr in (float(v) for v in args.lrs.split(",")):
        for method in args.methods.split(","):
            budget = ({"shared_epochs": args.epochs, "specific_epochs": args.epochs}
                      if method == "disentangled_ssl" else {"epochs": args.epochs})
            est = DisentangledSSL(method=method, lr=lr, random_state=0, device="cpu",
                                  verbose=False, **SETTINGS[method], **budget)
            load = os.getloadavg()[0]
            tic = time.perf_counter()
            est.fit(train.x1, train.x2)
            seconds = time.perf_counter() - tic
            tr, te = est.transform(train.x1, train.x2), est.transform(test.x1, test.x2)
            probe = linear_probe(tr.specific1, train.labels, te.specific1, test.labels)
            run = {"method": method, "lr": lr, "settings": SETTINGS[method], **budget,
                   "train_seconds": round(seconds, 1), "load_at_start": load,
                   "specific1": probe,
                   "loss": {stage: [round(h["loss"], 5) for h in hist]
                            for stage, hist in est.history_.items()}}
            if method == "dmvae":
                run["dmvae_test"] = dmvae_diagnostics(est, test)
            runs.append(run)
            print(f"{method} lr={lr:g}: {seconds:.0f} s, specific1 "
                  + ", ".join(f"{k} {v:.3f}" for k, v in probe.items()), flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump({"n_samples": args.n_samples, "epochs": args.epochs, "seed": 0,
                   "cpu_count": os.cpu_count(), "runs": runs}, fh, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
