"""Models by name: the CIFAR-style zoo, every torchvision classifier, or a user's callable.

A model is described by a *recipe*, ``{"name": ..., "kwargs": {...}}``, made only of plain types,
so checkpoints and policies can rebuild the architecture without pickling modules. Names:

- zoo (``ZOO``): ``cnn``, ``cnn10`` (the demo's ten-conv CNN), ``resnet20/32/56/110``,
  ``plain20``, ``vgg16`` (CIFAR), ``mobilenetv2`` (small inputs);
- any torchvision classification model by its name (``resnet18``, ...), or ``torchvision:NAME``
  where a zoo name shadows it (``torchvision:vgg16``);
- ``timm:NAME``: a timm model (the optional ``timm`` extra; ``timm.create_model`` with random
  weights, timm's own ``in_chans``/``num_classes``);
- ``package.module:callable`` returning an ``nn.Module``.

Input channels and class count follow the dataset: the first conv and the last linear layer are
resized when they do not match (so ImageNet weights load before the head is swapped), keeping
their own classes, so a user's layer subclass keeps its ``forward``.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from amc_agent.env import atomic
from amc_agent.env.errors import UserError
from amc_agent.env.models.cifar_resnet import CifarResNet
from amc_agent.env.models.small_cnn import SmallCNN, cnn10
from amc_agent.env.models.vgg import CifarVGG
from amc_agent.env.registry import Registry

ModelFactory = Callable[..., nn.Module]
ZOO: Registry[ModelFactory] = Registry("model")

ZOO.register("cnn")(SmallCNN)
ZOO.register("cnn10")(cnn10)
for _depth in (20, 32, 44, 56, 110):
    ZOO.register(f"resnet{_depth}")(
        lambda num_classes=10, in_channels=3, _d=_depth, **kw: CifarResNet(
            _d, num_classes, in_channels, **kw
        )
    )
ZOO.register("plain20")(
    lambda num_classes=10, in_channels=3, **kw: CifarResNet(
        20, num_classes, in_channels, residual=False, **kw
    )
)
ZOO.register("vgg16")(CifarVGG)

# MobileNetV2 for 28-32 px inputs: the usual CIFAR adaptation keeps the stem and the second stage
# at stride 1, so a 32x32 image leaves the last stage at 4x4 instead of 1x1.
_MBV2_SMALL = [[1, 16, 1, 1], [6, 24, 2, 1], [6, 32, 3, 2], [6, 64, 4, 2],
               [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]


@ZOO.register("mobilenetv2")
def mobilenetv2(num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0) -> nn.Module:
    """MobileNetV2 (Sandler et al., CVPR 2018) from torchvision, with a stride-1 stem for small
    images (the common CIFAR variant)."""
    model = torchvision.models.MobileNetV2(
        num_classes=num_classes, width_mult=width_mult, inverted_residual_setting=_MBV2_SMALL
    )
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(in_channels, stem.out_channels, 3, 1, 1, bias=False)
    return model


def clone_model(model: nn.Module) -> nn.Module:
    """``copy.deepcopy(model)`` that also works when a module caches a tensor computed with
    gradients (timm's EfficientFormer keeps its indexed attention biases after an eval forward):
    such non-leaf tensors cannot be deep-copied, and being caches they are copied detached."""
    memo: dict[int, Any] = {}
    for mod in model.modules():
        for value in vars(mod).values():
            for t in value.values() if isinstance(value, dict) else (value,):
                if isinstance(t, torch.Tensor) and not t.is_leaf:
                    memo[id(t)] = t.detach().clone()
    return copy.deepcopy(model, memo)


def torchvision_names() -> list[str]:
    """Every torchvision classification model name."""
    return sorted(torchvision.models.list_models(module=torchvision.models))


def model_names() -> list[str]:
    """Zoo names followed by torchvision names (for error messages and sweeps)."""
    return ZOO.names() + torchvision_names()


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)


def _is_lazy(module: nn.Module) -> bool:
    """Whether ``module`` is a lazy layer that has not seen an input yet (it sizes itself)."""
    return isinstance(module, LazyModuleMixin) and module.has_uninitialized_params()


def _resized(old: nn.Module, name: str, sizes: dict[str, int],
             weight: Callable[[torch.Tensor], torch.Tensor]) -> nn.Module:
    """A copy of ``old`` with the size attributes ``sizes`` changed and its ``weight`` replaced by
    ``weight(old.weight)``.

    The copy keeps ``old``'s class, so a user's subclass keeps its own ``forward`` (dynamic
    "same" padding, weight standardisation, ...); a deep copy instead of a constructor call works
    for subclasses whose ``__init__`` takes other arguments.
    """
    new = copy.deepcopy(old)
    if _is_lazy(new):  # sizes itself from the attributes when it first sees an input
        for attr, value in sizes.items():
            setattr(new, attr, value)
        return new
    if not isinstance(new._parameters.get("weight"), nn.Parameter):
        # A weight computed from other parameters (weight norm, parametrizations) cannot be
        # reshaped without knowing how it is computed.
        raise UserError(f"cannot resize {name!r} ({type(old).__name__}) to the dataset: its "
                        "weight is computed, not a plain parameter")
    for attr, value in sizes.items():
        setattr(new, attr, value)
    with torch.no_grad():
        new.weight = nn.Parameter(weight(old.weight).contiguous())
    return new


def _adapt_stem(model: nn.Module, in_channels: int) -> None:
    """Give the first ``Conv2d`` ``in_channels`` inputs; each new input channel's filters are the
    mean of the old ones, so a pretrained stem keeps its response to intensity."""
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs or _is_lazy(convs[0][1]) or convs[0][1].in_channels == in_channels:
        return
    name, old = convs[0]
    if old.groups != 1:
        raise UserError(f"cannot change the input channels of grouped stem conv {name!r}")

    def weight(w: torch.Tensor) -> torch.Tensor:
        return w.mean(1, keepdim=True).expand(w.shape[0], in_channels, *w.shape[2:])

    _set_module(model, name, _resized(old, name, {"in_channels": in_channels}, weight))


def _adapt_head(model: nn.Module, num_classes: int) -> None:
    """Give the last ``Linear`` ``num_classes`` outputs, freshly initialised by the layer's own
    ``reset_parameters``."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears or linears[-1][1].out_features == num_classes:
        return
    name, old = linears[-1]

    def weight(w: torch.Tensor) -> torch.Tensor:
        return w.new_empty(num_classes, w.shape[1])

    new = _resized(old, name, {"out_features": num_classes}, weight)
    if not _is_lazy(new):
        if new.bias is not None:
            new.bias = nn.Parameter(new.bias.new_empty(num_classes))
        new.reset_parameters()
    _set_module(model, name, new)


def adapt_io(model: nn.Module, in_channels: int, num_classes: int) -> nn.Module:
    """Make ``model`` take ``in_channels`` inputs and give ``num_classes`` outputs.

    Resizes the first ``Conv2d`` (new input channels initialised from the mean of the old filters)
    and the last ``Linear`` (re-initialised) when their sizes differ, keeping each layer's own
    class and ``forward``; returns the same module.
    """
    _adapt_stem(model, in_channels)
    _adapt_head(model, num_classes)
    return model


def check_input_shape(model: nn.Module, shape: Sequence[int]) -> None:
    """Run ``model`` once on a batch of two zero images of ``shape`` (channels, height, width in
    pixels); a model that cannot take it is a :class:`UserError` naming the shape and the error.

    The model runs in eval mode without gradients and is left in the mode it had; the global
    torch RNG is left as it was (a lazy layer may draw its initial weights here).
    """
    params = next(model.parameters(), None)
    device = params.device if params is not None else torch.device("cpu")
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model.eval()(torch.zeros(2, *shape, device=device))
    except Exception as exc:  # whatever the model's own forward raises
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(
            f"the model cannot take the dataset's {'x'.join(map(str, shape))} inputs "
            f"({type(exc).__name__}: {detail}); choose a model built for this input size or "
            "another --dataset"
        ) from None
    finally:
        model.train(was_training)


def _import_callable(spec: str) -> Callable[..., nn.Module]:
    module_name, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"cannot import model {spec!r}: {exc}") from None
    if not callable(fn):
        raise UserError(f"model {spec!r} is not callable")
    return fn


def _call_with_accepted(fn: Callable[..., nn.Module], **kwargs: Any) -> nn.Module:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    return fn(**{k: v for k, v in kwargs.items() if takes_any or k in params})


def build_model(recipe: dict[str, Any]) -> nn.Module:
    """Build the architecture a recipe describes (random initial weights).

    ``recipe["kwargs"]`` must hold ``num_classes`` and ``in_channels``; other keys go to the
    factory. Raises :class:`UserError` for unknown names, listing the valid ones.
    """
    name = recipe["name"]
    kwargs = dict(recipe.get("kwargs", {}))
    num_classes = int(kwargs.pop("num_classes"))
    in_channels = int(kwargs.pop("in_channels"))
    if name in ZOO:
        return ZOO.get(name)(num_classes=num_classes, in_channels=in_channels, **kwargs)
    tv_name = name.removeprefix("torchvision:")
    if tv_name in torchvision_names():
        model = torchvision.models.get_model(tv_name, weights=None, num_classes=num_classes,
                                             **kwargs)
        return adapt_io(model, in_channels, num_classes)
    if name.startswith("timm:"):
        return _timm_model(name.removeprefix("timm:"), in_channels, num_classes, kwargs)
    if ":" in name and not name.startswith("torchvision:"):
        model = _call_with_accepted(_import_callable(name), num_classes=num_classes,
                                    in_channels=in_channels, **kwargs)
        if not isinstance(model, nn.Module):
            raise UserError(f"model {name!r} returned {type(model).__name__}, not an nn.Module")
        return adapt_io(model, in_channels, num_classes)
    raise UserError(
        f"unknown model {name!r}; valid names: {', '.join(ZOO.names())}, any torchvision "
        "classification model (e.g. resnet18, torchvision:vgg16), timm:NAME, or "
        "package.module:callable"
    )


def _timm_model(name: str, in_channels: int, num_classes: int,
                kwargs: dict[str, Any]) -> nn.Module:
    """``timm.create_model(name)`` with random weights for the dataset's channels and classes."""
    try:
        import timm
    except ImportError:
        raise UserError("timm models need the timm package: pip install 'amc-agent[timm]'"
                        ) from None
    if not timm.is_model(name):
        raise UserError(f"unknown timm model {name!r} (see timm.list_models())")
    return timm.create_model(name, pretrained=False, num_classes=num_classes,
                             in_chans=in_channels, **kwargs)


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a torchvision-format ``state_dict`` file (or a checkpoint holding ``state_dict``)."""
    obj = atomic.read_torch(path, "weights file")
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"weights file {path} does not hold a state_dict of tensors")
    return obj


def build_pretrained(
    name: str, weights: Path, in_channels: int, num_classes: int
) -> nn.Module:
    """A model whose weights come from a user's state_dict file in the architecture's own format.

    The architecture is built with the class count and input channels the file implies, the
    weights are loaded strictly, and only then is the head/stem adapted to the dataset.
    """
    state = load_state_dict_file(weights)
    linears = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    convs = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 4]
    file_classes = linears[-1].shape[0] if linears else num_classes
    file_in = convs[0].shape[1] if convs else in_channels
    model = build_model({"name": name, "kwargs": {"num_classes": file_classes,
                                                  "in_channels": file_in}})
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[1:2] or [str(exc)]
        raise UserError(
            f"weights file {weights} does not fit model {name!r}: {first[0].strip()}"
        ) from None
    return adapt_io(model, in_channels, num_classes)
