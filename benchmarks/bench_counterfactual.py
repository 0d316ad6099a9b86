"""Counterfactuals against the truth on the paper's synthetic generator.

Fits DisentangledSSL with decoders (``decoder_epochs``) on the 80 % training split, then on
the 20 % test split pairs every row ``a`` with a random other row ``b`` and scores
``est.counterfactual(specific_from=a, shared_from=b)`` against the generator's true
counterfactual ``[Z1_a, Zs_b]·T1`` (``[Z2_a, Zs_b]·T2`` for modality 2,
:func:`~disentangled_ssl.data.synthetic.true_counterfactual`) with the variance-weighted R²
(:func:`~disentangled_ssl.evaluation.counterfactual_r2`). Beside it: the two
trivial answers (keep ``x_a``; copy ``x_b``: both ≈ 0, each gets one of the two halves
right), the reconstruction (``shared_from = specific_from``, scored against ``x_a``: the
ceiling the decoders reach on these codes), and cross-modal prediction
(``predict_modality``) against the best possible answer ``E[x_j | x_i] = [0, Zs]·T_j``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_counterfactual.py   # n = 20000, ~2 min

Writes ``benchmarks/results/counterfactual.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import machine_info, set_threads, write_json

from disentangled_ssl import DisentangledSSL, make_synthetic
from disentangled_ssl.data.synthetic import true_counterfactual
from disentangled_ssl.evaluation import counterfactual_r2


def conditional_mean(data, j: int) -> np.ndarray:
    """``E[x_j | x_other] = [0, Zs]·T_j``: the private latent at its mean (0), the shared one
    known exactly (the mixing is invertible)."""
    zs = data.latents["zs"].astype(np.float64)
    private = np.zeros((len(data), data.latents[f"z{j}"].shape[1]))
    return (np.concatenate([private, zs], axis=1) @ data.mixing[f"t{j}"]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-samples", type=int, default=20000)
    parser.add_argument("--shared-epochs", type=int, default=5)
    parser.add_argument("--specific-epochs", type=int, default=5)
    parser.add_argument("--decoder-epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    set_threads(args.threads)
    machine = machine_info()

    data = make_synthetic(n_samples=args.n_samples, seed=args.seed)
    train, test = data.split(test_fraction=0.2, seed=0)
    settings = {"shared_epochs": args.shared_epochs, "specific_epochs": args.specific_epochs,
                "decoder_epochs": args.decoder_epochs, "random_state": args.seed}
    tic = time.perf_counter()
    est = DisentangledSSL(**settings, verbose=False).fit([train.x1, train.x2])
    fit_seconds = time.perf_counter() - tic

    a = np.arange(len(test))
    b = np.random.default_rng(args.seed).permutation(len(test))
    truth = true_counterfactual(test, a, b)
    xa, xb = [test.x1[a], test.x2[a]], [test.x1[b], test.x2[b]]
    answers = {
        "counterfactual": est.counterfactual(specific_from=xa, shared_from=xb),
        "keep_a": xa,
        "copy_b": xb,
    }
    r2 = {name: [counterfactual_r2(p, t) for p, t in zip(pred, truth)]
          for name, pred in answers.items()}
    recon = est.counterfactual(specific_from=xa, shared_from=xa)
    r2["reconstruction"] = [counterfactual_r2(p, t) for p, t in zip(recon, xa)]
    cross = {"1->2": est.predict_modality(test.x1, source=1, target=2),
             "2->1": est.predict_modality(test.x2, source=2, target=1)}
    best = {"1->2": conditional_mean(test, 2), "2->1": conditional_mean(test, 1)}
    observed = {"1->2": test.x2, "2->1": test.x1}
    prediction = {k: {"r2_vs_conditional_mean": counterfactual_r2(v, best[k]),
                      "r2_vs_observed": counterfactual_r2(v, observed[k]),
                      "conditional_mean_r2_vs_observed": counterfactual_r2(best[k],
                                                                           observed[k])}
                  for k, v in cross.items()}

    print(f"n = {args.n_samples} (test {len(test)} pairs), {args.shared_epochs} + "
          f"{args.specific_epochs} encoder epochs, {args.decoder_epochs} decoder epochs, seed "
          f"{args.seed}; fit {fit_seconds:.0f} s")
    print(f"{'R² vs truth':<22}{'x1':>8}{'x2':>8}{'mean':>8}")
    for name, values in r2.items():
        label = name + (" (vs x_a)" if name == "reconstruction" else "")
        print(f"{label:<22}" + "".join(f"{v:>8.3f}" for v in values)
              + f"{np.mean(values):>8.3f}")
    for k, v in prediction.items():
        print(f"predict_modality {k}: R² {v['r2_vs_conditional_mean']:.3f} vs E[x|other] "
              f"({v['r2_vs_observed']:.3f} vs the observed modality; E[x|other] itself "
              f"scores {v['conditional_mean_r2_vs_observed']:.3f})")
    payload = {
        "benchmark": "counterfactual", "machine": machine, "settings": {
            **settings, "n_samples": args.n_samples, "n_test_pairs": len(test),
            "metric": "variance-weighted R² over all entries (sklearn r2_score, "
                      "multioutput='variance_weighted')"},
        "fit_seconds": round(fit_seconds, 1),
        "r2": {k: {"x1": v[0], "x2": v[1], "mean": float(np.mean(v))} for k, v in r2.items()},
        "predict_modality": prediction,
        "decoder_history_last_epoch": est.history_["decoder"][-1],
    }
    write_json("counterfactual", payload, args.out)


if __name__ == "__main__":
    main()
