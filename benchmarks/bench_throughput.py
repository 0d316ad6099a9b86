"""Training throughput (samples/s) of DisentangledSSL step 1 and step 2 through the real path.

Each repeat fits a fresh :class:`disentangled_ssl.DisentangledSSL` (``fit_shared``, then
``fit_specific``) on the paper's synthetic data with the paper's sizes (MLPs 100→512→100,
embedding 100, batch 256, vMF κ = 1000) and reads the loop's own per-epoch timings
(``history_[stage][e]["seconds"]``), so the number includes augmentation, vMF sampling, the loss,
backward, Adam and the loop's bookkeeping, but not data generation or validation.

Besides wall-clock samples/s it reports samples per second of *process CPU time* (time the
scheduler actually gave this process): on a machine shared with other jobs that number is far
steadier than the wall-clock one, and with ``--threads 1`` it is what a quiet core delivers.

It also records the wall time of every single training step (the time between successive calls
of the stage's objective, i.e. forward, backward, Adam and the loop's bookkeeping) and quotes
the 10th percentile: on a contended machine the fastest steps are the ones nobody interrupted,
so ``batch / p10 step time`` ("best" samples/s) estimates what a quiet machine does.

For scale it also times the *bare compute* of the same networks and losses (Adam, batch 256,
no augmentation and no vMF sampling: the hardware's limit for this model, as the issue defines
it) in the same process, interleaved with the real runs so both see the same contention; the
ratio ``real / bare`` is much less sensitive to other processes than either number alone.

Usage::

    python benchmarks/bench_throughput.py                      # < 2 min on 2 cores
    python benchmarks/bench_throughput.py --n-samples 90000 --epochs 3 --repeats 5
    python benchmarks/bench_throughput.py --bf16     # mixed precision (DisentangledSSL(bf16=True))

Writes ``benchmarks/results/throughput.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F
from _common import (
    PeakRSS,
    add_common_args,
    fmt,
    machine_info,
    set_threads,
    summary,
    write_json,
)

from disentangled_ssl import DisentangledSSL, make_synthetic
from disentangled_ssl.losses import SpecificLoss, alignment, info_nce
from disentangled_ssl.methods import dssl as methods_module
from disentangled_ssl.nn.model import MultimodalModel


@contextlib.contextmanager
def _step_clock(stamps: list[float]):
    """Record perf_counter() at every call of the DisentangledSSL objectives."""
    originals = {cls: cls.forward for cls in (methods_module.SharedObjective,
                                               methods_module.SpecificObjective)}

    def clocked(original):
        def forward(self, *xs):
            stamps.append(time.perf_counter())
            return original(self, *xs)
        return forward

    try:
        for cls, original in originals.items():
            cls.forward = clocked(original)
        yield
    finally:
        for cls, original in originals.items():
            cls.forward = original


def _p10_step(stamps: list[float]) -> float:
    steps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    return steps[len(steps) // 10]


def _samples_per_second(history: list[dict], n_train: int, batch: int) -> float:
    steps = n_train // batch
    seconds = sum(r["seconds"] for r in history)
    return steps * batch * len(history) / seconds


def bare_compute(step: int, x1: torch.Tensor, x2: torch.Tensor, batch: int,
                 n_steps: int) -> tuple[float, float, float]:
    """Samples/s of the networks, losses and Adam alone (no augmentation, no vMF sampling,
    no loop bookkeeping): the reference the issue calls "bare compute". Returns (wall,
    CPU-time, best = batch / p10 step time) samples/s."""
    torch.manual_seed(0)
    model = MultimodalModel([x1.shape[1], x2.shape[1]])
    params = model.shared.parameters() if step == 1 else model.specific.parameters()
    opt = torch.optim.Adam(params, lr=1e-4)
    loss2 = SpecificLoss(1.0, 0.07)
    n = x1.shape[0]

    def one(k: int) -> None:
        lo = (k * batch) % (n - batch)
        a, b = x1[lo:lo + batch], x2[lo:lo + batch]
        if step == 1:
            e1, e2 = model.shared[0](a), model.shared[1](b)
            loss = info_nce(F.normalize(e1, dim=-1), F.normalize(e2, dim=-1), 0.07)
            loss = loss + alignment(e1, e2)
        else:
            spec, shared = [], []
            for i, x in enumerate((a, b)):
                views = torch.cat([x, x])
                with torch.no_grad():
                    codes = model.shared_embedding(i, views)
                s = model.specific_embedding(i, views, codes)
                spec.append((s[:batch], s[batch:]))
                shared.append((codes[:batch], codes[batch:]))
            loss = loss2(spec, shared)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for k in range(5):  # warm-up
        one(k)
    tic, cpu = time.perf_counter(), time.process_time()
    stamps = [tic]
    for k in range(n_steps):
        one(k)
        stamps.append(time.perf_counter())
    samples = n_steps * batch
    return (samples / (time.perf_counter() - tic), samples / (time.process_time() - cpu),
            batch / _p10_step(stamps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, n_samples=20000, epochs=2, repeats=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--no-bare", action="store_true", help="skip the bare-compute reference")
    parser.add_argument("--bf16", action="store_true",
                        help="train the real path in bf16 mixed precision (the bare reference "
                             "stays float32)")
    args = parser.parse_args()
    set_threads(args.threads)
    machine = machine_info()

    data = make_synthetic(n_samples=args.n_samples, seed=0)
    train, _ = data.split(0.2, seed=0)
    n_train = train.x1.shape[0]
    x1, x2 = torch.from_numpy(train.x1), torch.from_numpy(train.x2)
    bare_steps = max(20, min(200, n_train // args.batch_size))

    results: dict[str, list[float]] = {k: [] for k in (
        "step1_samples_per_s", "step2_samples_per_s", "step1_samples_per_cpu_s",
        "step2_samples_per_cpu_s", "step1_peak_rss_mib", "step2_peak_rss_mib",
        "bare_step1_samples_per_s", "bare_step2_samples_per_s", "bare_step1_samples_per_cpu_s",
        "bare_step2_samples_per_cpu_s", "step1_fraction_of_bare", "step2_fraction_of_bare",
        "step1_best_samples_per_s", "step2_best_samples_per_s", "bare_step1_best_samples_per_s",
        "bare_step2_best_samples_per_s")}
    for rep in range(args.repeats):
        est = DisentangledSSL(beta=1.0, lam=1.0, shared_epochs=args.epochs,
                              specific_epochs=args.epochs, batch_size=args.batch_size,
                              random_state=rep, device="cpu", verbose=False, bf16=args.bf16)
        samples = (n_train // args.batch_size) * args.batch_size * args.epochs
        cpu = time.process_time()
        stamps1: list[float] = []
        stamps2: list[float] = []
        with PeakRSS() as mem1, _step_clock(stamps1):
            est.fit_shared(train.x1, train.x2)
        cpu1 = time.process_time() - cpu
        with PeakRSS() as mem2, _step_clock(stamps2):
            est.fit_specific(train.x1, train.x2)
        cpu2 = time.process_time() - cpu - cpu1
        results["step1_best_samples_per_s"].append(args.batch_size / _p10_step(stamps1))
        results["step2_best_samples_per_s"].append(args.batch_size / _p10_step(stamps2))
        s1 = _samples_per_second(est.history_["shared"], n_train, args.batch_size)
        s2 = _samples_per_second(est.history_["specific"], n_train, args.batch_size)
        results["step1_samples_per_cpu_s"].append(samples / cpu1)
        results["step2_samples_per_cpu_s"].append(samples / cpu2)
        results["step1_samples_per_s"].append(s1)
        results["step2_samples_per_s"].append(s2)
        results["step1_peak_rss_mib"].append(mem1.peak_mib)
        results["step2_peak_rss_mib"].append(mem2.peak_mib)
        line = f"repeat {rep + 1}/{args.repeats}: step 1 {s1:,.0f} /s, step 2 {s2:,.0f} /s"
        if not args.no_bare:
            b1, b1_cpu, b1_best = bare_compute(1, x1, x2, args.batch_size, bare_steps)
            b2, b2_cpu, b2_best = bare_compute(2, x1, x2, args.batch_size, bare_steps)
            results["bare_step1_best_samples_per_s"].append(b1_best)
            results["bare_step2_best_samples_per_s"].append(b2_best)
            results["bare_step1_samples_per_s"].append(b1)
            results["bare_step2_samples_per_s"].append(b2)
            results["bare_step1_samples_per_cpu_s"].append(b1_cpu)
            results["bare_step2_samples_per_cpu_s"].append(b2_cpu)
            results["step1_fraction_of_bare"].append(s1 / b1)
            results["step2_fraction_of_bare"].append(s2 / b2)
            line += f" | bare {b1:,.0f} /s, {b2:,.0f} /s"
        print(line, flush=True)

    stats = {k: summary(v) for k, v in results.items() if v}
    payload = {
        "benchmark": "throughput",
        "settings": {"n_samples": args.n_samples, "n_train": n_train, "epochs": args.epochs,
                     "repeats": args.repeats, "batch_size": args.batch_size,
                     "encoders": "MLP 100-512-100", "kappa": 1000.0, "beta": 1.0, "lam": 1.0,
                     "bf16": args.bf16},
        "machine": machine,
        "results": stats,
    }
    for k in (1, 2):
        print(f"step {k}: {fmt(stats[f'step{k}_samples_per_s'], ' samples/s')} "
              f"[{fmt(stats[f'step{k}_samples_per_cpu_s'], ' per CPU-s')}; best "
              f"{fmt(stats[f'step{k}_best_samples_per_s'], '/s')}], "
              f"peak RSS {fmt(stats[f'step{k}_peak_rss_mib'], ' MiB')}")
    if not args.no_bare:
        print(f"bare compute: step 1 {fmt(stats['bare_step1_samples_per_s'], ' /s')} "
              f"[{fmt(stats['bare_step1_samples_per_cpu_s'], ' per CPU-s')}; best "
              f"{fmt(stats['bare_step1_best_samples_per_s'], '/s')}], "
              f"step 2 {fmt(stats['bare_step2_samples_per_s'], ' /s')} "
              f"[{fmt(stats['bare_step2_samples_per_cpu_s'], ' per CPU-s')}; best "
              f"{fmt(stats['bare_step2_best_samples_per_s'], '/s')}]; real/bare "
              f"{fmt(stats['step1_fraction_of_bare'], '', digits=2)} and "
              f"{fmt(stats['step2_fraction_of_bare'], '', digits=2)}")
    write_json("throughput", payload, args.out)


if __name__ == "__main__":
    main()
