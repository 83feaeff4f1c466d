"""Every contract file written by its writer reads back the same through its reader."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oiforge.contracts import (
    MANIFEST_SCHEMA,
    SELECTION_SCHEMA,
    ClassInfo,
    DatasetClasses,
    Journal,
    JournalRow,
    Labels,
    ModelInfo,
    Preprocessing,
    Selection,
    conform_selection,
    count_selected_images,
    read_classes,
    read_journal,
    read_labels,
    read_manifest,
    read_run_config,
    read_selection_table,
    rotated_images,
    selection_version,
    status_counts,
    store_image_path,
    write_classes,
    write_labels,
    write_manifest,
)
from oiforge.errors import InvalidInputError, MalformedFileError, StageError

IDS = ("000000000000000a", "000000000000000b")


def _selection(n_rows: int = 3) -> pa.Table:
    rows = [
        {"image_id": IDS[i % 2], "split": "train", "label_mid": "/m/01yrx", "label_name": "Cat"}
        for i in range(n_rows)
    ]
    full = [{name: row.get(name) for name in SELECTION_SCHEMA.names if name != "spec_hash"}
            for row in rows]  # fmt: skip
    schema = pa.schema([f for f in SELECTION_SCHEMA if f.name != "spec_hash"])
    return conform_selection(pa.Table.from_pylist(full, schema=schema), "abc", "v7")


def test_selection_roundtrip(tmp_path: Path) -> None:
    sel = Selection(_selection(), "abc", ["Cat"])
    path = sel.write(tmp_path / "selection.parquet")
    table = read_selection_table(path)
    assert table.schema.remove_metadata() == SELECTION_SCHEMA
    assert table.to_pylist() == sel.table.to_pylist()
    assert selection_version(path) == "v7"
    assert count_selected_images(path) == 2
    assert sel.counts == {"Cat": {"train": 3, "validation": 0, "test": 0}}
    assert sel.image_counts == {"Cat": {"train": 2, "validation": 0, "test": 0}}


def test_selection_reader_names_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="selection file not found"):
        read_selection_table(tmp_path / "none.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(MalformedFileError, match="not a readable Parquet file"):
        read_selection_table(tmp_path / "junk.parquet")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "noid.parquet")
    with pytest.raises(MalformedFileError, match="no `image_id` column"):
        read_selection_table(tmp_path / "noid.parquet")
    pq.write_table(pa.table({"image_id": IDS}), tmp_path / "few.parquet")
    with pytest.raises(MalformedFileError, match="missing columns"):
        read_selection_table(tmp_path / "few.parquet", required=("image_id", "split"))


def test_journal_roundtrip(tmp_path: Path) -> None:
    rows = [
        JournalRow(IDS[0], "ok", "resized", "http://x/a", 10, "f" * 64, 4, 3, 1, rotated=90),
        JournalRow(IDS[1], "http_404", attempts=2, error="HTTP 404"),
    ]
    with Journal(tmp_path) as journal:
        journal.append(rows)
        journal.append([JournalRow(IDS[1], "http_404", attempts=1)])  # attempts add up
    table = read_journal(tmp_path).to_pylist()
    assert table[0] == {**rows[0].__dict__}
    assert table[1]["attempts"] == 3
    assert status_counts(tmp_path) == {"ok": 1, "http_404": 1}
    assert rotated_images(tmp_path) == {IDS[0]}
    assert store_image_path(tmp_path, IDS[0]) == tmp_path / "00" / f"{IDS[0]}.jpg"
    with pytest.raises(ValueError, match="ImageID"):
        store_image_path(tmp_path, "../etc/passwd")
    with pytest.raises(StageError, match="no download journal"):
        read_journal(tmp_path / "elsewhere")
    assert rotated_images(tmp_path / "elsewhere") == frozenset()


def test_manifest_and_classes_roundtrip(tmp_path: Path) -> None:
    row = dict.fromkeys(MANIFEST_SCHEMA.names)
    row.update(sample_path="train/Cat/a.jpg", key=IDS[0], split="train", image_id=IDS[0])
    write_manifest(tmp_path, [row])
    assert read_manifest(tmp_path).to_pylist() == [row]
    classes = (ClassInfo(0, "Cat", "Cat", "/m/01yrx"), ClassInfo(1, "Dog", "Dog", "/m/0bt9lr"))
    write_classes(tmp_path, classes)
    assert read_classes(tmp_path) == DatasetClasses(classes)
    with pytest.raises(StageError, match=r"no manifest\.parquet"):
        read_manifest(tmp_path / "none")
    assert read_classes(tmp_path / "none") is None


def test_classes_json_reads_the_multilabel_form(tmp_path: Path) -> None:
    """The multi-label form: an object with ``task``, the classes and how labels were made."""
    classes = (ClassInfo(0, "Cat", "Cat", "/m/01yrx"),)
    details = {"expand_up": True, "negatives_source": "verified", "min_confidence": None}
    write_classes(tmp_path, classes, task="multilabel", details=details)
    doc = json.loads((tmp_path / "classes.json").read_text())
    assert doc == {"task": "multilabel", "classes": [classes[0].to_dict()], **details}
    assert read_classes(tmp_path) == DatasetClasses(classes, "multilabel", details)
    (tmp_path / "classes.json").write_text('{"task": "detection", "classes": []}')
    with pytest.raises(MalformedFileError, match="unknown task"):
        read_classes(tmp_path)


def test_labels_roundtrip(tmp_path: Path) -> None:
    pre = Preprocessing(size=96, crop_pct=1.0)
    labels = Labels((ClassInfo(0, "Cat", mid="/m/01yrx"),), pre)
    write_labels(tmp_path / "labels.json", labels)
    assert read_labels(tmp_path / "labels.json") == labels
    exported = Labels(labels.classes, pre, ModelInfo("m", "v1", "arch"))
    write_labels(tmp_path / "labels.json", exported)
    assert read_labels(tmp_path / "labels.json") == exported
    assert labels.model_info == ModelInfo()


def test_run_config_reader_is_forgiving(tmp_path: Path) -> None:
    assert read_run_config(tmp_path) == {}
    (tmp_path / "config.yaml").write_text("model: efficientnet_lite0\nimage_size: 160\n")
    assert read_run_config(tmp_path) == {"model": "efficientnet_lite0", "image_size": 160}
    (tmp_path / "config.yaml").write_text("[unclosed")
    assert read_run_config(tmp_path) == {}


def test_selection_writer_takes_encoded_slices_and_leaves_nothing_on_failure(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Slices with the columns of few values as dictionaries (``select_into``'s) read back as
    the plain contract; a failed write leaves no file, no temp file and nothing on stderr."""
    from oiforge.contracts.selection import selection_writer

    plain = _selection(5)
    raw = plain.drop_columns(["spec_hash"])
    slices = [conform_selection(raw.slice(i, 2), "abc", "v7", encoded=True) for i in (0, 2, 4)]
    assert pa.types.is_dictionary(slices[0].schema.field("label_name").type)
    with selection_writer(tmp_path / "selection.parquet", slices[0].schema) as writer:
        for part in slices:
            writer.write_table(part)
    back = read_selection_table(tmp_path / "selection.parquet")
    assert back.equals(plain) and back.schema.metadata == plain.schema.metadata
    with (
        pytest.raises(RuntimeError, match="disk gone"),
        selection_writer(tmp_path / "failed.parquet", slices[0].schema) as writer,
    ):
        writer.write_table(slices[0])
        raise RuntimeError("disk gone")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["selection.parquet"]
    assert capfd.readouterr().err == ""
