"""The browse API over real HTTP: search, tree, grid, 404s, atomic concurrent exclusions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from oiforge.build import read_exclude_list

from .conftest import Browse


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
