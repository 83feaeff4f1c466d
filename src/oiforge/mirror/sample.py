"""``make_sample``: a small, deterministic Open Images look-alike for tests and the demo.

Writes under ``root``: ``openimages/<relpath>`` (every official file of every version, real
class lists and hierarchy, generated rows in the official formats), ``flickr/<host>/<path>``
(originals and ``_z`` thumbnails), ``open-images-dataset/<split>/<id>.jpg`` (resized copies),
``faults.yaml`` (planted failures) and ``sample.json`` (the facts tests check against).
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from oiforge.atomic import write_bytes_atomic, write_text_atomic
from oiforge.mirror.faults import dump_rules, plant_faults
from oiforge.mirror.images import (
    PLACEHOLDER_RELPATH,
    DrawnBox,
    ImageSpec,
    placeholder_png,
    render_image,
)
from oiforge.mirror.labels import Labels, make_labels
from oiforge.mirror.legacy import write_legacy
from oiforge.mirror.metadata import Encoded, write_metadata
from oiforge.mirror.multilabel import multilabel_facts, plan_block, with_block
from oiforge.mirror.plan import SAMPLE_CLASSES, PlannedImage, plan_images
from oiforge.paths import package_data

SAMPLE_FORMAT = 1
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SampleInfo:
    """What ``make_sample`` wrote: the root, the seed, counts and the facts file."""

    root: Path
    seed: int
    image_count: int
    class_count: int
    facts_path: Path
    faults_path: Path

    def facts(self) -> dict[str, object]:
        """The parsed ``sample.json``."""
        data: dict[str, object] = json.loads(self.facts_path.read_text(encoding="utf-8"))
        return data


@dataclass(frozen=True)
class RenderJob:
    """One image to render and write (picklable, for the process pool)."""

    root: str
    spec: ImageSpec
    image_id: str
    original_rel: str
    thumbnail_rel: str
    resized_rel: str | None


def flickr_relpath(url: str) -> str:
    """``https://host/path?q`` -> ``flickr/host/path`` (the query is not part of the file)."""
    parts = urlsplit(url)
    return f"flickr/{parts.netloc}{parts.path}"


def _spec(image: PlannedImage) -> ImageSpec:
    index = {c.mid: i for i, c in enumerate(SAMPLE_CLASSES)}
    boxes = tuple(
        DrawnBox(index[b.cls.mid], b.x_min, b.x_max, b.y_min, b.y_max) for b in image.boxes
    )
    seed = int(image.image_id, 16)
    return ImageSpec(seed, image.width, image.height, boxes, image.orientation, image.quality)


def _job(root: Path, image: PlannedImage) -> RenderJob:
    resized = f"open-images-dataset/{image.split}/{image.image_id}.jpg"
    return RenderJob(
        str(root), _spec(image), image.image_id, flickr_relpath(image.original_url),
        flickr_relpath(image.thumbnail_url), resized if image.has_resized else None,
    )  # fmt: skip


def write_file(path: Path, data: bytes) -> None:
    """Temp file + rename, without fsync: never a half-written file, and ~100x faster than
    :func:`oiforge.atomic.write_bytes_atomic` for 1,800 small files. A crash loses the sample,
    which is regenerated from the seed; ``sample.json`` (fsynced, written last) marks it done.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def run_job(job: RenderJob) -> tuple[str, Encoded]:
    """Render one image, write its files, return the original's size and base64 MD5."""
    rendered = render_image(job.spec)
    root = Path(job.root)
    write_file(root / job.original_rel, rendered.original)
    write_file(root / job.thumbnail_rel, rendered.thumbnail)
    if job.resized_rel:
        write_file(root / job.resized_rel, rendered.resized)
    digest = base64.b64encode(hashlib.md5(rendered.original).digest()).decode("ascii")
    return job.image_id, Encoded(len(rendered.original), digest)


def _render_all(
    jobs: list[RenderJob], workers: int, progress: Progress | None
) -> dict[str, Encoded]:
    done: dict[str, Encoded] = {}
    if workers <= 1:
        results = map(run_job, jobs)
        for image_id, enc in results:
            done[image_id] = enc
            if progress:
                progress(len(done), len(jobs))
        return done
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        for image_id, enc in pool.map(run_job, jobs, chunksize=8):
            done[image_id] = enc
            if progress:
                progress(len(done), len(jobs))
    return done


def _image_facts(image: PlannedImage, enc: Encoded) -> dict[str, object]:
    return {
        "image_id": image.image_id, "split": image.split,
        "classes": [c.mid for c in image.classes], "width": image.width,
        "height": image.height, "orientation": image.orientation, "rotation": image.rotation,
        "original_url": image.original_url, "thumbnail_url": image.thumbnail_url,
        "original_size": enc.size, "original_md5": enc.md5_b64,
        "has_resized": image.has_resized, "fault": image.fault,
        "expected_status": image.expected_status,
    }  # fmt: skip


def _facts(
    seed: int, images: list[PlannedImage], encoded: dict[str, Encoded], labels: Labels,
    files: dict[str, dict[str, object]],
) -> dict[str, object]:  # fmt: skip
    return {
        "format": SAMPLE_FORMAT,
        "seed": seed,
        "classes": [
            {"mid": c.mid, "name": c.name, "letter": c.letter, "is_person": c.is_person}
            for c in SAMPLE_CLASSES
        ],
        "machine_label_confirmation": {
            "definition": "per class, over all splits: among (image, class) pairs with a "
            "machine label and a human verification, the share with human Confidence 1",
            "rates": {r.mid: r.facts() for r in labels.rates},
        },
        "multilabel": multilabel_facts(images, labels.human, labels.machine),
        "placeholder": PLACEHOLDER_RELPATH,
        "files": files,
        "images": [_image_facts(im, encoded[im.image_id]) for im in images],
    }


def fingerprint(seed: int = 0) -> str:
    """A hash of everything the sample's bytes depend on: this package's code, the catalog's
    file table, the real class files, Pillow and NumPy versions, and the seed. Equal
    fingerprints mean byte-identical samples, so a cached copy can stand in for a new one."""
    import numpy
    import PIL

    digest = hashlib.sha256(
        f"{SAMPLE_FORMAT}:{seed}:{PIL.__version__}:{numpy.__version__}".encode()
    )
    here = Path(__file__).parent
    sources = [*sorted(here.glob("*.py")), here.parent / "catalog" / "files.py"]
    sources += sorted(package_data("openimages").iterdir())
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:20]


def make_sample(
    root: str | os.PathLike[str], seed: int = 0, *, workers: int | None = None,
    progress: Progress | None = None,
) -> SampleInfo:  # fmt: skip
    """Write the sample under ``root`` (created if needed); the same seed gives the same bytes."""
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    images = plan_images(seed)
    rules = plant_faults(seed, images)
    labels = make_labels(seed, images)
    block, human, machine = plan_block(seed, images)  # drawn last: the rest stays as it was
    images += block
    labels = with_block(labels, images, human, machine)
    jobs = [_job(base, im) for im in images]
    encoded = _render_all(jobs, workers or min(4, os.cpu_count() or 1), progress)
    files = write_metadata(base, images, encoded, labels)
    files.update(write_legacy(base, images, encoded, labels))  # v1-v3 tarballs
    write_bytes_atomic(base / PLACEHOLDER_RELPATH, placeholder_png())
    faults_path = base / "faults.yaml"
    write_text_atomic(faults_path, dump_rules(rules))
    facts_path = base / "sample.json"
    facts = _facts(seed, images, encoded, labels, files)
    write_text_atomic(facts_path, json.dumps(facts, indent=1, ensure_ascii=False) + "\n")
    return SampleInfo(base, seed, len(images), len(SAMPLE_CLASSES), facts_path, faults_path)
