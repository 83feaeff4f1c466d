"""The shared leaf modules: errors, atomic writes, endpoints, spec, contracts, the CLI shell."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from oiforge.atomic import atomic_open, write_bytes_atomic
from oiforge.cli import app
from oiforge.contracts import SELECTION_SCHEMA, is_image_id, store_path_parts
from oiforge.endpoints import Endpoints
from oiforge.errors import OiforgeError, SpecError, UnknownClassError, UserError
from oiforge.spec import load_spec, parse_spec

runner = CliRunner()


def test_unknown_class_error_names_suggestions_and_is_a_user_error() -> None:
    err = UnknownClassError("Hamburgr", ["Hamburger", "Hammer"], version="v7")
    assert isinstance(err, UserError) and err.exit_code == 2
    assert "'Hamburger'" in str(err) and "v7" in str(err)


def test_atomic_write_leaves_no_partial_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "a" / "out.bin"
    write_bytes_atomic(target, b"old")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_endpoints_mirror_env_and_flickr_rewrite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OIFORGE_MIRROR", "http://127.0.0.1:9/")
    ep = Endpoints.from_env()
    assert ep.metadata_url("v7/x.csv") == "http://127.0.0.1:9/openimages/v7/x.csv"
    assert ep.resized_image_url("train", "000060e3121c7305") == (
        "http://127.0.0.1:9/open-images-dataset/train/000060e3121c7305.jpg"
    )
    url = "https://c1.staticflickr.com/5/4129/5215831864_46f356962f_o.jpg"
    assert ep.flickr_url(url) == (
        "http://127.0.0.1:9/flickr/c1.staticflickr.com/5/4129/5215831864_46f356962f_o.jpg"
    )
    assert Endpoints().flickr_url(url) == url


@pytest.mark.parametrize("bad", ["../../etc/passwd", "000060E3121C7305", "0" * 15, "", "a/b"])
def test_only_image_ids_become_paths(bad: str) -> None:
    assert not is_image_id(bad)
    with pytest.raises(ValueError):
        store_path_parts(bad)
    with pytest.raises(ValueError):
        Endpoints().resized_image_url("train", bad)


def test_spec_short_form_and_hash_is_stable(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("classes: [Cat, {name: Dog, expand: true}]\nper_class: 5\n")
    spec = load_spec(path)
    assert [c.name for c in spec.select.classes] == ["Cat", "Dog"]
    assert spec.select.classes[1].expand and spec.select.per_class == 5
    assert (
        spec.spec_hash()
        == parse_spec(
            {"classes": ["Cat", {"name": "Dog", "expand": True}], "per_class": 5}
        ).spec_hash()
    )


def test_spec_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="per_class"):
        parse_spec({"classes": ["Cat"], "per_class": 0})
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "missing.yaml")


def test_selection_schema_has_attribution_columns() -> None:
    for col in ("image_id", "license", "author", "title", "landing_url", "original_url"):
        assert col in SELECTION_SCHEMA.names


def test_cli_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "oiforge" in result.stdout
    assert runner.invoke(app, ["--help"]).exit_code == 0


def test_error_tree_exit_codes() -> None:
    assert OiforgeError("x").exit_code == 1
    assert SpecError("x").exit_code == 2


def test_atomic_write_makes_files_others_can_read(tmp_path: Path) -> None:
    import os

    target = tmp_path / "shared.txt"
    write_bytes_atomic(target, b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
