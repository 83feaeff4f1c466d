"""`oiforge browse` at 100,000 images: start-up, API latency per page, first grid paint, scroll.

    .venv/bin/python bench/bench_browse.py [--images 100000] [--repeats 40] [--paints 5]

1. Generates a selection of --images images (box mode, ~2.5 rows an image: 40 real classes
   below Carnivore/Vehicle/Food, three splits, 30% machine labels with confidences, box flags,
   attribution), a download journal stand-in (store/journal.sqlite: 95% ok with sizes, the rest
   http_404 / placeholder / timeout) and JPEGs for the first 300 images in the store; all under
   bench/out/browse/ (not timed).
2. Start-up: `create_app` (reads and indexes the selection) in this process.
3. API latency, real HTTP on 127.0.0.1 (uvicorn in a thread, httpx keep-alive client): a page
   of 100 for each view below, --repeats times, interleaved; p50/p99 per view.
   The floor: the same page (same filter, same order, same 100 images, their rows) read
   straight from Parquet with DuckDB in this process (no HTTP), interleaved with the API calls.
4. First grid paint in headless Chromium (Debian's): navigation start → the grid's tiles in
   the DOM and painted (the page sets `window.oiforgeGridPaint` in the frame after it draws),
   --paints fresh pages per URL; and scrolling: frame intervals while the page scrolls the
   100-tile grid to the bottom in 40 steps (p50/p99 ms per frame).
Writes bench/results/bench_browse.json (record.py).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Row, write_results

SPLITS = np.array(["train", "validation", "test"])
OUT = Path(__file__).resolve().parent / "out" / "browse"
CHROMIUM = "/usr/bin/chromium"
PARENTS = {"Carnivore": "/m/01lrl", "Vehicle": "/m/07yv9", "Food": "/m/02wbm"}
VIEWS: dict[str, dict[str, str]] = {
    "first page": {},
    "page 500": {"page": "500"},
    "class + descendants (Carnivore)": {"cls": PARENTS["Carnivore"]},
    "split + download failed": {"split": "validation", "dl": "failed"},
    "machine 0.5-0.8": {"src": "machine", "cmin": "0.5", "cmax": "0.8"},
    "box flag occluded": {"flags": "is_occluded"},
    "text search 'sunset'": {"q": "sunset"},
}


def _classes(cat: Any) -> list[tuple[str, str, str]]:
    """(mid, name, parent key) of up to 40 boxable classes below the three parents."""
    out = []
    for key, mid in PARENTS.items():
        kids = sorted(cat.descendants(mid))[:14]
        out += [(m, cat.name(m), key) for m in kids]
    return out[:40]


def make_selection(n: int, classes: list[tuple[str, str, str]], seed: int = 0) -> pa.Table:
    """A box-mode selection.parquet of ``n`` images (SELECTION_SCHEMA)."""
    from oiforge.contracts import SELECTION_SCHEMA

    rng = np.random.default_rng(seed)
    ids = np.array([f"{i * 2654435761 % 2**64:016x}" for i in range(n)])
    per = rng.integers(1, 5, n)
    img = np.repeat(np.arange(n), per)
    rows = len(img)
    cls = rng.integers(0, len(classes), rows)
    machine = rng.random(rows) < 0.3
    x0, y0 = rng.random(rows) * 0.6, rng.random(rows) * 0.6
    words = np.array(["sunset", "beach", "dog", "street", "market", "garden", "my trip", "IMG"])
    cols: dict[str, Any] = {
        "image_id": ids[img],
        "split": SPLITS[rng.choice(3, n, p=[0.8, 0.1, 0.1])][img],
        "label_mid": np.array([c[0] for c in classes])[cls],
        "label_name": np.array([c[1] for c in classes])[cls],
        "source": np.where(machine, "machine", "xclick"),
        "confidence": np.where(machine, rng.random(rows).round(2), 1.0).astype(np.float32),
        "box_index": np.concatenate([np.arange(k) for k in per]).astype(np.int32),
        "x_min": x0, "x_max": x0 + 0.3, "y_min": y0, "y_max": y0 + 0.3,
        "title": np.char.add(words[rng.integers(0, len(words), n)], " ")[img],
        "author": np.array(["Ann", "Bo", "Cy", "Di"])[rng.integers(0, 4, n)][img],
        "license": np.full(rows, "https://creativecommons.org/licenses/by/2.0/"),
        "landing_url": np.char.add("https://www.flickr.com/photos/x/", ids[img]),
    }  # fmt: skip
    for flag, p in (("is_occluded", 0.3), ("is_truncated", 0.2), ("is_group_of", 0.05)):
        cols[flag] = (rng.random(rows) < p).astype(np.int8)
    for flag in ("is_depiction", "is_inside"):
        cols[flag] = np.zeros(rows, np.int8)
    arrays = [
        pa.array(cols[f.name]).cast(f.type) if f.name in cols else pa.nulls(rows, f.type)
        for f in SELECTION_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=SELECTION_SCHEMA)


def make_store(store: Path, ids: list[str], with_files: int, seed: int = 0) -> None:
    """A journal for every image (95% ok) and JPEGs for the first ``with_files`` of them."""
    from PIL import Image

    from oiforge.contracts.journal import Journal, JournalRow

    rng = np.random.default_rng(seed)
    sizes = [(1024, 683), (683, 1024), (1024, 768), (1024, 576), (800, 800)]
    bad = ["http_404", "placeholder", "timeout"]
    rows = []
    for i, iid in enumerate(ids):
        if rng.random() < 0.05 and i >= 12:
            status = bad[int(rng.integers(0, 3))]
            rows.append(JournalRow(iid, status, error=f"{status} from the bench", attempts=1))
            continue
        w, h = sizes[i % len(sizes)]
        rows.append(JournalRow(iid, "ok", width=w, height=h, attempts=1))
        if i < with_files:
            buf = io.BytesIO()
            Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(0, 255, 3))).save(
                buf, "JPEG", quality=85
            )
            (store / iid[:2]).mkdir(parents=True, exist_ok=True)
            (store / iid[:2] / f"{iid}.jpg").write_bytes(buf.getvalue())
    with Journal(store) as journal:
        for start in range(0, len(rows), 10_000):
            journal.append(rows[start : start + 10_000])


def floor_sql(view: dict[str, str], cat: Any, parquet: Path, journal: Path) -> str:
    """DuckDB: the same page (ImageID order, 100 images, all their rows) from Parquet."""
    where = ["TRUE"]
    if "cls" in view:
        mids = {view["cls"]} | cat.descendants(view["cls"])
        where.append("label_mid IN (" + ",".join(f"'{m}'" for m in sorted(mids)) + ")")
    if view.get("src") == "machine":
        where.append(f"source = 'machine' AND confidence BETWEEN {view['cmin']} AND {view['cmax']}")
    if "flags" in view:
        where.append(f"{view['flags']} = 1")
    if "split" in view:
        where.append(f"split = '{view['split']}'")
    if view.get("dl") == "failed":
        where.append(f"image_id IN (SELECT image_id FROM '{journal}' WHERE status <> 'ok')")
    if "q" in view:
        where.append(f"(lower(title) LIKE '%{view['q']}%' OR lower(author) LIKE '%{view['q']}%')")
    page = int(view.get("page", "0"))
    return (
        f"WITH hits AS (SELECT DISTINCT image_id FROM '{parquet}' WHERE {' AND '.join(where)} "
        f"ORDER BY image_id LIMIT 100 OFFSET {page * 100}) "
        f"SELECT s.* FROM '{parquet}' s JOIN hits USING (image_id) ORDER BY image_id, box_index"
    )


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def measure_api(
    url: str, views: dict[str, dict[str, str]], floors: dict[str, str], repeats: int
) -> dict[str, dict[str, list[float]]]:
    import duckdb
    import httpx

    con = duckdb.connect()
    times: dict[str, dict[str, list[float]]] = {v: {"api": [], "floor": []} for v in views}
    with httpx.Client(timeout=60) as client:
        for name, view in views.items():  # warm both (first query parses footers)
            client.get(f"{url}/api/images", params={**view, "size": 100}).raise_for_status()
            con.sql(floors[name]).to_arrow_table()
        for _ in range(repeats):
            for name, view in views.items():
                t0 = time.perf_counter()
                res = client.get(f"{url}/api/images", params={**view, "size": 100})
                res.json()
                t1 = time.perf_counter()
                con.sql(floors[name]).to_arrow_table().to_pylist()
                t2 = time.perf_counter()
                times[name]["api"].append((t1 - t0) * 1000)
                times[name]["floor"].append((t2 - t1) * 1000)
    return times


def measure_paint(url: str, paths: list[str], paints: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    out: dict[str, Any] = {"paint": {}, "scroll": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        for path in paths:
            times = []
            for _ in range(paints):
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(url + path)
                page.wait_for_function("window.oiforgeGridPaint !== undefined", timeout=60_000)
                times.append(float(page.evaluate("window.oiforgeGridPaint")))
                page.close()
            out["paint"][path] = times
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url + "/")
        page.wait_for_function("window.oiforgeGridPaint !== undefined")
        out["scroll"] = page.evaluate(SCROLL_JS)
        browser.close()
    return out


SCROLL_JS = """async () => {
  const frames = [], end = document.documentElement.scrollHeight - innerHeight;
  let last = performance.now();
  for (let i = 1; i <= 40; i++) {
    window.scrollTo(0, end * i / 40);
    await new Promise(r => requestAnimationFrame(r));
    const now = performance.now(); frames.push(now - last); last = now;
  }
  return frames;
}"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--paints", type=int, default=5)
    a = ap.parse_args()
    os.environ.setdefault("OIFORGE_HOME", str(OUT / "home"))
    from oiforge.browse import create_app
    from oiforge.catalog import open_catalog
    from oiforge.download import read_journal

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    cat = open_catalog("v7", fetch_missing=False)
    table = make_selection(a.images, _classes(cat))
    parquet = OUT / "selection.parquet"
    pq.write_table(table, parquet, compression="zstd")
    ids = sorted(set(table.column("image_id").to_pylist()))
    store = OUT / "store"
    make_store(store, ids, with_files=300)
    journal_parquet = OUT / "journal.parquet"  # the floor reads the journal as Parquet
    pq.write_table(read_journal(store), journal_parquet)
    print(f"{a.images:,} images, {table.num_rows:,} rows; load average {os.getloadavg()}")

    t0 = time.perf_counter()
    app = create_app(cat, store, OUT / "exclude.txt", parquet)
    startup = time.perf_counter() - t0
    print(f"create_app (read + index the selection): {startup:.2f} s")

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.browse.conftest import _Server

    floors = {k: floor_sql(v, cat, parquet, journal_parquet) for k, v in VIEWS.items()}
    with _Server(app) as url:
        t1 = time.perf_counter()
        import httpx

        httpx.get(f"{url}/api/images", params={"size": 100}, timeout=60).raise_for_status()
        first_api = time.perf_counter() - t1  # the journal is read on the first request
        times = measure_api(url, VIEWS, floors, a.repeats)
        paths = ["/", f"/?cls={PARENTS['Carnivore']}&split=train&page=3"]
        paint = measure_paint(url, paths, a.paints)
    rows = report(a, startup, first_api, times, paint)
    print(f"load average after: {os.getloadavg()}")
    write_results("bench_browse", rows, notes=f"{a.images} images, {table.num_rows} rows")


def report(
    a: Any,
    startup: float,
    first_api: float,
    times: dict[str, dict[str, list[float]]],
    paint: dict[str, Any],
) -> list[Row]:
    rows = [
        Row(
            "create_app: read + index the selection",
            round(startup, 3),
            "s",
            extra={"images": a.images},
        ),
        Row("first API request (reads the 100k-row journal)", round(first_api * 1000, 1), "ms"),
    ]
    print(
        f"{'view (page of 100)':36} {'API p50':>8} {'p99':>8} {'floor p50':>10} {'p99':>8}"
        f" {'ratio p50':>9}"
    )
    for name, t in times.items():
        p50, p99 = pct(t["api"], 50), pct(t["api"], 99)
        f50, f99 = pct(t["floor"], 50), pct(t["floor"], 99)
        print(f"{name:36} {p50:8.1f} {p99:8.1f} {f50:10.1f} {f99:8.1f} {p50 / f50:9.2f}")
        rows.append(
            Row(
                f"API page of 100: {name}",
                round(p50, 2),
                "ms p50",
                peer="DuckDB on Parquet (floor), p50",
                peer_value=round(f50, 2),
                ratio=round(p50 / f50, 2),
                extra={"p99_ms": round(p99, 2), "floor_p99_ms": round(f99, 2)},
            )
        )
    for path, ts in paint["paint"].items():
        med = statistics.median(ts)
        print(f"first grid paint {path}: median {med:.0f} ms (runs {[round(t) for t in ts]})")
        rows.append(
            Row(
                f"first grid paint {path}",
                round(med, 1),
                "ms",
                peer="limit",
                peer_value=1000.0,
                ratio=round(med / 1000, 3),
                goal="< 1000 ms",
                met=med < 1000,
                extra={"runs_ms": [round(t, 1) for t in ts]},
            )
        )
    frames = paint["scroll"]
    print(f"scroll frames: p50 {pct(frames, 50):.1f} ms, p99 {pct(frames, 99):.1f} ms")
    rows.append(
        Row(
            "scroll frame interval p99",
            round(pct(frames, 99), 1),
            "ms",
            peer="one 60 Hz frame",
            peer_value=16.7,
            ratio=round(pct(frames, 99) / 16.7, 2),
            extra={"p50_ms": round(pct(frames, 50), 1)},
        )
    )
    return rows


if __name__ == "__main__":
    main()
