"""Counterfactuals against the truth on the paper's synthetic generator, three methods.

For every seed: the paper's generator (n = 20000 by default) split 80/20; on the 4000 test
rows every row ``a`` is paired with a random other row ``b``, and each answer to "modality i of
sample a with the shared content of sample b" is scored against the generator's true
counterfactual ``[Z1_a, Zs_b]·T1`` (``[Z2_a, Zs_b]·T2`` for modality 2,
:func:`~disentangled_ssl.data.synthetic.true_counterfactual`) with the variance-weighted R²
(:func:`~disentangled_ssl.evaluation.counterfactual_r2`). The answers:

- **DisentangledSSL** at the reference budget (5 + 5 epochs, every dial at its default) with
  decoders on its frozen codes (``decoder_epochs``): ``est.counterfactual``;
- **DMVAE** (a = 1e-5, lr 1e-3: the dial and learning rate ``dssl compare`` chose on
  validation data in ``docs/baselines-convergence.md``; 10 epochs) two ways: its **own**
  decoders' cross-generation, ``decoder_i([private_i(a), shared(b)])`` with posterior means
  and the product-of-experts shared mean of ``b``'s two modalities (its reconstruction path),
  and the library's decoders on its frozen codes (``est.counterfactual``, as for
  DisentangledSSL);
- a **split autoencoder**, the non-disentangled control: per modality an MLP encoder to
  ``shared_dim + specific_dim`` numbers and an MLP decoder back (same widths as the other
  methods' networks), trained on reconstruction alone (10 epochs, lr 1e-3) through the
  library's one loop; its counterfactual decodes ``[first half of code(b), second half of
  code(a)]``: nothing made the first half shared;
- the **trivial** answers that use no model: keep ``x_a`` and copy ``x_b`` (each gets one of
  the two halves right and scores ≈ 0), and their **average** ``(x_a + x_b) / 2``, which
  scores ≈ 0.5 on this generator (half of each half's variance is right): the blind answer a
  model has to beat; and, per model, the **reconstruction** (``shared_from =
  specific_from``, against ``x_a``): the ceiling its decoders reach on its codes.

DisentangledSSL's cross-modal prediction (``predict_modality``) is scored against the best
possible answer ``E[x_j | x_i] = [0, Zs]·T_j``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_counterfactual.py             # 3 seeds, ~8 min
    OMP_NUM_THREADS=1 python benchmarks/bench_counterfactual.py --seeds 0   # ~3 min

Writes ``benchmarks/results/counterfactual.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _common import int_list, machine_info, set_threads, write_json
from torch import Tensor, nn

from disentangled_ssl import DisentangledSSL, make_synthetic
from disentangled_ssl.data.synthetic import PairedData, true_counterfactual
from disentangled_ssl.evaluation import counterfactual_r2
from disentangled_ssl.losses.functional import product_of_experts
from disentangled_ssl.methods.base import Stage
from disentangled_ssl.nn.encoders import MLP
from disentangled_ssl.training import TrainConfig, train_stage

#: DMVAE's dial and learning rate as chosen on validation data by ``dssl compare``
#: (docs/baselines-convergence.md).
DMVAE_SETTINGS = {"method": "dmvae", "alpha": 1e-5, "lr": 1e-3, "epochs": 10}


def conditional_mean(data: PairedData, j: int) -> np.ndarray:
    """``E[x_j | x_other] = [0, Zs]·T_j``: the private latent at its mean (0), the shared one
    known exactly (the mixing is invertible)."""
    zs = data.latents["zs"].astype(np.float64)
    private = np.zeros((len(data), data.latents[f"z{j}"].shape[1]))
    return (np.concatenate([private, zs], axis=1) @ data.mixing[f"t{j}"]).astype(np.float32)


def pairs(test: PairedData, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b): every test row, and a seeded permutation of them."""
    return np.arange(len(test)), np.random.default_rng(seed).permutation(len(test))


def r2_per_modality(pred: list[np.ndarray], truth: list[np.ndarray]) -> dict[str, float]:
    values = [counterfactual_r2(p, t) for p, t in zip(pred, truth)]
    return {"x1": values[0], "x2": values[1], "mean": float(np.mean(values))}


def estimator_scores(est: DisentangledSSL, test: PairedData, a: np.ndarray, b: np.ndarray
                     ) -> dict[str, dict[str, float]]:
    """Counterfactual R² vs the truth and reconstruction R² vs ``x_a`` of ``est``'s decoders."""
    truth = list(true_counterfactual(test, a, b))
    xa, xb = [test.x1[a], test.x2[a]], [test.x1[b], test.x2[b]]
    return {"counterfactual": r2_per_modality(
                est.counterfactual(specific_from=xa, shared_from=xb), truth),
            "reconstruction": r2_per_modality(
                est.counterfactual(specific_from=xa, shared_from=xa), xa)}


@torch.no_grad()
def dmvae_own_scores(est: DisentangledSSL, test: PairedData, a: np.ndarray, b: np.ndarray
                     ) -> dict[str, dict[str, float]]:
    """DMVAE's own cross-generation: ``decoder_i([private mean_i(a), PoE shared mean(b)])``
    (its reconstruction path, with ``b``'s shared content), and its reconstruction."""
    model = est.model_.eval()
    decoders = model.extra["decoders"]
    x = [torch.from_numpy(test.x1), torch.from_numpy(test.x2)]

    def decode(private_rows: np.ndarray, shared_rows: np.ndarray) -> list[np.ndarray]:
        shared = [model.shared[i].posterior(x[i][shared_rows]) for i in range(2)]
        joint_mean = product_of_experts(*shared[0], *shared[1])[0]
        return [decoders[i](torch.cat([model.specific[i](x[i][private_rows]), joint_mean],
                                      dim=1)).numpy() for i in range(2)]

    truth = list(true_counterfactual(test, a, b))
    return {"counterfactual": r2_per_modality(decode(a, b), truth),
            "reconstruction": r2_per_modality(decode(a, a), [test.x1[a], test.x2[a]])}


class SplitAutoencoder(nn.Module):
    """Per modality an MLP encoder to ``shared_dim + specific_dim`` numbers and an MLP decoder
    back, on standardised features; the first ``shared_dim`` numbers are called "shared" and
    the rest "specific", but nothing in the objective makes them so."""

    def __init__(self, train: PairedData, shared_dim: int, specific_dim: int, hidden_dim: int,
                 n_hidden_layers: int) -> None:
        super().__init__()
        self.shared_dim = shared_dim
        latent = shared_dim + specific_dim
        views = [torch.from_numpy(train.x1), torch.from_numpy(train.x2)]
        self.encoders = nn.ModuleList(MLP(v.shape[1], latent, hidden_dim, n_hidden_layers)
                                      for v in views)
        self.decoders = nn.ModuleList(MLP(latent, v.shape[1], hidden_dim, n_hidden_layers)
                                      for v in views)
        for i, v in enumerate(views):
            self.register_buffer(f"mean_{i}", v.mean(0))
            self.register_buffer(f"scale_{i}", v.std(0).clamp_min(1e-8))

    def scaled(self, i: int, x: Tensor) -> Tensor:
        return (x - getattr(self, f"mean_{i}")) / getattr(self, f"scale_{i}")

    def code(self, i: int, x: Tensor) -> Tensor:
        return self.encoders[i](self.scaled(i, x))

    def decode(self, i: int, code: Tensor) -> Tensor:
        return self.decoders[i](code) * getattr(self, f"scale_{i}") + getattr(self, f"mean_{i}")


class ReconstructionObjective(nn.Module):
    """The split autoencoder's loss: the per-modality MSE on standardised features, summed."""

    def __init__(self, ae: SplitAutoencoder) -> None:
        super().__init__()
        self.ae = ae

    def forward(self, *xs: Tensor) -> dict[str, Tensor]:
        terms = {f"mse{i + 1}": ((self.ae.decoders[i](self.ae.code(i, x))
                                  - self.ae.scaled(i, x)) ** 2).mean()
                 for i, x in enumerate(xs)}
        return {"loss": sum(terms.values()), **terms}


def fit_split_autoencoder(train: PairedData, seed: int, epochs: int = 10, lr: float = 1e-3
                          ) -> tuple[SplitAutoencoder, list[dict[str, float]]]:
    defaults = DisentangledSSL()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ae = SplitAutoencoder(train, defaults.shared_dim, defaults.specific_dim,
                              defaults.hidden_dim, defaults.n_hidden_layers)
    stage = Stage(name="split_autoencoder", objective=ReconstructionObjective(ae),
                  trainable=[ae.encoders, ae.decoders], epochs=epochs)
    history = train_stage(stage, [torch.from_numpy(train.x1), torch.from_numpy(train.x2)],
                          TrainConfig(batch_size=256, lr=lr, seed=seed, progress=False))
    return ae.eval(), history


@torch.no_grad()
def split_autoencoder_scores(ae: SplitAutoencoder, test: PairedData, a: np.ndarray,
                             b: np.ndarray) -> dict[str, dict[str, float]]:
    x = [torch.from_numpy(test.x1), torch.from_numpy(test.x2)]
    d = ae.shared_dim

    def decode(private_rows: np.ndarray, shared_rows: np.ndarray) -> list[np.ndarray]:
        out = []
        for i in range(2):
            code_a, code_b = ae.code(i, x[i][private_rows]), ae.code(i, x[i][shared_rows])
            out.append(ae.decode(i, torch.cat([code_b[:, :d], code_a[:, d:]], dim=1)).numpy())
        return out

    truth = list(true_counterfactual(test, a, b))
    return {"counterfactual": r2_per_modality(decode(a, b), truth),
            "reconstruction": r2_per_modality(decode(a, a), [test.x1[a], test.x2[a]])}


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    data = make_synthetic(n_samples=args.n_samples, seed=seed)
    train, test = data.split(test_fraction=0.2, seed=0)
    a, b = pairs(test, seed)
    truth = list(true_counterfactual(test, a, b))
    xa, xb = [test.x1[a], test.x2[a]], [test.x1[b], test.x2[b]]
    average = [(u + v) / 2 for u, v in zip(xa, xb)]
    out: dict = {"seed": seed, "trivial": {"keep_a": r2_per_modality(xa, truth),
                                           "copy_b": r2_per_modality(xb, truth),
                                           "average": r2_per_modality(average, truth)}}
    views = [train.x1, train.x2]

    tic = time.perf_counter()
    est = DisentangledSSL(shared_epochs=args.shared_epochs, specific_epochs=args.specific_epochs,
                          decoder_epochs=args.decoder_epochs, random_state=seed,
                          verbose=False).fit(views)
    out["disentangled_ssl"] = {**estimator_scores(est, test, a, b),
                               "fit_seconds": round(time.perf_counter() - tic, 1)}
    cross = {"1->2": est.predict_modality(test.x1, source=1, target=2),
             "2->1": est.predict_modality(test.x2, source=2, target=1)}
    best = {"1->2": conditional_mean(test, 2), "2->1": conditional_mean(test, 1)}
    observed = {"1->2": test.x2, "2->1": test.x1}
    out["predict_modality"] = {
        k: {"r2_vs_conditional_mean": counterfactual_r2(v, best[k]),
            "r2_vs_observed": counterfactual_r2(v, observed[k]),
            "conditional_mean_r2_vs_observed": counterfactual_r2(best[k], observed[k])}
        for k, v in cross.items()}

    tic = time.perf_counter()
    dmvae = DisentangledSSL(**DMVAE_SETTINGS, decoder_epochs=args.decoder_epochs,
                            random_state=seed, verbose=False).fit(views)
    out["dmvae_own_decoders"] = dmvae_own_scores(dmvae, test, a, b)
    out["dmvae_library_decoders"] = {**estimator_scores(dmvae, test, a, b),
                                     "fit_seconds": round(time.perf_counter() - tic, 1)}
    out["dmvae_final_loss"] = dmvae.history_["dmvae"][-1]["loss"]

    tic = time.perf_counter()
    ae, history = fit_split_autoencoder(train, seed, epochs=args.ae_epochs)
    out["split_autoencoder"] = {**split_autoencoder_scores(ae, test, a, b),
                                "fit_seconds": round(time.perf_counter() - tic, 1),
                                "final_loss": history[-1]["loss"]}
    return out


ROWS = (("DisentangledSSL", "disentangled_ssl"), ("DMVAE, own decoders", "dmvae_own_decoders"),
        ("DMVAE, library decoders", "dmvae_library_decoders"),
        ("split autoencoder (control)", "split_autoencoder"))


def summarise(runs: list[dict]) -> dict:
    """mean ± std over seeds of every R² in the runs."""
    def stat(values: list[float]) -> dict[str, float]:
        return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1))
                if len(values) > 1 else 0.0}

    table = {}
    for _, key in ROWS:
        for what in ("counterfactual", "reconstruction"):
            table[f"{key}.{what}"] = {m: stat([r[key][what][m] for r in runs])
                                      for m in ("x1", "x2", "mean")}
    for name in ("keep_a", "copy_b", "average"):
        table[f"trivial.{name}"] = {m: stat([r["trivial"][name][m] for r in runs])
                                    for m in ("x1", "x2", "mean")}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-samples", type=int, default=20000)
    parser.add_argument("--shared-epochs", type=int, default=5)
    parser.add_argument("--specific-epochs", type=int, default=5)
    parser.add_argument("--decoder-epochs", type=int, default=10)
    parser.add_argument("--ae-epochs", type=int, default=10,
                        help="epochs of the split autoencoder (default 10)")
    parser.add_argument("--seeds", type=int_list, default=(0, 1, 2))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    set_threads(args.threads)
    machine = machine_info()

    runs = []
    for seed in args.seeds:
        tic = time.perf_counter()
        runs.append(run_seed(seed, args))
        print(f"seed {seed}: {time.perf_counter() - tic:.0f} s")
    table = summarise(runs)

    def cell(key: str) -> str:
        v = table[key]["mean"]
        return f"{v['mean']:>7.3f} ± {v['std']:.3f}"

    print(f"n = {args.n_samples}, seeds {list(args.seeds)}: R² (mean of x1 and x2; ± std over "
          "seeds)")
    print(f"{'':<30}{'counterfactual vs truth':>24}{'reconstruction vs x_a':>24}")
    for title, key in ROWS:
        print(f"{title:<30}{cell(key + '.counterfactual'):>24}"
              f"{cell(key + '.reconstruction'):>24}")
    for name in ("keep_a", "copy_b", "average"):
        print(f"{'trivial: ' + name:<30}{cell('trivial.' + name):>24}")
    for k in ("1->2", "2->1"):
        values = [r["predict_modality"][k]["r2_vs_conditional_mean"] for r in runs]
        print(f"predict_modality {k}: R² vs E[x|other] {np.mean(values):.3f} "
              f"± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.3f}")
    write_json("counterfactual", {
        "benchmark": "counterfactual", "machine": machine, "settings": {
            "n_samples": args.n_samples, "n_test_pairs": int(0.2 * args.n_samples),
            "seeds": list(args.seeds),
            "disentangled_ssl": {"shared_epochs": args.shared_epochs,
                                 "specific_epochs": args.specific_epochs,
                                 "decoder_epochs": args.decoder_epochs},
            "dmvae": {**DMVAE_SETTINGS, "decoder_epochs": args.decoder_epochs},
            "split_autoencoder": {"epochs": args.ae_epochs, "lr": 1e-3},
            "metric": "variance-weighted R² over all entries (sklearn r2_score, "
                      "multioutput='variance_weighted')"},
        "summary": table, "runs": runs}, args.out)


if __name__ == "__main__":
    main()
