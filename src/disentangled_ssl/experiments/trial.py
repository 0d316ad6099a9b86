"""Running one unit: train step 1 once (or reload it), then every step-2 trial on top of it.

Each finished trial is recorded as soon as it is done, so an interruption loses at most the
trial in flight. The step-1 model is saved (``DisentangledSSL.save``) right after training, so a
unit interrupted during its λ trials resumes without retraining step 1.
"""

from __future__ import annotations

import datetime
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._version import __version__
from disentangled_ssl.data.synthetic import PairedData
from disentangled_ssl.estimator import DisentangledSSL, Embeddings
from disentangled_ssl.evaluation.probe import linear_probe
from disentangled_ssl.losses.disentangled import SharedLoss, SpecificLoss
from disentangled_ssl.sweeps.spec import SpecificTrial, Unit
from disentangled_ssl.sweeps.store import EventLog, TrialStore, worker_name

Row = dict[str, Any]


def _chunks(n: int, batch_size: int) -> list[slice]:
    """Consecutive full batches of ``batch_size`` rows (one batch of all rows if fewer)."""
    if n < 2:
        raise DSSLError(f"the held-out split has {n} rows; label-free terms need at least 2")
    size = min(batch_size, n)
    return [slice(s, s + size) for s in range(0, n - size + 1, size)]


@torch.no_grad()
def heldout_terms(emb: Embeddings, *, temperature: float, batch_size: int, stage: str
                  ) -> dict[str, float]:
    """The training objectives' terms on held-out embeddings: eval mode, no augmentation.

    Step 1 (``stage="shared"``): :class:`~disentangled_ssl.losses.SharedLoss` on the
    deterministic shared codes (the vMF mean directions, no sampling), averaged over modality
    pairs: ``infonce`` (symmetric cross-modal InfoNCE, nats), ``alignment`` (−mean cosine of
    the two modalities' codes, the paper's surrogate of I(Z; X1 | X2)) and
    ``mi_bound = log(B) − infonce``, the InfoNCE lower bound on I(Ẑc1; Ẑc2) (Oord et al.,
    2018): how much shared information is kept.
    Step 2 (``stage="specific"``): :class:`~disentangled_ssl.losses.SpecificLoss` with two
    identical views: ``infonce`` (self-contrastive, summed over modalities) and
    ``orthogonality`` (Frobenius norm of the specific × shared cross-correlation, summed over
    modalities): a label-free proxy of shared information leaking into the specific codes.

    Terms are averaged over consecutive batches of ``batch_size`` rows (InfoNCE depends on the
    number of negatives, so it is computed at the training batch size).

    Args:
        emb: embeddings of the held-out rows (``transform`` output), each (n, d).
        temperature: the InfoNCE temperature of training.
        batch_size: rows per batch (the training batch size).
        stage: "shared" or "specific".

    Returns:
        term name -> value.
    """
    shared = [torch.from_numpy(np.ascontiguousarray(s)) for s in emb.shared_list]
    chunks = _chunks(shared[0].shape[0], batch_size)
    sums: dict[str, float] = {}

    def add(terms: dict[str, torch.Tensor], weight: float = 1.0) -> None:
        for name, value in terms.items():
            if name != "loss":
                sums[name] = sums.get(name, 0.0) + weight * float(value) / len(chunks)

    if stage == "shared":
        loss = SharedLoss(0.0, temperature)
        pairs = [(i, j) for i in range(len(shared)) for j in range(i + 1, len(shared))]
        for part in chunks:
            for i, j in pairs:
                a, b = shared[i][part], shared[j][part]
                add(loss(F.normalize(a, dim=-1), F.normalize(b, dim=-1), a, b), 1 / len(pairs))
        sums["mi_bound"] = math.log(chunks[0].stop - chunks[0].start) - sums["infonce"]
        return sums
    if stage == "specific":
        specific = [torch.from_numpy(np.ascontiguousarray(s)) for s in emb.specific_list]
        if not specific:
            raise DSSLError("held-out step-2 terms need specific embeddings")
        spec_loss = SpecificLoss(0.0, temperature)
        for part in chunks:
            add(spec_loss([(s[part], s[part]) for s in specific],
                          [(c[part], c[part]) for c in shared]))
        return sums
    raise DSSLError(f"stage must be 'shared' or 'specific', got {stage!r}")


def _rows(representation: str, probe: dict[str, float] | None, terms: dict[str, float],
          stage: str | None = None) -> list[Row]:
    rows = [{"representation": representation, "label": label, "metric": "accuracy",
             "value": acc} for label, acc in (probe or {}).items()]
    rows += [{"representation": representation, "label": "", "metric": f"heldout_{name}",
              "value": value} for name, value in sorted(terms.items())]
    if stage is not None:
        for r in rows:
            r["stage"] = stage
    return rows


def evaluate(est: DisentangledSSL, train: PairedData, test: PairedData, stage: str
             ) -> list[Row]:
    """Probe accuracies and held-out label-free terms of one fitted estimator.

    ``stage="shared"``: the shared code (shared1 ‖ shared2, as the paper's Figure 3(a)).
    ``stage="specific"``: specific1 and specific2, each on every label; label-free terms under
    representation ``"specific"``. ``stage="all"`` (one-stage methods): both, each row tagged
    with its stage. Probes are fitted on ``train`` and scored on ``test``; label-free terms use
    ``test`` only.
    """
    te = est.transform(test.x1, test.x2)
    tr = est.transform(train.x1, train.x2) if train.labels else None
    temperature, batch = float(est.temperature), int(est.batch_size)
    rows: list[Row] = []
    tag = stage == "all"
    if stage in ("shared", "all"):
        probe = (linear_probe(tr.shared, train.labels, te.shared, test.labels)
                 if tr is not None else None)
        terms = heldout_terms(te, temperature=temperature, batch_size=batch, stage="shared")
        rows += _rows("shared", probe, terms, "shared" if tag else None)
    if stage in ("specific", "all") and te.specific_list:
        for i in range(len(te.specific_list)):
            rep = f"specific{i + 1}"
            probe = (linear_probe(tr.specific_list[i], train.labels, te.specific_list[i],
                                  test.labels) if tr is not None else None)
            rows += _rows(rep, probe, {}, "specific" if tag else None)
        terms = heldout_terms(te, temperature=temperature, batch_size=batch, stage="specific")
        rows += _rows("specific", None, terms, "specific" if tag else None)
    return rows


@dataclass
class UnitOutcome:
    """What :func:`run_unit` did: trial keys it recorded, trainings it ran, seconds spent."""

    recorded: list[str]
    trained_shared: bool
    trained_specific: int
    seconds: float


def _record(key: str, unit: Unit, stage: str, dials: dict[str, Any], rows: list[Row],
            train_seconds: float, eval_seconds: float) -> dict[str, Any]:
    return {
        "key": key, "unit": unit.key, "stage": stage, "dials": dials, "seed": unit.seed,
        "rows": rows, "train_seconds": round(train_seconds, 3),
        "eval_seconds": round(eval_seconds, 3), "worker": worker_name(),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "library_version": __version__,
    }


def _load_step1(folder: Path, unit: Unit, device: str) -> DisentangledSSL | None:
    """The saved step-1 model of ``unit`` if it is there and matches; else ``None``."""
    if not folder.is_dir():
        return None
    try:
        est = DisentangledSSL.load(folder, device=device)
    except DSSLError:
        shutil.rmtree(folder, ignore_errors=True)  # a stale or foreign folder: retrain
        return None
    if est.seed_ != unit.seed or "shared" not in est.history_:
        return None
    return est


def run_unit(
    unit: Unit,
    data: tuple[PairedData, PairedData],
    store: TrialStore,
    *,
    model_dir: Path | None = None,
    keep_models: bool = True,
    events: EventLog | None = None,
    device: str = "cpu",
    on_trial: Callable[[str], None] | None = None,
) -> UnitOutcome:
    """Compute every trial of ``unit`` not yet in ``store``.

    Args:
        unit: the step-1 configuration and its step-2 trials.
        data: (train, held-out) splits.
        store: where finished trials are recorded (and looked up, to skip them).
        model_dir: folder for saved step-1 models (``<model_dir>/<unit.key>``); ``None`` keeps
            step 1 in memory only.
        keep_models: keep the saved step-1 model after the unit is complete (else delete it).
        events: audit log of trainings.
        device: training device.
        on_trial: called with each trial key right after it is recorded.

    Returns:
        :class:`UnitOutcome`.
    """
    log = events or EventLog(None)
    tic_unit = time.perf_counter()
    train, test = data
    done = store.done()
    pending: Sequence[SpecificTrial] = [t for t in unit.specific if t.key not in done]
    need_shared = unit.shared_key not in done
    outcome = UnitOutcome([], False, 0, 0.0)
    if not need_shared and not pending:
        return outcome

    def record(key: str, stage: str, dials: dict[str, Any], rows: list[Row],
               train_seconds: float, eval_seconds: float) -> None:
        store.put(key, _record(key, unit, stage, dials, rows, train_seconds, eval_seconds))
        log("trial_done", unit=unit.key, trial=key, stage=stage)
        outcome.recorded.append(key)
        if on_trial is not None:
            on_trial(key)

    if not unit.two_step:  # one-stage method: one fit, every code evaluated
        est = DisentangledSSL(**{**unit.params, "device": device, "verbose": False})
        log("fit", unit=unit.key, trial=unit.shared_key, dials=dict(unit.dials), seed=unit.seed)
        tic = time.perf_counter()
        est.fit(train.x1, train.x2)
        outcome.trained_shared = True
        train_seconds = time.perf_counter() - tic
        tic = time.perf_counter()
        rows = evaluate(est, train, test, "all")
        record(unit.shared_key, "shared", dict(unit.dials), rows, train_seconds,
               time.perf_counter() - tic)
        outcome.seconds = time.perf_counter() - tic_unit
        return outcome

    folder = model_dir / unit.key if model_dir is not None else None
    est = _load_step1(folder, unit, device) if folder is not None else None
    if est is not None:
        log("load_shared", unit=unit.key, trial=unit.shared_key)
    else:
        est = DisentangledSSL(**{**unit.params, "device": device, "verbose": False})
        log("fit_shared", unit=unit.key, trial=unit.shared_key, dials=dict(unit.dials),
            seed=unit.seed)
        est.fit_shared(train.x1, train.x2)
        outcome.trained_shared = True
        if folder is not None and (pending or keep_models):
            est.save(folder, overwrite=True)
    shared_seconds = float(sum(h.get("seconds", 0.0) for h in est.history_.get("shared", [])))
    if need_shared:
        tic = time.perf_counter()
        rows = evaluate(est, train, test, "shared")
        record(unit.shared_key, "shared", dict(unit.dials), rows, shared_seconds,
               time.perf_counter() - tic)
    for trial in pending:
        spec = est.with_params(**trial.params)
        log("fit_specific", unit=unit.key, trial=trial.key, dials={**unit.dials, **trial.dials},
            seed=unit.seed)
        tic = time.perf_counter()
        spec.fit_specific(train.x1, train.x2)
        train_seconds = time.perf_counter() - tic
        outcome.trained_specific += 1
        tic = time.perf_counter()
        rows = evaluate(spec, train, test, "specific")
        record(trial.key, "specific", {**unit.dials, **trial.dials}, rows, train_seconds,
               time.perf_counter() - tic)
    if folder is not None and not keep_models:
        shutil.rmtree(folder, ignore_errors=True)
    outcome.seconds = time.perf_counter() - tic_unit
    return outcome
