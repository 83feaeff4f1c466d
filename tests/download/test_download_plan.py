"""Resume planning (property-based) and the public API."""

from __future__ import annotations

import pkgutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import oiforge.download
from oiforge.contracts.selection import ImageTask
from oiforge.download import is_transient
from oiforge.download.runner import plan
from oiforge.download.store import Store

STATUSES = ["ok", "missing", "placeholder", "bad_md5", "not_image", "too_large", "timeout",
            "error", "http_404", "http_410", "http_429", "http_503", None]  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(STATUSES), st.booleans()), max_size=30),
    st.booleans(),
)
def test_plan_skips_ok_and_permanent_failures(
    states: list[tuple[str | None, bool]], retry_failed: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        tasks, done = [], {}
        for n, (status, has_file) in enumerate(states):
            image_id = f"{n:016x}"
            tasks.append(ImageTask(image_id))
            if status is not None:
                done[image_id] = status
            if has_file:
                store.image_path(image_id).parent.mkdir(parents=True, exist_ok=True)
                store.image_path(image_id).write_bytes(b"x")
        result = plan(tuple(tasks), done, store, retry_failed)
        todo = {t.image_id for t in result.todo}
        for (status, has_file), task in zip(states, tasks, strict=True):
            if status is None or is_transient(status):
                expected = True
            elif status == "ok":
                expected = not has_file
            else:
                expected = retry_failed
            assert (task.image_id in todo) == expected
        assert result.skipped == len(tasks) - len(todo)


def test_transient_statuses() -> None:
    assert all(is_transient(s) for s in ("timeout", "error", "http_429", "http_500", "http_503"))
    assert not any(is_transient(s) for s in ("ok", "http_404", "http_410", "placeholder"))


def test_public_api_is_exactly_all() -> None:
    public = {n for n in dir(oiforge.download) if not n.startswith("_")}
    modules = {m.name for m in pkgutil.iter_modules(oiforge.download.__path__)} | {"annotations"}
    assert public - modules == set(oiforge.download.__all__)
    assert Path(oiforge.download.__file__).name == "__init__.py"
