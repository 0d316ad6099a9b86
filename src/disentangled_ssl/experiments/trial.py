"""Running units: train step 1 once (or reload it), then every step-2 trial on top of it.

Each finished trial is recorded as soon as it is done, so an interruption loses at most the
trial in flight. The step-1 model is saved (``DisentangledSSL.save``) right after training, so a
unit interrupted during its λ trials resumes without retraining step 1. A saved step-1 model
that cannot be reused (it does not load, or belongs to another seed) is not dropped silently:
a warning names the folder and the reason, and ``events.jsonl`` records a ``discard_shared``
event before step 1 is trained again.

:func:`run_units` can also train several units of one seed that differ only in β as one
batched ensemble (:func:`~disentangled_ssl.estimator.fit_shared_grid`), and each unit's λ
trials as another (:func:`~disentangled_ssl.estimator.fit_specific_grid`); every model then
equals its one-by-one run to float tolerance.
"""

from __future__ import annotations

import datetime
import math
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._version import __version__
from disentangled_ssl.data.scaling import apply_scaler
from disentangled_ssl.data.synthetic import PairedData
from disentangled_ssl.estimator import (
    DisentangledSSL,
    Embeddings,
    fit_shared_grid,
    fit_specific_grid,
)
from disentangled_ssl.evaluation.probe import linear_probe
from disentangled_ssl.experiments.spec import SpecificTrial, Unit
from disentangled_ssl.experiments.store import EventLog, TrialStore, worker_name
from disentangled_ssl.losses.disentangled import SharedLoss, SpecificLoss
from disentangled_ssl.losses.functional import gaussian_kl, product_of_experts
from disentangled_ssl.methods import pair_average
from disentangled_ssl.nn.modalities import Vector

Row = dict[str, Any]
Split = tuple[PairedData, PairedData]


# ---------------------------------------------------------------------- evaluation
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
    if stage not in ("shared", "specific"):
        raise DSSLError(f"stage must be 'shared' or 'specific', got {stage!r}")
    shared = [torch.from_numpy(np.ascontiguousarray(s)) for s in emb.shared_list]
    chunks = _chunks(shared[0].shape[0], batch_size)
    specific = [torch.from_numpy(np.ascontiguousarray(s)) for s in emb.specific_list]
    if stage == "specific" and not specific:
        raise DSSLError("held-out step-2 terms need specific embeddings")
    shared_loss, specific_loss = SharedLoss(0.0, temperature), SpecificLoss(0.0, temperature)
    sums: dict[str, float] = {}
    for part in chunks:
        if stage == "shared":
            codes = [c[part] for c in shared]
            terms = pair_average(len(codes), lambda i, j, c=codes: shared_loss(
                F.normalize(c[i], dim=-1), F.normalize(c[j], dim=-1), c[i], c[j]))
        else:
            terms = specific_loss([(s[part], s[part]) for s in specific],
                                  [(c[part], c[part]) for c in shared])
        for name, value in terms.items():
            if name != "loss":
                sums[name] = sums.get(name, 0.0) + float(value) / len(chunks)
    if stage == "shared":
        sums["mi_bound"] = math.log(chunks[0].stop - chunks[0].start) - sums["infonce"]
    return sums


def _probe_names(probes: Sequence[str] | None, family: str, emb: Embeddings) -> list[str]:
    """The representations of ``family`` ("shared" or "specific") to probe: ``probes``
    (a method without specific codes probes ``sharedK`` for ``specificK``), or by default
    ``shared`` and every specific code."""
    if probes is None:
        names = ["shared", *(f"specific{i + 1}" for i in range(len(emb.specific_list)))]
    elif emb.specific_list:
        names = list(probes)
    else:
        names = list(dict.fromkeys(r.replace("specific", "shared") for r in probes))
    return [r for r in names if r.startswith(family)]


def _features(emb: Embeddings, name: str) -> np.ndarray:
    if name == "shared":
        return emb.shared
    codes = emb.as_dict()
    if name not in codes:
        raise DSSLError(f"unknown representation {name!r}; choose from shared, "
                        f"{', '.join(codes)}")
    return codes[name]


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


def evaluate(est: DisentangledSSL, train: PairedData, test: PairedData, stage: str,
             probes: Sequence[str] | None = None) -> list[Row]:
    """Probe accuracies and held-out label-free terms of one fitted estimator.

    ``stage="shared"``: the shared codes (``shared`` = shared1 ‖ shared2, as the paper's
    Figure 3(a), or the ``sharedK`` named in ``probes``) and the step-1 terms.
    ``stage="specific"``: the specific codes, each on every label, and the step-2 terms
    under representation ``"specific"``. ``stage="all"`` (one-stage methods): both, each row
    tagged with its stage. Probes are fitted on ``train`` and scored on ``test``; label-free
    terms use ``test`` only.
    """
    te = est.transform(test.x1, test.x2)
    tr = est.transform(train.x1, train.x2) if train.labels else None
    tag = stage == "all"
    rows: list[Row] = []
    for family in ("shared", "specific"):
        if stage not in (family, "all") or (family == "specific" and not te.specific_list):
            continue
        for rep in _probe_names(probes, family, te):
            probe = (linear_probe(_features(tr, rep), train.labels, _features(te, rep),
                                  test.labels) if tr is not None else None)
            rows += _rows(rep, probe, {}, family if tag else None)
        terms = heldout_terms(te, temperature=float(est.temperature),
                              batch_size=int(est.batch_size), stage=family)
        rows += _rows(family, None, terms, family if tag else None)
    if stage in ("specific", "all"):
        rows += diagnostic_rows(est, test)
    return rows


# ---------------------------------------------------------------------- diagnostics
@torch.no_grad()
def dmvae_diagnostics(est: DisentangledSSL, data: PairedData, batch_size: int = 8192
                      ) -> dict[str, float]:
    """Has a DMVAE trained? On ``data``'s rows, from the posterior means (no sampling, no
    augmentation): ``r2_x1``, ``r2_x2``, the fraction of the variance of each modality (summed
    over its features, around its mean on these rows) that the decoder explains from
    ``[private mean, product-of-experts shared mean]``; and the KL terms of the objective per
    row, ``kl_private`` = KL(q(p1|x1)) + KL(q(p2|x2)) and ``kl_shared`` = KL(q(s|x1, x2)) (each
    in nats; 0 is the prior, i.e. a latent that carries nothing)."""
    model = est.model_.eval()
    device = next(model.parameters()).device
    decoders = model.extra["decoders"]
    sq_err, kl_private, kl_shared = [0.0, 0.0], 0.0, 0.0
    xs = [np.asarray(data.x1, dtype=np.float32), np.asarray(data.x2, dtype=np.float32)]
    targets = [apply_scaler(model, i, torch.from_numpy(x).to(device)) for i, x in enumerate(xs)]
    n = targets[0].shape[0]
    for start in range(0, n, batch_size):
        x = [t[start:start + batch_size] for t in targets]
        shared = [model.shared[i].posterior(x[i]) for i in range(2)]
        private = [model.specific[i].posterior(x[i]) for i in range(2)]
        joint = product_of_experts(*shared[0], *shared[1])
        for i in range(2):
            recon = decoders[i](torch.cat([private[i][0], joint[0]], dim=1))
            sq_err[i] += float(((recon - x[i]) ** 2).sum())
        kl_private += float(gaussian_kl(*private[0]) + gaussian_kl(*private[1]))
        kl_shared += float(gaussian_kl(*joint))
    out = {}
    for i, t in enumerate(targets):
        total = float(((t - t.mean(0)) ** 2).sum())
        out[f"r2_x{i + 1}"] = 1.0 - sq_err[i] / total if total > 0 else float("nan")
    out.update(kl_private=kl_private / n, kl_shared=kl_shared / n)
    return out


def diagnostic_rows(est: DisentangledSSL, test: PairedData) -> list[Row]:
    """Method-specific evidence of training, as tidy rows of the specific stage (DMVAE: its
    reconstruction R² and KL per row on the held-out rows, representation ``dmvae``; for
    vector modalities); none for the other methods."""
    if est.method != "dmvae" or not all(isinstance(k, Vector) for k in est.modalities_):
        return []
    return [{"representation": "dmvae", "label": "", "metric": name, "value": value,
             "stage": "specific"} for name, value in dmvae_diagnostics(est, test).items()]


# ---------------------------------------------------------------------- recording
@dataclass
class UnitOutcome:
    """What :func:`run_units` did: the trial keys it recorded, whether it trained a step 1 (or
    a one-stage model), and the seconds it spent."""

    recorded: list[str] = field(default_factory=list)
    trained_shared: bool = False
    seconds: float = 0.0


@dataclass
class _Recorder:
    """Writes finished trials of one unit to the store and the event log."""

    unit: Unit
    store: TrialStore
    log: EventLog
    outcome: UnitOutcome
    on_trial: Callable[[str], None] | None = None

    def __call__(self, key: str, stage: str, dials: dict[str, Any], rows: list[Row],
                 train_seconds: float, eval_seconds: float,
                 history: dict[str, list[dict[str, float]]] | None = None) -> None:
        self.store.put(key, {
            "key": key, "unit": self.unit.key, "stage": stage, "dials": dials,
            "seed": self.unit.seed, "rows": rows, "train_seconds": round(train_seconds, 3),
            "eval_seconds": round(eval_seconds, 3), "worker": worker_name(),
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "library_version": __version__, "history": history or {},
        })
        self.log("trial_done", unit=self.unit.key, trial=key, stage=stage)
        self.outcome.recorded.append(key)
        if self.on_trial is not None:
            self.on_trial(key)

    def evaluated(self, key: str, stage: str, dials: dict[str, Any], est: DisentangledSSL,
                  data: Split, train_seconds: float, evaluation: str | None = None) -> None:
        """Evaluate ``est`` and record trial ``key`` with its estimator's ``history_`` (stage ->
        per-epoch loss terms: the loss curves of ``dssl compare``)."""
        tic = time.perf_counter()
        rows = evaluate(est, *data, evaluation or stage, self.unit.probes)
        self(key, stage, dials, rows, train_seconds, time.perf_counter() - tic, est.history_)


# ---------------------------------------------------------------------- step 1
def _estimator(unit: Unit, device: str) -> DisentangledSSL:
    return DisentangledSSL(**{**unit.params, "device": device, "verbose": False})


def _discard(folder: Path, unit: Unit, reason: str, log: EventLog) -> None:
    """Say that a saved step-1 model cannot be reused, then delete it."""
    warnings.warn(f"the saved step-1 model {folder} cannot be reused ({reason}); deleting it "
                  "and training step 1 again", UserWarning, stacklevel=3)
    log("discard_shared", unit=unit.key, trial=unit.shared_key, folder=str(folder),
        reason=reason)
    shutil.rmtree(folder, ignore_errors=True)


def load_step1(folder: Path | None, unit: Unit, device: str, log: EventLog
               ) -> DisentangledSSL | None:
    """The saved step-1 model of ``unit`` if it is there and matches; else ``None``.

    A folder that holds no usable model of this unit (it does not load, was trained with
    another seed, or has no trained step 1) is reported (a warning naming the folder and
    the reason, and a ``discard_shared`` event) and deleted.
    """
    if folder is None or not folder.is_dir():
        return None
    try:
        est = DisentangledSSL.load(folder, device=device)
    except DSSLError as exc:
        reason = f"it does not load: {str(exc).splitlines()[0] if str(exc) else type(exc)}"
    else:
        if est.seed_ != unit.seed:
            reason = f"it was trained with seed {est.seed_}, this unit has seed {unit.seed}"
        elif "shared" not in est.history_:
            reason = "it has no trained step 1"
        else:
            log("load_shared", unit=unit.key, trial=unit.shared_key)
            return est
    _discard(folder, unit, reason, log)
    return None


def _shared_seconds(est: DisentangledSSL) -> float:
    return float(sum(h.get("seconds", 0.0) for h in est.history_.get("shared", [])))


def _train_step1(units: Sequence[Unit], train: PairedData, device: str, batched: bool,
                 log: EventLog) -> list[tuple[DisentangledSSL, float]]:
    """Step 1 of ``units`` (one ensemble over β when ``batched``): (estimator, seconds)."""
    for unit in units:
        log("fit_shared", unit=unit.key, trial=unit.shared_key, dials=dict(unit.dials),
            seed=unit.seed)
    if not batched or len(units) == 1:
        return [(est.fit_shared(train.x1, train.x2), _shared_seconds(est))
                for est in (_estimator(u, device) for u in units)]
    tic = time.perf_counter()
    fitted = fit_shared_grid(_estimator(units[0], device),
                             [u.params["beta"] for u in units], train.x1, train.x2)
    seconds = (time.perf_counter() - tic) / len(fitted)
    return [(est, seconds) for est in fitted]


# ---------------------------------------------------------------------- step 2
def _train_step2(unit: Unit, est: DisentangledSSL, pending: Sequence[SpecificTrial],
                 data: Split, record: _Recorder, batched: bool) -> None:
    """Every pending step-2 trial of ``unit`` on the fitted step 1 ``est``, recorded as it
    finishes; one ensemble over λ when ``batched`` and the trials differ only in λ."""
    train = data[0]
    others = [{k: v for k, v in t.params.items() if k != "lam"} for t in pending]
    grid = batched and len(pending) > 1 and all(o == others[0] for o in others)
    for trial in pending if grid else ():
        record.log("fit_specific", unit=unit.key, trial=trial.key,
                   dials={**unit.dials, **trial.dials}, seed=unit.seed)
    if grid:
        tic = time.perf_counter()
        fitted = fit_specific_grid(est.with_params(**others[0]),
                                   [t.params["lam"] for t in pending], train.x1, train.x2)
        seconds = (time.perf_counter() - tic) / len(fitted)
        for trial, spec in zip(pending, fitted):
            record.evaluated(trial.key, "specific", {**unit.dials, **trial.dials}, spec, data,
                             seconds)
        return
    for trial in pending:
        spec = est.with_params(**trial.params)
        record.log("fit_specific", unit=unit.key, trial=trial.key,
                   dials={**unit.dials, **trial.dials}, seed=unit.seed)
        tic = time.perf_counter()
        spec.fit_specific(train.x1, train.x2)
        seconds = time.perf_counter() - tic
        record.evaluated(trial.key, "specific", {**unit.dials, **trial.dials}, spec, data,
                         seconds)


# ---------------------------------------------------------------------- units
def _run_one_stage(unit: Unit, data: Split, record: _Recorder, device: str) -> None:
    """A one-stage method's unit: one ``fit``, every code evaluated in one trial."""
    est = _estimator(unit, device)
    record.log("fit", unit=unit.key, trial=unit.shared_key, dials=dict(unit.dials),
               seed=unit.seed)
    tic = time.perf_counter()
    est.fit(data[0].x1, data[0].x2)
    record.outcome.trained_shared = True
    record.evaluated(unit.shared_key, "shared", dict(unit.dials), est, data,
                     time.perf_counter() - tic, evaluation="all")


def _run_two_step(group: Sequence[Unit], data: Split, records: dict[str, _Recorder],
                  done: set[str], *, model_dir: Path | None, keep_models: bool, device: str,
                  batched: bool) -> None:
    """Step 1 of ``group`` (reloaded where saved, else trained and saved), then each unit's
    shared trial and step-2 trials."""
    log = records[group[0].key].log
    folders = {u.key: model_dir / u.key if model_dir is not None else None for u in group}
    fitted = {u.key: (est, _shared_seconds(est)) for u in group
              if (est := load_step1(folders[u.key], u, device, log)) is not None}
    missing = [u for u in group if u.key not in fitted]
    for unit, pair in zip(missing, _train_step1(missing, data[0], device, batched, log)):
        fitted[unit.key] = pair
        records[unit.key].outcome.trained_shared = True
        pending = any(t.key not in done for t in unit.specific)
        if folders[unit.key] is not None and (pending or keep_models):
            pair[0].save(folders[unit.key], overwrite=True)
    for unit in group:
        est, seconds = fitted[unit.key]
        if unit.shared_key not in done:
            records[unit.key].evaluated(unit.shared_key, "shared", dict(unit.dials), est, data,
                                        seconds)
        _train_step2(unit, est, [t for t in unit.specific if t.key not in done], data,
                     records[unit.key], batched)
        if folders[unit.key] is not None and not keep_models:
            shutil.rmtree(folders[unit.key], ignore_errors=True)


def run_units(
    units: Sequence[Unit],
    data: Split,
    store: TrialStore,
    *,
    model_dir: Path | None = None,
    keep_models: bool = True,
    events: EventLog | None = None,
    device: str = "cpu",
    batched: bool = False,
    on_trial: Callable[[str], None] | None = None,
) -> UnitOutcome:
    """Compute every trial of ``units`` not yet in ``store``.

    Args:
        units: step-1 configurations with their step-2 trials. With ``batched``, the
            two-step units must share their seed and differ only in ``beta``.
        data: (train, held-out) splits.
        store: where finished trials are recorded (and looked up, to skip them).
        model_dir: folder for saved step-1 models (``<model_dir>/<unit.key>``); ``None`` keeps
            step 1 in memory only.
        keep_models: keep a saved step-1 model after its unit is complete (else delete it).
        events: audit log of trainings.
        device: training device.
        batched: train the units' step 1 as one ensemble over β, and each unit's step-2
            trials as one ensemble over λ (every model equal to its one-by-one run to float
            tolerance); otherwise each unit runs on its own, one model after the other.
        on_trial: called with each trial key right after it is recorded.

    Returns:
        :class:`UnitOutcome` (summed over the units).
    """
    tic = time.perf_counter()
    log, outcome, done = events or EventLog(None), UnitOutcome(), store.done()
    todo = [u for u in units if any(k not in done for k in u.trial_keys)]
    records = {u.key: _Recorder(u, store, log, outcome, on_trial) for u in todo}
    for unit in (u for u in todo if not u.two_step):
        _run_one_stage(unit, data, records[unit.key], device)
    steps = [u for u in todo if u.two_step]
    for group in ([steps] if batched else [[u] for u in steps]):
        _run_two_step(group, data, records, done, model_dir=model_dir,
                      keep_models=keep_models, device=device, batched=batched)
    outcome.seconds = time.perf_counter() - tic
    return outcome


def run_unit(unit: Unit, data: Split, store: TrialStore, **kwargs: Any) -> UnitOutcome:
    """Compute every trial of one ``unit`` not yet in ``store``; the keyword arguments are
    those of :func:`run_units`."""
    return run_units([unit], data, store, **kwargs)
