"""Training from data loaders: throughput against the in-memory path, memory over a
memory-mapped dataset larger than the memory allowed, and a million generated rows.

Three measurements, each in a fresh subprocess (so that peak RSS is the run's own):

* ``throughput``: the paper's synthetic task (n rows, the paper's sizes, batch 256), DisentangledSSL
  step 1 and step 2, trained (a) from arrays, (b) from a ``MultimodalDataset`` (the estimator
  builds the loader; one read per batch), (c) from a ``TensorDataset`` (the estimator builds the
  loader; one index per batch), (d) from a plain ``DataLoader(TensorDataset, shuffle=True)``
  used as given (torch's per-row fetch and collate). Samples/s from the loop's own epoch
  timings, every epoch but the first of every repeat (the sources interleaved), as the median
  and the best epoch (on a shared machine the best epochs are the uninterrupted ones); the
  ratios loader / arrays are measured side by side in one run.
* ``memmap``: two ``.npy`` files (float32) several times larger than a memory limit, read through
  ``MultimodalDataset.from_npy`` (memory-mapped) for one epoch of step 1. On Linux with a writable
  cgroup-v1 memory controller (root), the run is confined to a cgroup with ``--memory-limit-mb``
  (page cache included), so it can only finish if memory is bounded by the batch, not the data;
  peak RSS and the cgroup's peak usage are reported.
* ``kinds``: seconds per epoch of each kind's default encoders (DisentangledSSL step 1 and
  step 2, batch 256) at a stated size: vectors (20 000 × 100, the paper's MLP), sequences
  (2048 × 50 steps × 20 features), images (2048 × 3 × 32 × 32), tokens (2048 × 32 ids of a
  5000-word vocabulary), each paired with a 100-feature vector modality.
* ``stream``: ``fit(DataLoader(SyntheticStream(n_rows=1_000_000), batch_size=None,
  num_workers=--num-workers))`` (the paper's generator drawn batch by batch) for one epoch of
  step 1, against the in-memory path on 20 000 materialised rows trained for the same number
  of steps; shared-code linear-probe accuracy on yc (the shared label) on
  held-out rows, and the peak RSS of each run, next to what materialising the rows would take.

Usage::

    python benchmarks/bench_loaders.py                       # all three, a few minutes on 2 cores
    python benchmarks/bench_loaders.py --only throughput --n-samples 20000 --epochs 4

Writes ``benchmarks/results/loaders.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine_info, write_json

HERE = Path(__file__).resolve().parent
CGROUP = Path("/sys/fs/cgroup/memory")


def _child(kind: str, options: dict) -> dict:
    """Run ``_run_<kind>`` in a fresh interpreter (optionally inside a memory cgroup)."""
    arg = json.dumps(json.dumps(options))
    code = (f"import sys, json; sys.path.insert(0, {str(HERE)!r}); import bench_loaders as b; "
            f"print('RESULT ' + json.dumps(b._run_{kind}(json.loads({arg}))))")
    cmd = [sys.executable, "-c", code]
    group = None
    if options.get("memory_limit_mb") and CGROUP.is_dir() and os.access(CGROUP, os.W_OK):
        group = CGROUP / f"dssl-bench-{os.getpid()}"
        group.mkdir(exist_ok=True)
        (group / "memory.limit_in_bytes").write_text(str(options["memory_limit_mb"] << 20))
        cmd = ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh", *cmd]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{kind} failed ({out.returncode}):\n{out.stderr[-3000:]}")
        result = json.loads(next(line for line in out.stdout.splitlines()
                                 if line.startswith("RESULT "))[7:])
        if group is not None:
            result["cgroup_limit_mb"] = options["memory_limit_mb"]
            result["cgroup_peak_mb"] = int((group / "memory.max_usage_in_bytes").read_text()) >> 20
            result["cgroup_limit_hits"] = int((group / "memory.failcnt").read_text())
        return result
    finally:
        if group is not None:
            group.rmdir()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rates(est, n_train: int) -> dict[str, list[float]]:
    """Samples/s of every epoch but the first (warm-up), per stage."""
    rows = (n_train // 256) * 256
    return {stage: [rows / r["seconds"] for r in history[1:] or history]
            for stage, history in est.history_.items()}


def _run_throughput(o: dict) -> dict:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from disentangled_ssl import DisentangledSSL, make_synthetic
    from disentangled_ssl.data.readers import MultimodalDataset

    torch.set_num_threads(o["threads"])
    data = make_synthetic(n_samples=o["n_samples"], seed=0)
    params = dict(shared_epochs=o["epochs"], specific_epochs=o["epochs"], random_state=0,
                  verbose=False, device="cpu")
    sources = {
        "arrays": lambda: [data.x1, data.x2],
        "dataset": lambda: MultimodalDataset([data.x1, data.x2]),
        "tensordataset": lambda: TensorDataset(torch.from_numpy(data.x1),
                                               torch.from_numpy(data.x2)),
        "dataloader": lambda: DataLoader(TensorDataset(torch.from_numpy(data.x1),
                                                       torch.from_numpy(data.x2)),
                                         batch_size=256, shuffle=True, drop_last=True),
    }
    rates: dict[str, dict[str, list[float]]] = {k: {} for k in sources}
    for _ in range(o["repeats"]):  # interleaved, so that each source sees the same load
        for name, make in sources.items():
            est = DisentangledSSL(**params).fit(make())
            for stage, values in _rates(est, len(data)).items():
                rates[name].setdefault(stage, []).extend(values)

    def stat(values: list[float], how: str) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2] if how == "median" else ordered[-1]

    out: dict = {"epochs_measured_per_source": len(rates["arrays"]["shared"])}
    for how in ("median", "best"):
        value = {name: {stage: round(stat(v, how)) for stage, v in stages.items()}
                 for name, stages in rates.items()}
        out[f"samples_per_s_{how}"] = value
        out[f"ratio_to_arrays_{how}"] = {
            name: {stage: round(value[name][stage] / value["arrays"][stage], 3)
                   for stage in value["arrays"]} for name in sources}
    return out


def _run_memmap(o: dict) -> dict:
    import numpy as np
    import torch

    from disentangled_ssl import DisentangledSSL
    from disentangled_ssl.data.readers import MultimodalDataset

    torch.set_num_threads(o["threads"])
    ds = MultimodalDataset.from_npy(o["paths"])
    tic = time.perf_counter()
    est = DisentangledSSL(shared_epochs=1, specific_epochs=0, batch_size=o["batch_size"],
                          random_state=0, verbose=False, device="cpu",
                          num_workers=o["num_workers"]).fit(ds)
    seconds = time.perf_counter() - tic
    # Embeddings are n x dim in memory: embed the first 10 000 rows (in order, in chunks).
    head = MultimodalDataset([view[:10_000] for view in ds.views])
    emb = est.transform(head, batch_size=2048)
    return {"rows": len(ds), "seconds": round(seconds, 1),
            "steps": len(ds) // o["batch_size"], "peak_rss_mb": round(_peak_rss_mb()),
            "loss": est.history_["shared"][-1]["loss"],
            "embedded_rows": int(emb.shared1.shape[0]),
            "embeddings_finite": bool(np.isfinite(emb.shared1).all())}


def _run_kinds(o: dict) -> dict:
    import numpy as np
    import torch

    from disentangled_ssl import DisentangledSSL, make_synthetic

    torch.set_num_threads(o["threads"])
    rng = np.random.default_rng(0)
    vec = make_synthetic(n_samples=20000, seed=0)
    n = 2048
    other = rng.standard_normal((n, 100)).astype(np.float32)
    cases = {
        "vector (20000 x 100)": ([vec.x1, vec.x2], "auto"),
        "sequence (2048 x 50 x 20)": (
            [rng.standard_normal((n, 50, 20)).astype(np.float32), other], "auto"),
        "image (2048 x 3 x 32 x 32)": (
            [rng.random((n, 3, 32, 32)).astype(np.float32), other], "auto"),
        "tokens (2048 x 32, vocabulary 5000)": (
            [rng.integers(1, 5000, (n, 32)), other], ("tokens", "vector")),
    }
    out = {}
    for name, (views, kinds) in cases.items():
        est = DisentangledSSL(modalities=kinds, shared_epochs=2, specific_epochs=2,
                              random_state=0, verbose=False, device="cpu").fit(views)
        out[name] = {stage: round(h[-1]["seconds"], 2) for stage, h in est.history_.items()}
        out[name]["rows"] = len(views[0])
    return out


def _run_stream(o: dict) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from disentangled_ssl import DisentangledSSL
    from disentangled_ssl.data.synthetic import SyntheticStream
    from disentangled_ssl.evaluation import linear_probe

    torch.set_num_threads(o["threads"])
    stream = SyntheticStream(n_rows=o["rows"], batch_size=256, seed=0)
    steps = len(stream)
    train, test = stream.sample(20000, seed=101), stream.sample(5000, seed=202)
    params = dict(specific_epochs=0, random_state=0, verbose=False, device="cpu")
    tic = time.perf_counter()
    if o["source"] == "stream":  # a DataLoader over batches generated on the fly
        loader = DataLoader(stream, batch_size=None, num_workers=o["num_workers"])
        est = DisentangledSSL(shared_epochs=1, **params).fit(loader)
    else:
        epochs = max(1, round(steps / (len(train) // 256)))
        est = DisentangledSSL(shared_epochs=epochs, **params).fit([train.x1, train.x2])
        steps = epochs * (len(train) // 256)
    seconds = time.perf_counter() - tic
    tr, te = est.transform([train.x1, train.x2]), est.transform([test.x1, test.x2])
    acc = linear_probe(tr.shared, train.labels, te.shared, test.labels)
    return {"source": o["source"], "steps": steps, "seconds": round(seconds, 1),
            "probe_shared": {k: round(v, 4) for k, v in acc.items()},
            "peak_rss_mb": round(_peak_rss_mb())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=["throughput", "memmap", "kinds", "stream"],
                   action="append")
    p.add_argument("--n-samples", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--memmap-gb", type=float, default=4.0,
                   help="total size of the two .npy files (default 4 GB)")
    p.add_argument("--memory-limit-mb", type=int, default=1024)
    p.add_argument("--memmap-features", type=int, default=1024,
                   help="features per row of the .npy files (default 1024: a row is a page)")
    p.add_argument("--memmap-batch-size", type=int, default=1024)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--stream-rows", type=int, default=1_000_000)
    p.add_argument("--out", type=Path, default=None,
                   help="JSON output (default benchmarks/results/loaders.json)")
    args = p.parse_args()
    only = args.only or ["throughput", "memmap", "kinds", "stream"]
    result: dict = {"machine": machine_info(), "settings": vars(args) | {"out": str(args.out)}}

    if "throughput" in only:
        r = _child("throughput", {"n_samples": args.n_samples, "epochs": args.epochs,
                                  "repeats": args.repeats, "threads": args.threads})
        result["throughput"] = r
        for how in ("median", "best"):
            for name, stages in r[f"samples_per_s_{how}"].items():
                print(f"throughput ({how} epoch) {name:<10} " + ", ".join(
                    f"{s} {v:,} samples/s (x{r[f'ratio_to_arrays_{how}'][name][s]:.2f})"
                    for s, v in stages.items()))

    if "memmap" in only:
        import numpy as np

        with tempfile.TemporaryDirectory(dir=os.environ.get("DSSL_BENCH_TMP")) as tmp:
            width = args.memmap_features
            rows = int(args.memmap_gb * 2**30 / (2 * width * 4))
            paths = [str(Path(tmp) / f"x{i}.npy") for i in (1, 2)]
            rng = np.random.default_rng(0)
            for path in paths:  # written in chunks: never whole in memory
                with open(path, "wb") as fh:  # a plain file: nothing mapped in this process
                    np.lib.format.write_array_header_1_0(
                        fh, {"descr": "<f4", "fortran_order": False, "shape": (rows, width)})
                    for start in range(0, rows, 1 << 14):
                        stop = min(rows, start + (1 << 14))
                        g = np.random.default_rng([0, start])
                        shared = g.standard_normal((stop - start, 20), dtype=np.float32)
                        own = rng.standard_normal((stop - start, width - 20), dtype=np.float32)
                        fh.write(np.concatenate([shared, own], axis=1).tobytes())
            size_mb = sum(os.path.getsize(p) for p in paths) >> 20
            for path in paths:  # out of the page cache: the child's reads are charged to it
                fd = os.open(path, os.O_RDONLY)
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                os.close(fd)
            r = _child("memmap", {"paths": paths, "threads": args.threads,
                                  "batch_size": args.memmap_batch_size,
                                  "num_workers": args.num_workers,
                                  "memory_limit_mb": args.memory_limit_mb})
        r["data_mb"] = size_mb
        result["memmap"] = r
        print(f"memmap: {size_mb:,} MB of .npy ({r['rows']:,} rows) trained in {r['seconds']} s; "
              f"peak RSS {r['peak_rss_mb']} MB" + (
                  f", cgroup limit {r['cgroup_limit_mb']} MB, cgroup peak {r['cgroup_peak_mb']} MB"
                  if "cgroup_limit_mb" in r else " (no cgroup: limit not enforced)"))

    if "kinds" in only:
        result["kinds"] = {}
        for threads in sorted({1, args.threads}):
            r = _child("kinds", {"threads": threads})
            result["kinds"][f"{threads} thread(s)"] = r
            for name, t in r.items():
                print(f"kinds, {threads} thread(s): {name:<36} seconds per epoch: step 1 "
                      f"{t['shared']}, step 2 {t['specific']}")

    if "stream" in only:
        runs = [_child("stream", {"source": s, "rows": args.stream_rows, "threads": args.threads,
                                  "num_workers": args.num_workers})
                for s in ("stream", "arrays")]
        result["stream"] = {"runs": runs,
                            "materialised_mb": round(args.stream_rows * 200 * 4 / 2**20)}
        for r in runs:
            print(f"stream {r['source']:<7} {r['steps']} steps in {r['seconds']} s: probe yc "
                  f"{r['probe_shared']['yc']:.3f} (y1 {r['probe_shared']['y1']:.3f}, y2 "
                  f"{r['probe_shared']['y2']:.3f}); peak RSS {r['peak_rss_mb']} MB")
        print(f"materialising {args.stream_rows:,} rows would take "
              f"{result['stream']['materialised_mb']} MB for x1 + x2 alone")
    write_json("loaders", result, args.out)


if __name__ == "__main__":
    main()
