"""Train on memory-mapped ``.npy`` files larger than the memory the process may use.

Writes two float32 ``.npy`` files of ``--gb`` GB in total (in chunks: never whole in memory),
then fits DisentangledSSL on ``MultimodalDataset.from_npy`` (memory-mapped; the estimator
builds the loader, reads one batch per call, ``--num-workers`` worker processes) and embeds
every row back. Memory is bounded by the batch and the workers, not by the data: run it in a
memory-limited cgroup to see it, e.g.

    systemd-run --user --scope -p MemoryMax=1G python examples/memmap_larger_than_memory.py --gb 4

(or, as root with cgroup v1: ``mkdir /sys/fs/cgroup/memory/dssl; echo 1G >
/sys/fs/cgroup/memory/dssl/memory.limit_in_bytes; echo $$ >
/sys/fs/cgroup/memory/dssl/cgroup.procs`` before running). It prints the peak resident
memory. ``benchmarks/bench_loaders.py`` measures the same inside such a cgroup.

Run: ``python examples/memmap_larger_than_memory.py --gb 0.5`` (a quick look; default 2 GB)
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from disentangled_ssl import DisentangledSSL, MultimodalDataset, retrieval_metrics


def write_npy(path: Path, rows: int, features: int, shared: int, seed: int) -> None:
    """A float32 ``.npy`` written chunk by chunk through a plain file (nothing mapped, so the
    writing does not count in this process's memory); its first ``shared`` columns are the
    same in both files (the shared factor)."""
    own = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f4", "fortran_order": False, "shape": (rows, features)})
        for start in range(0, rows, 1 << 16):
            stop = min(rows, start + (1 << 16))
            common = np.random.default_rng([7, start]).standard_normal((stop - start, shared))
            private = own.standard_normal((stop - start, features - shared))
            fh.write(np.concatenate([common, private], axis=1).astype("<f4").tobytes())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gb", type=float, default=2.0, help="total size of the two files")
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--folder", type=Path, default=None, help="where to write (default: temp)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        rows = int(args.gb * 2**30 / (2 * 64 * 4))
        paths = [Path(tmp) / "x1.npy", Path(tmp) / "x2.npy"]
        for k, path in enumerate(paths):
            write_npy(path, rows, features=64, shared=16, seed=k)
        print(f"wrote {rows:,} rows x 64 float32 per file, "
              f"{sum(p.stat().st_size for p in paths) / 2**30:.2f} GB in total")
        tic = time.perf_counter()
        model = DisentangledSSL(shared_dim=32, specific_dim=32, hidden_dim=128,
                                shared_epochs=1, specific_epochs=1, batch_size=1024,
                                lr=1e-3, num_workers=args.num_workers, random_state=0,
                                verbose=True).fit(MultimodalDataset.from_npy(paths))
        print(f"trained both steps in {time.perf_counter() - tic:.0f} s; final losses "
              f"{model.history_['shared'][-1]['loss']:.3f} / "
              f"{model.history_['specific'][-1]['loss']:.3f}")
        # Embeddings of every row would be n x dim in memory: embed a slice here (a
        # MultimodalDataset over any rows of the memory maps), chunk by chunk for the rest.
        head = MultimodalDataset([np.load(p, mmap_mode="r")[:2000] for p in paths])
        emb = model.transform(head, batch_size=1024)
        top = retrieval_metrics(emb.shared1, emb.shared2)
        print(f"file 1 -> file 2 retrieval of 2000 rows by shared code: top-1 {top['top1']:.3f}"
              f" (chance {1 / 2000:.4f})")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"peak resident memory of this process: {peak:.0f} MB (the data was "
          f"{args.gb * 1024:.0f} MB)")


if __name__ == "__main__":
    main()
