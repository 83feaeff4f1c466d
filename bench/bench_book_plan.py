"""Book planning at scale against one full pass over the labels, measured in the same run.

    .venv/bin/python bench/bench_book_plan.py [--images 2000000] [--labels-per-image 5]

Generates (once, cached in bench/out/book_plan) Parquet tables shaped like the catalog views:
``images`` and ``human_labels`` (sorted by label_mid, image_id like the catalog's ingest), with
the real v7 class list and hierarchy, ~40% of images carrying Person/Man/Woman/Human face.
Then measures:
  1. limit: one ``GROUP BY label_mid`` pass over every label row (the least any class ranking
     must read),
  2. ``plan_book`` (class choice for A-Z, people exclusion, licence/size ranking, 24 photos
     per letter), with per-class counts precomputed as the catalog's ingest sidecars are.
Prints seconds, rows and the ratio plan/limit.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from oiforge.book import PlanRequest, plan_book
from record import Row, write_results

OUT = Path(__file__).parent / "out" / "book_plan"
PEOPLE = ("/m/01g317", "/m/04yx4", "/m/03bt1vf", "/m/0dzct")


def generate(con: duckdb.DuckDBPyConnection, images: int, per_image: int) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    done = OUT / f"labels-{images}-{per_image}.parquet"
    if done.exists():
        return
    con.execute(
        "CREATE OR REPLACE TEMP TABLE mids AS "
        "SELECT label_mid, row_number() OVER () - 1 AS k FROM classes WHERE boxable"
    )
    con.execute(f"""
        COPY (SELECT substr(md5(i::VARCHAR), 1, 16) AS image_id, 'train' AS split,
                     'https://farm.example/' || i || '_o.jpg' AS original_url,
                     'https://www.flickr.com/photos/u/' || i AS landing_url,
                     '' AS thumbnail_url,
                     CASE WHEN i % 10 = 0 THEN 'https://creativecommons.org/licenses/by-sa/2.0/'
                          ELSE 'https://creativecommons.org/licenses/by/2.0/' END AS license,
                     'author ' || (i % 997) AS author, '' AS author_profile_url,
                     'photo ' || i AS title,
                     (50000 + (i * 7919) % 5000000)::BIGINT AS original_size,
                     '' AS original_md5, 0.0::FLOAT AS rotation
              FROM range({images}) t(i) ORDER BY image_id)
        TO '{OUT}/images-{images}.parquet' (FORMAT parquet)""")
    n = con.execute("SELECT count(*) FROM mids").fetchall()[0][0]
    con.execute(f"""
        COPY (SELECT substr(md5(i::VARCHAR), 1, 16) AS image_id, 'verification' AS source,
                     CASE WHEN j = 0 AND i % 5 < 2 THEN '{PEOPLE[0]}'
                          WHEN j = 1 AND i % 7 = 0 THEN '{PEOPLE[3]}'
                          ELSE (SELECT label_mid FROM mids WHERE k = (i * 31 + j * 977) % {n}) END
                       AS label_mid,
                     CASE WHEN (i + j) % 5 = 0 THEN 0.0 ELSE 1.0 END::FLOAT AS confidence,
                     'train' AS split
              FROM range({images}) t(i), range({per_image}) u(j)
              ORDER BY label_mid, image_id)
        TO '{done}' (FORMAT parquet)""")


class BenchCatalog:
    """The three things ``plan_book`` asks of a catalog, over the generated tables."""

    def __init__(self, con: duckdb.DuckDBPyConnection, counts: dict[str, int]) -> None:
        self.connection = con
        self._counts = counts

    def resolve(self, name: str) -> Any:
        raise NotImplementedError(name)

    def class_counts(self) -> pa.Table:
        mids = list(self._counts)
        return pa.table({"label_mid": mids, "positives_train": [self._counts[m] for m in mids]})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2_000_000)
    parser.add_argument("--labels-per-image", type=int, default=5)
    args = parser.parse_args()
    from oiforge.catalog import open_catalog

    cat = open_catalog("v7", fetch_missing=False)  # real classes + hierarchy (offline)
    con = cat.connection
    generate(con, args.images, args.labels_per_image)
    labels = OUT / f"labels-{args.images}-{args.labels_per_image}.parquet"
    con.execute(f"CREATE OR REPLACE VIEW human_labels AS SELECT * FROM '{labels}'")
    con.execute(
        f"CREATE OR REPLACE VIEW images AS SELECT * FROM '{OUT}/images-{args.images}.parquet'"
    )
    rows = con.execute("SELECT count(*) FROM human_labels").fetchall()[0][0]
    counts = dict(
        con.execute(
            "SELECT label_mid, count(DISTINCT image_id) FROM human_labels "
            "WHERE confidence = 1 GROUP BY 1"
        ).fetchall()
    )
    start = time.perf_counter()
    con.execute("SELECT label_mid, count(*) FROM human_labels GROUP BY label_mid").fetchall()
    limit = time.perf_counter() - start
    start = time.perf_counter()
    plan = plan_book(BenchCatalog(con, counts), PlanRequest())  # type: ignore[arg-type]
    took = time.perf_counter() - start
    photos = sum(len(e.photos) for e in plan.letters)
    print(f"{rows:,} label rows, {args.images:,} images")
    print(f"limit (one GROUP BY pass over the labels): {limit:.2f} s")
    skipped = ",".join(sorted(plan.skipped))
    print(
        f"plan_book: {took:.2f} s, {len(plan.letters)} letters, {photos} photos, skipped {skipped}"
    )
    print(f"ratio plan/limit: {took / limit:.2f}x")
    extra = {"label_rows": rows, "letters": len(plan.letters), "photos": photos}
    row = Row("plan_book", took, "s", "limit: one GROUP BY pass over the labels", limit,
              took / limit, extra=extra)  # fmt: skip
    write_results("bench_book_plan", [row], notes=f"--images {args.images}")


if __name__ == "__main__":
    main()
