"""The offline EfficientNet-Lite0 weights, mapped into timm, classify real photos correctly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from oiforge.train.images import eval_transform
from oiforge.train.models import create_model, load_lite0_imagenet, preprocessing_for

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module")
def imagenet_model() -> torch.nn.Module:
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    load_lite0_imagenet(model)
    return model.eval()


def _top5(model: torch.nn.Module, photo: np.ndarray) -> list[int]:
    prep = preprocessing_for("efficientnet_lite0", 224, 0.875)
    x = eval_transform(prep)(Image.fromarray(photo).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        return model(x).topk(5).indices[0].tolist()  # type: ignore[no-any-return]


def test_preprocessing_reproduces_the_original_scaling() -> None:
    prep = preprocessing_for("efficientnet_lite0", 224, 0.875)
    x = np.array([0.0, 127.5, 255.0])
    scaled = (x / 255 - prep["mean"][0]) / prep["std"][0]
    assert np.allclose(scaled, (x - 127.5) / 128)


@pytest.mark.slow
def test_real_photos_get_their_imagenet_classes(imagenet_model: torch.nn.Module) -> None:
    from skimage import data

    cat = _top5(imagenet_model, data.chelsea())
    coffee = _top5(imagenet_model, data.coffee())
    assert cat[0] in CAT_CLASSES
    assert coffee[0] == ESPRESSO


@pytest.mark.slow
def test_pretrained_backbone_equals_the_mapped_weights(imagenet_model: torch.nn.Module) -> None:
    model = create_model("efficientnet_lite0", 3, pretrained=True)
    ours, ref = model.state_dict(), imagenet_model.state_dict()
    backbone = [k for k in ref if not k.startswith("classifier.")]
    assert len(ref) == 296  # 247 learned tensors + 49 BatchNorm counters
    assert all(torch.equal(ours[k], ref[k]) for k in backbone)
    assert ours["classifier.weight"].shape == (3, 1280)


def test_unknown_model_names_the_closest() -> None:
    from oiforge.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="did you mean efficientnet_lite"):
        create_model("efficientnet_lite", 3)


@pytest.mark.network
def test_hub_weights_for_another_timm_model() -> None:
    pytest.skip("needs the Hugging Face hub (network); run by hand where one exists")


@pytest.mark.parametrize(
    "name", ["efficientnet_lite0", "mobilenetv3_small_100", "resnet18", "convnext_atto"]
)
def test_create_model_heads_fit_their_backbones(name: str) -> None:
    """The new head takes what the backbone feeds it (MobileNetV3 has a 1024-wide pre-logits
    layer after its 576 pooled features)."""
    import torch

    from oiforge.train.models import create_model

    model = create_model(name, 3).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 3)
