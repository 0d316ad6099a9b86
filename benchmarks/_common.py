"""Shared helpers of the benchmark scripts: machine description, robust statistics, peak memory,
JSON output and the common command-line flags.

Every benchmark prints a short human-readable summary and writes one JSON file holding the
machine (CPU, core count, torch version, threads, load average before and after: this machine
is often shared, so a high load average flags contended numbers), the settings and, per
measured quantity, the median with min and max over ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def add_common_args(parser: argparse.ArgumentParser, *, n_samples: int, epochs: int,
                    repeats: int) -> None:
    """The flags every benchmark accepts (defaults keep a run under about two minutes)."""
    parser.add_argument("--repeats", type=int, default=repeats,
                        help=f"independent repeats; medians are quoted (default {repeats})")
    parser.add_argument("--n-samples", type=int, default=n_samples,
                        help=f"synthetic rows before the 80/20 split (default {n_samples}; "
                        "the paper uses 90000)")
    parser.add_argument("--epochs", type=int, default=epochs,
                        help=f"epochs per measured training run (default {epochs})")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch intra-op threads (default 2, the reference machine's cores)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output path (default benchmarks/results/<name>.json)")


def float_list(text: str) -> tuple[float, ...]:
    """``"0,0.1,1"`` -> (0.0, 0.1, 1.0): a comma-separated flag value."""
    return tuple(float(t) for t in text.split(",") if t.strip())


def int_list(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> (0, 1, 2): a comma-separated flag value (seeds)."""
    return tuple(int(t) for t in text.split(",") if t.strip())


def probe_record(key: str, stage: str, dials: dict, seed: int,
                 probes: dict[str, dict[str, float]], extra_rows: Sequence[dict] = ()) -> dict:
    """One trial record as :func:`disentangled_ssl.experiments.results.tidy_rows` reads it:
    representation -> label -> probe accuracy (plus ``extra_rows``, already tidy), no
    timings."""
    rows = [{"representation": rep, "label": label, "metric": "accuracy", "value": value}
            for rep, probe in probes.items() for label, value in probe.items()]
    return {"key": key, "stage": stage, "dials": dials, "seed": seed, "train_seconds": 0.0,
            "eval_seconds": 0.0, "rows": rows + list(extra_rows)}


def set_threads(threads: int) -> None:
    if threads < 1:
        sys.exit(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _cpuinfo(field: str) -> str | None:
    """The first ``field : value`` of /proc/cpuinfo (None where there is none)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or "unknown"


def cpu_vector_flags() -> list[str]:
    """The CPU's vector extensions that matter for torch's kernels (from /proc/cpuinfo)."""
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
    present = set((_cpuinfo("flags") or "").split())
    return [f for f in wanted if f in present]


def host_speed(repeats: int = 200) -> dict:
    """A 1-second fingerprint of the host, so that runs on different machines can be told
    apart (the CPU model string alone often is just "AMD EPYC"): float32 GEMM GFLOP/s of a
    512 x 512 product and the time of one small elementwise op (a (256, 100) multiply, i.e.
    torch's per-operator overhead), both with the current thread count; best of 3 rounds."""
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    small = torch.randn(256, 100)
    gemm, op = [], []
    for _ in range(3):
        tic = time.perf_counter()
        for _ in range(repeats // 4):
            a @ b
        gemm.append(2 * 512**3 * (repeats // 4) / (time.perf_counter() - tic) / 1e9)
        tic = time.perf_counter()
        for _ in range(repeats * 5):
            small * 2.0
        op.append((time.perf_counter() - tic) / (repeats * 5) * 1e6)
    return {"gemm512_gflops": round(max(gemm), 1), "small_op_us": round(min(op), 2)}


def machine_info() -> dict:
    """Where and how the numbers were taken (printed as one line, returned for the JSON)."""
    info = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_vector_flags": cpu_vector_flags(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1_5_15min": load_average(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    info["host_speed"] = host_speed()
    print(f"machine: {info['cpu']} ({info['cpu_count']} cores, "
          f"{'/'.join(info['cpu_vector_flags']) or 'no AVX2'}), torch {info['torch']} "
          f"({info['torch_cpu_capability']}), {info['torch_threads']} threads; GEMM 512 "
          f"{info['host_speed']['gemm512_gflops']} GFLOP/s, small op "
          f"{info['host_speed']['small_op_us']} us; load {info['load_average_1_5_15min']}",
          flush=True)
    return info


def summary(values: Sequence[float], digits: int = 4) -> dict:
    """Median, min, max and the raw values (rounded) of repeated measurements."""
    vals = [float(v) for v in values]
    return {
        "median": round(statistics.median(vals), digits),
        "min": round(min(vals), digits),
        "max": round(max(vals), digits),
        "values": [round(v, digits) for v in vals],
    }


def fmt(stat: dict, unit: str = "", scale: float = 1.0, digits: int = 0) -> str:
    """``median (min–max) unit`` for printing."""
    def f(v: float) -> str:
        return f"{v * scale:,.{digits}f}"
    return f"{f(stat['median'])} ({f(stat['min'])}–{f(stat['max'])}){unit}"


class PeakRSS:
    """Peak resident memory of this process over a block, in MiB.

    On Linux the kernel's high-water mark (``VmHWM``) is reset on entry by writing 5 to
    ``/proc/self/clear_refs``, so the value is the block's own peak; elsewhere it falls back to
    ``ru_maxrss`` (the process's peak so far, an upper bound).
    """

    def __enter__(self) -> PeakRSS:
        self.reset = False
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.reset = True
        except OSError:
            pass
        self.peak_mib = float("nan")
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_mib = _vm_hwm_mib() if self.reset else _maxrss_mib()


def _vm_hwm_mib() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return _maxrss_mib()


def _maxrss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def write_json(name: str, payload: dict, out: Path | None) -> Path:
    """Write ``payload`` (plus the end-of-run load average) to ``out`` or the default path, and
    print a contention note when the machine was busy."""
    path = out if out is not None else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload.setdefault("machine", {})["load_average_at_end"] = load_average()
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")
    note = contention_note(payload["machine"])
    if note:
        print(note)
    return path


def contention_note(machine: dict) -> str:
    """One line warning when the machine was busy (load average above the core count)."""
    load = machine.get("load_average_1_5_15min") or [0.0]
    end = machine.get("load_average_at_end") or [0.0]
    cores = machine.get("cpu_count") or 1
    if max(load[0], end[0]) > cores:
        return (f"note: load average {load[0]} at start, {end[0]} at end on {cores} cores: "
                "other processes competed for the CPU; treat absolute numbers as lower bounds")
    return ""
