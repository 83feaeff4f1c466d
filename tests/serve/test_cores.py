"""Thread pools are sized by the CPUs the process may use, container quotas included."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from oiforge.serve.holder import ServeConfig, cgroup_cpu_limit, usable_cores


@given(st.integers(1, 10**7), st.integers(1, 10**6))
def test_cgroup_v2_quota_rounds_up_to_whole_cpus(quota: int, period: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "cpu.max").write_text(f"{quota} {period}\n")
        assert cgroup_cpu_limit(root) == math.ceil(quota / period)
        assert 1 <= usable_cores(root) <= len(os.sched_getaffinity(0))


def test_no_limit_unreadable_or_garbage_means_affinity(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    assert cgroup_cpu_limit(tmp_path) is None and usable_cores(tmp_path) == cores
    for text in ["max 100000\n", "", "banana\n", "-1 100000", "100000 0"]:
        (tmp_path / "cpu.max").write_text(text)
        assert cgroup_cpu_limit(tmp_path) is None, text
        assert usable_cores(tmp_path) == cores


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("150000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path) == 2
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_serving_pools_follow_the_usable_cores() -> None:
    config = ServeConfig()
    assert config.worker_threads == usable_cores()
    assert config.inference_threads == 1
