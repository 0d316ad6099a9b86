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


def set_threads(threads: int) -> None:
    if threads < 1:
        sys.exit(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """Where and how the numbers were taken."""
    info = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1_5_15min": load_average(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
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
