"""The browse API over real HTTP: search, tree, grid, 404s, atomic concurrent exclusions."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from oiforge.build import read_exclude_list
from oiforge.cli import app
from oiforge.reviews import read_reviews

from .conftest import BEAR, CARNIVORE, Browse


def test_search_and_tree(browse: Browse) -> None:
    hits = httpx.get(f"{browse.url}/api/classes", params={"q": "cat"}).json()
    cat = next(h for h in hits if h["mid"] == "/m/01yrx")
    assert cat["boxable"] and cat["positives"] == 3 and cat["boxes"] == 4
    tree = httpx.get(f"{browse.url}/api/tree", params={"mid": "/m/01lrl"}).json()
    assert any(c["name"] == "Bear" for c in tree["children"])
    assert tree["parents"]


def test_unknown_class_and_traversal_are_404(browse: Browse) -> None:
    assert httpx.get(f"{browse.url}/class/m/nope").status_code == 404
    assert httpx.get(f"{browse.url}/api/tree", params={"mid": "/m/zzz"}).status_code == 404
    for bad in ("../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "0123456789abcdeg.jpg"):
        assert httpx.get(f"{browse.url}/img/{bad}").status_code == 404
    assert httpx.get(f"{browse.url}/static/..%2Fapp.py").status_code == 404
    ok = httpx.get(f"{browse.url}/img/{browse.image_ids[0]}.jpg")
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg"


def test_concurrent_exclusions_are_all_saved_and_undo_works(browse: Browse) -> None:
    ids = browse.image_ids
    jobs: list[dict[str, object]] = [{"image_id": i, "reason": f"r{n}"} for n, i in enumerate(ids)]
    jobs += [{"image_id": ids[0], "box": b, "reason": "box"} for b in range(8)]
    with ThreadPoolExecutor(8) as pool, httpx.Client() as c:
        codes = list(
            pool.map(lambda j: c.post(f"{browse.url}/api/exclude", json=j).status_code, jobs)
        )
    assert codes == [200] * len(jobs)
    ex = read_exclude_list(browse.exclude_list)
    assert set(ex.images) == set(ids) and len(ex.boxes) == 8
    httpx.post(f"{browse.url}/api/undo", json={"image_id": ids[1]})
    assert ids[1] not in read_exclude_list(browse.exclude_list).images
    grid = httpx.get(f"{browse.url}/api/images", params={"status": "excluded"}).json()
    assert {g["image_id"] for g in grid["images"]} == set(ids) - {ids[1]}
    bad = httpx.post(f"{browse.url}/api/exclude", json={"image_id": "../x"})
    assert bad.status_code == 400


KINDS = ["exact", "prefix", "word", "contains", "fuzzy"]


def test_search_ranks_exact_prefix_word_then_close_fuzzy(browse: Browse) -> None:
    def hits(q: str) -> list[dict[str, object]]:
        return httpx.get(f"{browse.url}/api/classes", params={"q": q}).json()  # type: ignore[no-any-return]

    zebra = hits("zebra")
    assert zebra[0]["name"] == "Zebra" and zebra[0]["match"] == "exact"
    assert not {"Bran", "Sazerac"} & {h["name"] for h in zebra}
    for q in ("cat", "bear", "zebra"):
        ranks = [KINDS.index(str(h["match"])) for h in hits(q)]
        assert ranks == sorted(ranks), q
    typo = hits("zebar")
    assert typo[0]["name"] == "Zebra" and typo[0]["match"] == "fuzzy"
    cat = next(h for h in hits("cat") if h["name"] == "Cat")
    assert cat["images"] == _grid(browse, cls="/m/01yrx")["total"] == 2  # in the selection


def _grid(browse: Browse, **params: object) -> dict[str, object]:
    return httpx.get(f"{browse.url}/api/images", params=params).json()  # type: ignore[no-any-return]


def test_filters_class_with_descendants_flags_download_pages(browse: Browse) -> None:
    everything = _grid(browse)
    assert everything["total"] == everything["all"] == len(browse.image_ids)
    carnivore = _grid(browse, cls=CARNIVORE)  # Cat, Dog and Bear are all below Carnivore
    assert carnivore["total"] == len(browse.image_ids) and carnivore["class"]["name"] == "Carnivore"
    bear = _grid(browse, cls=BEAR)
    assert [g["labels"][0]["name"] for g in bear["images"]] == ["Bear"]
    occluded = _grid(browse, flags="is_occluded")
    assert [b["flags"] for g in occluded["images"] for b in g["boxes"]] == [["is_occluded"]]
    failed = _grid(browse, dl="failed")
    assert [g["image_id"] for g in failed["images"]] == [browse.failed]
    assert failed["images"][0]["download"] == "http_404" and failed["images"][0]["error"]
    assert everything["facets"]["dl"] == {"ok": len(browse.image_ids) - 1, "http_404": 1}
    pages = [_grid(browse, size=2, page=p)["images"] for p in range(3)]
    assert [g["image_id"] for page in pages for g in page] == browse.image_ids
    wide = everything["images"][0]
    assert (wide["width"], wide["height"]) == (512, 288) and wide["license_name"] == "CC BY 2.0"
    bad = httpx.get(f"{browse.url}/api/images", params={"flags": "is_purple"})
    assert bad.status_code == 400 and "is_purple" in bad.json()["error"]


def test_machine_label_filters_and_reviews(make_browse: Callable[[str], Browse]) -> None:
    b = make_browse("image")
    machine = _grid(b, src="machine")
    confs = sorted(g["labels"][0]["confidence"] for g in machine["images"])
    assert confs == [0.4, 0.8, 0.9]
    assert _grid(b, src="machine", cmin=0.5, cmax=0.85)["total"] == 1
    first = machine["images"][0]
    item = {"image_id": first["image_id"], "mid": first["labels"][0]["mid"], "verdict": "rejected"}
    res = httpx.post(f"{b.url}/api/review", json={"items": [item]}).json()
    assert res["previous"][0]["verdict"] == ""
    assert read_reviews(b.review_file)[(item["image_id"], item["mid"])][0] == "rejected"
    assert _grid(b, src="machine", rv="rejected")["images"][0]["image_id"] == item["image_id"]
    assert _grid(b, src="machine", rv="unreviewed")["total"] == 2
    bad = httpx.post(f"{b.url}/api/review", json={"items": [{**item, "verdict": "maybe"}]})
    assert bad.status_code == 400 and "object at 0x" not in bad.text


@pytest.mark.slow
def test_build_review_leaves_out_the_boxes_of_rejected_labels(
    browse: Browse, tmp_path: Path
) -> None:
    first = _grid(browse)["images"][0]
    label = first["labels"][0]
    item = {"image_id": first["image_id"], "mid": label["mid"], "verdict": "rejected"}
    assert httpx.post(f"{browse.url}/api/review", json={"items": [item]}).status_code == 200
    out = tmp_path / "ds"
    where = ["--selection", str(browse.selection), "--store", str(browse.store), "--out", str(out)]
    res = CliRunner().invoke(
        app, ["build", *where, "--no-dedupe", "--review", str(browse.review_file)]
    )
    assert res.exit_code == 0, res.output
    kept = pq.read_table(out / "manifest.parquet").column("image_id").to_pylist()
    assert first["image_id"] not in kept and len(set(kept)) == len(browse.image_ids) - 2
    dropped = pq.read_table(out / "excluded.parquet").to_pylist()
    boxes = {r["box_index"] for r in dropped if r["image_id"] == first["image_id"]}
    assert boxes == {b["index"] for b in first["boxes"]}


@pytest.mark.slow
def test_build_review_in_image_mode_drops_only_the_rejected_label(
    make_browse: Callable[[str], Browse], tmp_path: Path
) -> None:
    from oiforge.build import read_lock
    from oiforge.reviews import write_reviews

    b = make_browse("image")
    labels: dict[str, list[str]] = {}
    for row in pq.read_table(b.selection, columns=["image_id", "label_mid"]).to_pylist():
        labels.setdefault(row["image_id"], []).append(row["label_mid"])
    ok = {i: sorted(set(m)) for i, m in labels.items() if i != b.failed}
    two = next(i for i, m in ok.items() if len(m) >= 2)
    one = next(i for i, m in ok.items() if len(m) == 1)
    gone = {(two, ok[two][0]), (one, ok[one][0])}
    write_reviews(b.review_file, dict.fromkeys(gone, ("rejected", "", "")))
    out = tmp_path / "ds"
    where = ["--selection", str(b.selection), "--store", str(b.store), "--out", str(out)]
    res = CliRunner().invoke(app, ["build", *where, "--no-dedupe", "--review", str(b.review_file)])
    assert res.exit_code == 0, res.output
    kept = pq.read_table(out / "manifest.parquet", columns=["image_id", "label_mid"]).to_pylist()
    pairs = {(r["image_id"], r["label_mid"]) for r in kept}
    assert not gone & pairs and {(two, m) for m in ok[two][1:]} <= pairs
    assert one not in {i for i, _ in pairs}
    dropped = pq.read_table(out / "excluded.parquet").to_pylist()
    assert {(r["image_id"], r["label_mid"]) for r in dropped if "review" in r["reason"]} == gone
    assert {(i, m) for i, m, _ in read_lock(out)["exclude_list"]} == gone


def test_verified_negatives_show_as_absent_and_do_not_match_their_class(tmp_path: Path) -> None:
    """A multi-label selection keeps each photo's verified negatives (``role`` negative): the
    grid says "not Cat" for them, and the Cat filter and counts leave those photos out."""
    from tests.catalog.test_select import CAT, DOG, NOFLAGS, build

    from oiforge.browse import create_app
    from oiforge.catalog import select
    from oiforge.spec import SelectSpec

    from .conftest import _Server, fill_store

    images = [
        ("train", [(CAT, 1, None, [NOFLAGS])]),
        ("train", [(DOG, 1, None, [NOFLAGS]), (CAT, 0, None, [])]),  # a dog, verified no cat
    ]
    cat = build(tmp_path / "home", images)
    sel = select(SelectSpec(classes=("Cat", "Dog"), multi_label="multi"), catalog=cat)
    parquet = sel.write(tmp_path / "selection.parquet")
    ids = sorted(set(sel.table.column("image_id").to_pylist()))
    fill_store(tmp_path / "store", ids, failed="")
    app_ = create_app(cat, tmp_path / "store", tmp_path / "ex.txt", parquet, tmp_path / "rv.csv")
    try:
        with _Server(app_) as url:
            grid = httpx.get(f"{url}/api/images").json()
            roles = {(lab["name"], lab["role"]) for g in grid["images"] for lab in g["labels"]}
            assert ("Cat", "negative") in roles and ("Dog", "positive") in roles
            dog_photo = next(g for g in grid["images"] if g["labels"][0]["name"] == "Dog")
            assert [lab["role"] for lab in dog_photo["labels"]] == ["positive", "negative"]
            cats = httpx.get(f"{url}/api/images", params={"cls": CAT}).json()
            assert cats["total"] == 1 and dog_photo["image_id"] not in {
                g["image_id"] for g in cats["images"]
            }
    finally:
        cat.close()
