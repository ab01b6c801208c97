"""Model zoo: every registered model builds and runs on its dataset's input; names and weights."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from amc_agent.env.errors import UserError
from amc_agent.env.models import ZOO, build_model, build_pretrained, model_names

# (in_channels, image size): Fashion-MNIST and CIFAR inputs.
SHAPES = [(1, 28), (3, 32)]
# A few representative torchvision families (residual, inverted residual, dense, fire, VGG-like).
TORCHVISION_SAMPLE = ["resnet18", "mobilenet_v3_small", "squeezenet1_1", "shufflenet_v2_x0_5"]


@pytest.mark.parametrize("name", ZOO.names())
@pytest.mark.parametrize(("cin", "size"), SHAPES)
def test_zoo_model_forward(name: str, cin: int, size: int) -> None:
    model = build_model({"name": name, "kwargs": {"in_channels": cin, "num_classes": 7}}).eval()
    with torch.no_grad():
        out = model(torch.randn(2, cin, size, size))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", TORCHVISION_SAMPLE)
def test_torchvision_model_adapted_to_grayscale(name: str) -> None:
    model = build_model({"name": name, "kwargs": {"in_channels": 1, "num_classes": 10}}).eval()
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == 1
    with torch.no_grad():
        assert model(torch.randn(2, 1, 64, 64)).shape == (2, 10)


def test_zoo_shadows_torchvision_but_prefix_reaches_it() -> None:
    kw = {"in_channels": 3, "num_classes": 10}
    cifar = build_model({"name": "vgg16", "kwargs": kw})
    tv = build_model({"name": "torchvision:vgg16", "kwargs": kw})
    assert type(cifar).__name__ == "CifarVGG"
    assert isinstance(tv, torchvision.models.VGG)


def test_user_callable_model() -> None:
    model = build_model({"name": "tests.user_model:make",
                         "kwargs": {"in_channels": 1, "num_classes": 5}})
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 5)


def test_unknown_model_lists_names() -> None:
    with pytest.raises(UserError, match="resnet20.*plain20"):
        build_model({"name": "resnet21", "kwargs": {"in_channels": 3, "num_classes": 10}})
    with pytest.raises(UserError, match="cannot import"):
        build_model({"name": "no_such_pkg.mod:fn", "kwargs": {"in_channels": 3,
                                                              "num_classes": 10}})
    assert "resnet18" in model_names() and "mobilenetv2" in model_names()


def test_pretrained_torchvision_state_dict_loads_then_adapts(tmp_path) -> None:
    # A user's ImageNet-format file: 3-channel stem, 1000 classes.
    src = torchvision.models.mobilenet_v3_small(weights=None)
    path = tmp_path / "mnv3.pth"
    torch.save(src.state_dict(), path)
    model = build_pretrained("mobilenet_v3_small", path, in_channels=1, num_classes=10)
    # Inner weights come from the file; the head and stem were adapted afterwards.
    assert torch.equal(model.features[3].block[0][0].weight, src.features[3].block[0][0].weight)
    assert model.classifier[-1].out_features == 10
    assert model.features[0][0].in_channels == 1
    assert torch.allclose(model.features[0][0].weight[:, 0],
                          src.features[0][0].weight.mean(1))


def test_pretrained_wrong_architecture_is_user_error(tmp_path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)
    with pytest.raises(UserError, match="does not fit model 'resnet18'"):
        build_pretrained("resnet18", path, in_channels=3, num_classes=10)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="weights file .* is corrupt or unreadable"):
        build_pretrained("resnet18", tmp_path / "junk.pth", in_channels=3, num_classes=10)


def test_timm_models_by_name() -> None:
    from bench.bench_sweep import check_model

    m = build_model({"name": "timm:resnet10t", "kwargs": {"in_channels": 1, "num_classes": 7}})
    assert m(torch.zeros(2, 1, 32, 32)).shape == (2, 7)
    row = check_model("timm:resnet10t")  # prunes, exact MACs, bit-identical export
    assert row["status"] == "pass", row.get("error")
    with pytest.raises(UserError, match="unknown timm model 'resnet9000'"):
        build_model({"name": "timm:resnet9000", "kwargs": {"in_channels": 3, "num_classes": 2}})
