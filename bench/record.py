"""One writer for ``bench/results/<bench>.json``: what a bench measured, against what, where.

Every bench script calls :func:`write_results` once at the end with its rows; the file says
which commit and machine produced the numbers and the command that reproduces them, so
``bench/RESULTS.md`` can stay a short summary (history lives in git).

    from record import Row, write_results
    write_results("bench_train", [Row("probe img/s", 120.0, "img/s", peer="bare loop",
                                      peer_value=130.0, ratio=0.92, goal=">= 0.9")])
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Row:
    """One measured figure; ``ratio`` compares it with ``peer_value`` (or a limit) of the run."""

    metric: str
    value: float | None
    unit: str = ""
    peer: str = ""
    peer_value: float | None = None
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on (CPU model, cores, memory, load)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def write_results(bench: str, rows: list[Row], notes: str = "") -> Path:
    """Write ``bench/results/<bench>.json`` (atomic) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    data = {
        "bench": bench,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _commit(),
        "machine": machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": [asdict(r) for r in rows],
        "notes": notes,
    }
    path = RESULTS_DIR / f"{bench}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
