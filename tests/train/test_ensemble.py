"""Auto's ensemble: the average of the candidates' probabilities, with the frozen trunk the
probe, MLP and partial members share run once; saved and rebuilt from config.yaml alone."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oiforge.train.auto import (
    Result,
    _shared_trunk,
    beats_ensemble,
    ensemble_of,
)
from oiforge.train.config import ENSEMBLE, Member, build_config
from oiforge.train.models import build_ensemble, create_model, split_blocks
from oiforge.train.rundir import build_model


def _members(multilabel: bool = False) -> list[torch.nn.Module]:
    """A probe (pretrained-like trunk, new head), an MLP head on the same trunk, a partial
    model whose last block differs, and a full fine-tune whose every weight differs."""
    torch.manual_seed(0)
    probe = create_model("efficientnet_lite0", 3, multilabel=multilabel).eval()
    mlp = create_model("efficientnet_lite0", 3, head="mlp", multilabel=multilabel).eval()
    mlp.load_state_dict({**mlp.state_dict(), **{k: v for k, v in probe.state_dict().items()
                                                if not k.startswith("classifier")}})  # fmt: skip
    partial = copy.deepcopy(probe)
    with torch.no_grad():
        for p in split_blocks(partial).units[-1].parameters():
            p.add_(0.05 * torch.randn_like(p))
    full = create_model("efficientnet_lite0", 3, multilabel=multilabel).eval()
    return [probe, mlp, partial, full]


CHANGES = [
    {"mode": "probe", "head": "linear"},
    {"mode": "probe", "head": "mlp"},
    {"mode": "partial", "head": "linear", "train_blocks": 1},
    {"mode": "finetune", "head": "linear"},
]


@pytest.mark.parametrize("multilabel", [False, True])
def test_the_ensemble_is_the_mean_of_its_members_probabilities(multilabel: bool) -> None:
    members = _members(multilabel)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        if multilabel:
            expected = torch.stack([m(x).sigmoid() for m in members]).mean(0)
        else:
            expected = torch.stack([m(x).softmax(1) for m in members]).mean(0)
    blocks, shared = _shared_trunk(members, CHANGES)
    assert blocks == len(split_blocks(members[0]).units) - 1
    assert shared == [True, True, True, False]
    ensemble = build_ensemble(copy.deepcopy(members), shared, blocks, multilabel)
    with torch.no_grad():
        out = ensemble(x)
    got = out.sigmoid() if multilabel else out.softmax(1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    # the shared trunk is stored once: the members keep only what follows it
    keys = ensemble.state_dict()
    assert any(k.startswith("trunk.") for k in keys)
    assert not any(k.startswith("shared.1.conv_stem") for k in keys)


def test_a_member_whose_trunk_differs_runs_whole() -> None:
    members = _members()
    with torch.no_grad():
        next(members[1].conv_stem.parameters()).add_(1.0)  # the MLP's trunk is not the probe's
    _, shared = _shared_trunk(members, CHANGES)
    assert shared == [True, False, True, False]


def test_config_yaml_alone_rebuilds_the_ensemble(tmp_path: Path) -> None:
    members = _members()
    blocks, shared = _shared_trunk(members, CHANGES)
    ensemble = build_ensemble(copy.deepcopy(members), shared, blocks, False)
    config = build_config(
        dataset="d", out=str(tmp_path), num_classes=3, chosen=ENSEMBLE, trunk_blocks=blocks,
        members=[Member(name=n, head=c["head"], shared=s)
                 for n, c, s in zip(("probe", "mlp", "partial-1", "finetune"), CHANGES, shared,
                                    strict=True)],
    )  # fmt: skip
    rebuilt = build_model(config, pretrained=False)
    rebuilt.load_state_dict(ensemble.state_dict())  # strict: the same keys and shapes
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), ensemble(x))


def _result(name: str, probs: list[list[float]], labels: list[int]) -> Result:
    row = {"name": name, "seconds": 1.0, "status": "finished"}
    return Result(row, torch.tensor(probs), torch.tensor(labels))


probabilities = st.lists(st.floats(0.01, 0.99), min_size=4, max_size=30)


@settings(max_examples=50, deadline=None)
@given(probabilities, probabilities)
def test_the_ensemble_averages_and_never_loses_to_itself(a: list[float], b: list[float]) -> None:
    n = min(len(a), len(b))
    labels = [i % 2 for i in range(n)]
    one = _result("probe", [[1 - p, p] for p in a[:n]], labels)
    two = _result("mlp", [[1 - p, p] for p in b[:n]], labels)
    ens = ensemble_of([one, two, Result({"name": "finetune", "status": "skipped"})])
    assert ens is not None and ens.row["members"] == ["probe", "mlp"]
    torch.testing.assert_close(ens.probs, (one.probs + two.probs) / 2)
    assert not beats_ensemble(ens, ens)
    assert ensemble_of([one]) is None


def test_a_clearly_better_single_candidate_beats_the_ensemble() -> None:
    labels = [1] * 20
    good = _result("partial-1", [[0.05, 0.95]] * 20, labels)
    bad = _result("probe", [[0.9, 0.1]] * 20, labels)
    ens = ensemble_of([bad, good])
    assert ens is not None and beats_ensemble(good, ens)
    close = _result("mlp", [[0.45, 0.55]] * 10 + [[0.4, 0.6]] * 10, labels)
    near = _result("probe", [[0.4, 0.6]] * 10 + [[0.45, 0.55]] * 10, labels)
    tie = ensemble_of([near, close])
    assert tie is not None and not beats_ensemble(close, tie)


def test_an_ensemble_config_trained_again_tries_its_members_alone(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    """What `oiforge present`'s learning curve does with a finished auto run's config.yaml."""
    from oiforge.train import train

    members = [Member(name="probe"), Member(name="mlp", head="mlp")]
    config = build_config(
        dataset=str(tiny_dataset), out=str(tmp_path / "r"), image_size=32, workers=0,
        chosen=ENSEMBLE, members=members, trunk_blocks=16,
    )  # fmt: skip
    summary = train(config)
    names = [c["name"] for c in summary["candidates"]]
    assert names == ["probe", "mlp", "ensemble"]
