"""Where the training time goes: a profile of step 1 and step 2 through the real estimator path.

Runs ``fit_shared`` / ``fit_specific`` of :class:`disentangled_ssl.DisentangledSSL` with the
parts of a training step wrapped in timers that read the **process CPU clock** (so time other
processes take from a shared machine is not charged to us): augmentation, vMF sampling, encoders
(forward), loss, backward, optimiser, and the rest (batch indexing, loop bookkeeping, Python
glue). Time is exclusive: the encoders called from the objective count as encoders only.
``--print-functions N`` adds cProfile's N functions with the most own time; ``--torch-ops``
adds torch.profiler's table of the most expensive operators.

Usage::

    python benchmarks/profile_hot_path.py --threads 1          # CPU-time shares, ~1 min
    python benchmarks/profile_hot_path.py --torch-ops

Writes ``benchmarks/results/profile.json`` (ms of CPU time per training step, per part).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import pstats
import time
from collections.abc import Callable
from typing import Any

import torch
from _common import add_common_args, machine_info, set_threads, write_json

from disentangled_ssl import DisentangledSSL, make_synthetic
from disentangled_ssl import estimator as estimator_module
from disentangled_ssl.data.augment import VectorAugment
from disentangled_ssl.losses import SharedLoss, SpecificLoss
from disentangled_ssl.methods import dssl as methods_module
from disentangled_ssl.nn.encoders import MLP
from disentangled_ssl.nn.vmf import VonMisesFisher
from disentangled_ssl.training import loop as loop_module


class _PartTimer:
    """Exclusive process-CPU time per part: a call nested in another part (e.g. the encoders
    inside the objective) is charged to the inner part only."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._stack: list[list[float]] = []  # per open call: [start, time of children]

    def wrap(self, part: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append([time.process_time(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                start, children = self._stack.pop()
                elapsed = time.process_time() - start
                self.totals[part] = self.totals.get(part, 0.0) + elapsed - children
                if self._stack:
                    self._stack[-1][1] += elapsed
        return timed


# part -> (owner, attribute) of the functions whose time is charged to it.
PARTS: dict[str, list[tuple[Any, str]]] = {
    "augmentation": [(VectorAugment, "forward")],
    # Older code built a VonMisesFisher per step; the current objective calls
    # methods.posterior_samples (noise + normalise/reflect/normalise, both normalisations).
    "vmf_sampling": [(VonMisesFisher, "rsample"), (VonMisesFisher, "__init__"),
                     (methods_module, "posterior_samples")],
    "encoders_forward": [(MLP, "forward")],
    "loss": [(SharedLoss, "forward"), (SpecificLoss, "forward")],
    "backward": [(torch.Tensor, "backward")],
    "optimizer": [(torch.optim.Adam, "step"), (torch.optim.Optimizer, "zero_grad"),
                  (torch.optim.lr_scheduler.LRScheduler, "step")],
}


@contextlib.contextmanager
def _instrumented(timer: _PartTimer):
    saved = []
    try:
        for part, targets in PARTS.items():
            for owner, name in targets:
                if name not in vars(owner):
                    continue  # not in this version of the code
                original = vars(owner)[name]
                saved.append((owner, name, original))
                setattr(owner, name, timer.wrap(part, original))
        for module in (estimator_module, loop_module):
            saved.append((module, "train_stage", module.train_stage))
            module.train_stage = timer.wrap("total", module.train_stage)
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def profile_stage(est: DisentangledSSL, which: str, x1, x2, with_cprofile: bool
                  ) -> tuple[dict, pstats.Stats | None]:
    """CPU ms per training step of one stage, per part (``other`` is the loop's own time and
    everything not listed: batch indexing, bookkeeping, glue)."""
    timer = _PartTimer()
    prof = cProfile.Profile(time.process_time) if with_cprofile else None
    with _instrumented(timer):
        if prof is not None:
            prof.enable()
        if which == "shared":
            est.fit_shared(x1, x2)
        else:
            est.fit_specific(x1, x2)
        if prof is not None:
            prof.disable()
    steps = len(est.history_[which]) * (x1.shape[0] // est.batch_size)
    parts = {k: v for k, v in timer.totals.items() if k != "total"}
    parts["other"] = timer.totals["total"]
    per_step = {k: round(1e3 * parts.get(k, 0.0) / steps, 4) for k in [*PARTS, "other"]}
    per_step["total"] = round(sum(per_step.values()), 4)
    return per_step, (pstats.Stats(prof) if prof is not None else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, n_samples=20000, epochs=1, repeats=1)
    parser.add_argument("--torch-ops", action="store_true",
                        help="also print torch.profiler's top operators per stage")
    parser.add_argument("--print-functions", type=int, default=0,
                        help="print the N functions with the most own time per stage")
    args = parser.parse_args()
    set_threads(args.threads)
    machine = machine_info()
    train, _ = make_synthetic(n_samples=args.n_samples, seed=0).split(0.2, seed=0)
    # Warm-up: the first fit of a process imports and initialises lazily loaded torch parts.
    DisentangledSSL(shared_epochs=1, specific_epochs=1, random_state=0, device="cpu",
                    verbose=False).fit(train.x1[:512], train.x2[:512])
    results: dict[str, dict] = {}
    for rep in range(args.repeats):
        est = DisentangledSSL(beta=1.0, lam=1.0, shared_epochs=args.epochs,
                              specific_epochs=args.epochs, random_state=rep, device="cpu",
                              verbose=False)
        for which in ("shared", "specific"):
            per_step, stats = profile_stage(est, which, train.x1, train.x2,
                                            bool(args.print_functions))
            results.setdefault(which, {})[f"repeat{rep}"] = per_step
            print(f"{which}: CPU ms per step (batch {est.batch_size}): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in per_step.items()))
            if stats is not None:
                stats.sort_stats("tottime").print_stats(args.print_functions)
    if args.torch_ops:
        from torch.profiler import ProfilerActivity, profile

        est = DisentangledSSL(shared_epochs=1, specific_epochs=1, random_state=0,
                              device="cpu", verbose=False)
        small_x1, small_x2 = train.x1[:5120], train.x2[:5120]
        for which in ("shared", "specific"):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                if which == "shared":
                    est.fit_shared(small_x1, small_x2)
                else:
                    est.fit_specific(small_x1, small_x2)
            print(f"--- torch operators, {which} (20 steps) ---")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    write_json("profile", {
        "benchmark": "profile",
        "unit": "ms of process CPU time per training step (batch 256)",
        "settings": {"n_samples": args.n_samples, "epochs": args.epochs,
                     "repeats": args.repeats},
        "machine": machine,
        "results": results,
    }, args.out)


if __name__ == "__main__":
    main()
