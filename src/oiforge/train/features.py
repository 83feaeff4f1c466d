"""Probe mode: backbone features computed once per (model, preprocessing, files) and cached.

The cache lives in ``$OIFORGE_HOME/features/<sha256>.safetensors``; the key covers the model,
its weights, the preprocessing and every file's path, size and mtime, so an edited dataset
is recomputed and an unchanged one is read back in well under a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn
from torch.utils.data import DataLoader

from oiforge.atomic import write_bytes_atomic
from oiforge.paths import oiforge_home
from oiforge.train.dataset import Sample
from oiforge.train.ddp import Dist, broadcast_flag, gather_to_main
from oiforge.train.events import Event, PhaseStart, Step
from oiforge.train.images import ImageDataset, collate, eval_transform, resize_size
from oiforge.train.models import extract_features

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureSet:
    """Features of the decodable samples: ``x[i]`` belongs to ``samples[index[i]]``."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    bad: list[int]


def cache_key(model_id: str, preprocessing: dict[str, Any], samples: Sequence[Sample]) -> str:
    """A digest of everything the features depend on."""
    digest = hashlib.sha256(json.dumps([model_id, preprocessing], sort_keys=True).encode())
    for s in samples:
        st = Path(s.path).stat()
        digest.update(f"{s.path}\0{s.offset}\0{s.size}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        digest.update(f"{s.label}\n".encode())
    return digest.hexdigest()


def features_dir() -> Path:
    return oiforge_home() / "features"


def load_cached(key: str) -> FeatureSet | None:
    path = features_dir() / f"{key}.safetensors"
    if not path.is_file():
        return None
    try:
        t = load_file(str(path))
    except (OSError, ValueError, RuntimeError):
        log.warning("ignoring an unreadable feature cache %s", path)
        return None
    return FeatureSet(t["x"], t["y"], t["index"], [int(i) for i in t["bad"].tolist()])


def store_cached(key: str, fs: FeatureSet) -> None:
    bad = torch.tensor(fs.bad, dtype=torch.long)
    blob = save({"x": fs.x.contiguous(), "y": fs.y, "index": fs.index, "bad": bad})
    write_bytes_atomic(features_dir() / f"{key}.safetensors", blob)


def compute_features(
    model: nn.Module,
    samples: Sequence[Sample],
    preprocessing: dict[str, Any],
    *,
    model_id: str,
    batch_size: int,
    workers: int,
    device: torch.device,
    phase: str,
) -> Generator[Event, None, FeatureSet]:
    """Features for ``samples`` (cached); yields progress while computing."""
    key = cache_key(model_id, preprocessing, samples)
    cached = load_cached(key)
    if cached is not None:
        return cached
    size = resize_size(int(preprocessing["size"]), float(preprocessing["crop_pct"]))
    dataset = ImageDataset(samples, eval_transform(preprocessing), size)
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate, shuffle=False
    )
    yield PhaseStart(phase, len(loader))
    xs, ys, idx, bad = [], [], [], []
    model.eval()
    with torch.no_grad():
        for i, (x, y, index, bad_batch) in enumerate(loader):
            bad += bad_batch
            if len(y):
                xs.append(extract_features(model, x.to(device)).float().cpu())
                ys.append(y)
                idx.append(index)
            yield Step(phase, i + 1)
    if not xs:
        fs = FeatureSet(torch.empty(0, 0), torch.empty(0, dtype=torch.long), torch.empty(0), bad)
    else:
        fs = FeatureSet(torch.cat(xs), torch.cat(ys), torch.cat(idx), bad)
    store_cached(key, fs)
    return fs


def compute_features_sharded(
    d: Dist,
    model: nn.Module,
    samples: Sequence[Sample],
    preprocessing: dict[str, Any],
    **kw: Any,
) -> Generator[Event, None, FeatureSet | None]:
    """Several ranks: each computes the features of every ``world``-th sample; rank 0 gathers
    them into the full set (cached under the full set's key) and returns it; others get None.
    """
    if not d.active:
        return (yield from compute_features(model, samples, preprocessing, **kw))
    key = cache_key(str(kw["model_id"]), preprocessing, samples)
    cached = load_cached(key) if d.is_main else None
    if broadcast_flag(d, cached is not None, kw["device"]):
        return cached
    mine = yield from compute_features(model, samples[d.rank :: d.world], preprocessing, **kw)
    parts = gather_to_main(d, mine)
    if not d.is_main:
        return None
    full = merge_shards(parts)
    store_cached(key, full)
    return full


def merge_shards(parts: Sequence[FeatureSet]) -> FeatureSet:
    """Rank ``r``'s local index ``i`` is sample ``r + world * i``; rows back in sample order."""
    world = len(parts)
    xs, ys, idx, bad = [], [], [], []
    for rank, fs in enumerate(parts):
        bad += [rank + world * i for i in fs.bad]
        if len(fs.y):
            xs.append(fs.x)
            ys.append(fs.y)
            idx.append(rank + world * fs.index.long())
    bad.sort()
    if not xs:
        return FeatureSet(torch.empty(0, 0), torch.empty(0, dtype=torch.long), torch.empty(0), bad)
    index = torch.cat(idx)
    order = torch.argsort(index)
    return FeatureSet(torch.cat(xs)[order], torch.cat(ys)[order], index[order], bad)
