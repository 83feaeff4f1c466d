"""How many cores this process may really use (the service sizes its thread pools by it).

``os.cpu_count()`` is the host's count: in a container limited to 2 CPUs on a 64-core host
it says 64, and a service sized by it would run 64 decode and 32 inference threads on 2 CPUs.
This reads the CPU affinity and the cgroup CPU quota (v2 ``cpu.max``, v1 ``cfs_quota_us``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Final

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")


def _ratio(quota: str, period: str) -> int | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None  # "max" (no limit) or an unreadable value
    return math.ceil(q / p) if q > 0 and p > 0 else None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> int | None:
    """Whole CPUs allowed by the cgroup quota (rounded up), or None when unlimited/unknown."""
    try:
        fields = (root / "cpu.max").read_text().split()
        return _ratio(fields[0], fields[1]) if len(fields) == 2 else None
    except OSError:
        pass
    try:
        quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
        period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    return _ratio(quota, period)


def usable_cores(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may run on (affinity), capped by a cgroup quota; at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    return max(1, min(cores, limit) if limit else cores)
