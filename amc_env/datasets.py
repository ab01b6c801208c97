"""Datasets by name, with a seeded validation split held out from the *training* split.

AMC computes its reward on images held out from the training set; the test split is kept for final
numbers only. Every dataset here is returned as :class:`DataSplits` (train / val / test) plus a
:class:`DataSpec` that says what models must accept (input channels, image size, class count).

Registered names: ``fashion-mnist`` (default; offline from Debian's ``dataset-fashion-mnist``),
``cifar10``, ``cifar100`` (torchvision; download when online), ``imagefolder:PATH`` (ImageNet-style
``PATH/train`` and ``PATH/val`` folders) and ``synthetic`` (deterministic, for tests).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from torchvision import datasets as tvd
from torchvision import transforms as T

from amc_env.errors import UserError
from amc_env.registry import Registry

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def default_data_root() -> Path:
    """Where datasets live: ``$AMC_DATA_ROOT`` if set, else ``./data``."""
    return Path(os.environ.get("AMC_DATA_ROOT", "data"))


@dataclass(frozen=True)
class DataSpec:
    """What a model must accept for a dataset: ``in_channels`` x ``image_size`` x ``image_size``
    inputs (pixels), ``num_classes`` outputs."""

    name: str
    in_channels: int
    image_size: int
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One sample's shape, (C, H, W)."""
        return (self.in_channels, self.image_size, self.image_size)


@dataclass
class DataSplits:
    """Train (augmented), validation (held out from train, not augmented) and test splits.

    ``train_plain`` is the training split without augmentation: calibration data for BN
    recalibration and reconstruction criteria.
    """

    spec: DataSpec
    train: Dataset
    train_plain: Dataset
    val: Dataset
    test: Dataset


DatasetFactory = Callable[..., DataSplits]
DATASETS: Registry[DatasetFactory] = Registry("dataset")


def held_out_split(
    n: int, val_size: int, seed: int
) -> tuple[list[int], list[int]]:
    """Seeded split of ``range(n)`` into (train indices, validation indices)."""
    if not 0 <= val_size < n:
        raise UserError(f"--val-size must be in [0, {n - 1}] for this dataset, got {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[val_size:]), sorted(perm[:val_size])


def _splits(
    spec: DataSpec,
    train_aug: Dataset,
    train_plain: Dataset,
    test: Dataset,
    val_size: int,
    seed: int,
) -> DataSplits:
    tr, va = held_out_split(len(train_plain), val_size, seed)
    return DataSplits(
        spec=spec,
        train=Subset(train_aug, tr),
        train_plain=Subset(train_plain, tr),
        val=Subset(train_plain, va),
        test=test,
    )


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed download created, deepest first, if they are still empty."""
    for p in folders:
        with contextlib.suppress(OSError):
            p.rmdir()


def prepare_fashion_mnist(root: Path, download: bool) -> None:
    """Make ``root/FashionMNIST/raw`` hold the four unpacked IDX files.

    Order: files already there; else gunzip Debian's ``dataset-fashion-mnist`` copies; else
    torchvision's download (only if ``download``). Raises :class:`UserError` with the fix otherwise.
    """
    raw = root / "FashionMNIST" / "raw"
    if all((raw / f).is_file() for f in FASHION_MNIST_FILES):
        return
    if all((DEBIAN_FASHION_MNIST / f"{f}.gz").is_file() for f in FASHION_MNIST_FILES):
        raw.mkdir(parents=True, exist_ok=True)
        for f in FASHION_MNIST_FILES:
            tmp = raw / f"{f}.tmp"
            with gzip.open(DEBIAN_FASHION_MNIST / f"{f}.gz", "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(raw / f)
        return
    if download:
        made = [p for p in (raw, raw.parent, root) if not p.exists()]  # deepest first
        try:
            tvd.FashionMNIST(str(root), train=True, download=True)
            tvd.FashionMNIST(str(root), train=False, download=True)
            return
        except Exception as exc:  # network errors come in many types
            reason = f" (download failed: {type(exc).__name__})"
            _remove_empty(made)
    else:
        reason = ""
    raise UserError(
        f"Fashion-MNIST not found under {raw}{reason}; install Debian's package "
        "'dataset-fashion-mnist' (apt-get install dataset-fashion-mnist) or run once online"
    )


@DATASETS.register("fashion-mnist")
def fashion_mnist(
    root: Path, val_size: int = 5000, seed: int = 0, download: bool = True
) -> DataSplits:
    """Fashion-MNIST (Xiao et al. 2017): 1x28x28, 10 classes, 60000 train / 10000 test."""
    prepare_fashion_mnist(root, download)
    norm = T.Normalize((0.2860,), (0.3530,))
    aug = T.Compose([T.RandomCrop(28, padding=2), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    plain = T.Compose([T.ToTensor(), norm])
    spec = DataSpec("fashion-mnist", 1, 28, 10)
    return _splits(
        spec,
        tvd.FashionMNIST(str(root), train=True, transform=aug),
        tvd.FashionMNIST(str(root), train=True, transform=plain),
        tvd.FashionMNIST(str(root), train=False, transform=plain),
        val_size,
        seed,
    )


def _cifar(
    cls: type, name: str, classes: int, mean: tuple, std: tuple
) -> DatasetFactory:
    def factory(
        root: Path, val_size: int = 5000, seed: int = 0, download: bool = True
    ) -> DataSplits:
        norm = T.Normalize(mean, std)
        aug = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), norm])
        plain = T.Compose([T.ToTensor(), norm])
        made = [] if Path(root).exists() else [Path(root)]
        try:
            train_aug = cls(str(root), train=True, transform=aug, download=download)
            train_plain = cls(str(root), train=True, transform=plain)
            test = cls(str(root), train=False, transform=plain, download=download)
        except Exception as exc:
            _remove_empty(made)
            raise UserError(
                f"{name} not found under {root} and not downloadable here "
                f"({type(exc).__name__}); run once with network access or copy torchvision's "
                f"extracted {name} folder into {root}"
            ) from None
        return _splits(DataSpec(name, 3, 32, classes), train_aug, train_plain, test, val_size, seed)

    factory.__doc__ = f"{name} (Krizhevsky 2009) through torchvision: 3x32x32, {classes} classes."
    return factory


DATASETS.register("cifar10")(
    _cifar(tvd.CIFAR10, "cifar10", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
)
DATASETS.register("cifar100")(
    _cifar(tvd.CIFAR100, "cifar100", 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
)


def imagefolder(
    path: Path, val_size: int = 5000, seed: int = 0, image_size: int = 224
) -> DataSplits:
    """ImageNet-style folders: ``path/train/CLASS/*.jpg`` and ``path/val/CLASS/*.jpg``.

    ``path/val`` is the test split; the validation split is held out from ``path/train``.
    """
    for sub in ("train", "val"):
        if not (path / sub).is_dir():
            raise UserError(f"imagefolder: {path / sub} is not a folder (expected train/ and val/)")
    norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    resize = int(image_size * 256 / 224)
    aug = T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    plain = T.Compose([T.Resize(resize), T.CenterCrop(image_size), T.ToTensor(), norm])
    train_aug = tvd.ImageFolder(str(path / "train"), transform=aug)
    spec = DataSpec(f"imagefolder:{path}", 3, image_size, len(train_aug.classes))
    return _splits(
        spec,
        train_aug,
        tvd.ImageFolder(str(path / "train"), transform=plain),
        tvd.ImageFolder(str(path / "val"), transform=plain),
        val_size,
        seed,
    )


@DATASETS.register("synthetic")
def synthetic(
    root: Path | None = None,
    val_size: int = 128,
    seed: int = 0,
    download: bool = False,
    in_channels: int = 3,
    image_size: int = 16,
    num_classes: int = 4,
    train_size: int = 512,
    test_size: int = 256,
) -> DataSplits:
    """Deterministic learnable stand-in for tests: each class is a fixed random template plus
    Gaussian noise (std 0.5), so a tiny CNN separates the classes in a few steps."""
    g = torch.Generator().manual_seed(1234)
    templates = torch.randn(num_classes, in_channels, image_size, image_size, generator=g)

    def make(n: int) -> TensorDataset:
        y = torch.randint(0, num_classes, (n,), generator=g)
        x = templates[y] + 0.5 * torch.randn(n, in_channels, image_size, image_size, generator=g)
        return TensorDataset(x, y)

    train = make(train_size)
    spec = DataSpec("synthetic", in_channels, image_size, num_classes)
    return _splits(spec, train, train, make(test_size), val_size, seed)


def load_dataset(
    name: str,
    root: Path | None = None,
    val_size: int | None = None,
    seed: int = 0,
    download: bool = True,
) -> DataSplits:
    """Build the splits for ``name`` (a registered name or ``imagefolder:PATH``).

    ``val_size`` is the number of training images held out for rewards (dataset default if None);
    ``seed`` fixes which ones. Unknown names raise :class:`UserError` listing the valid names.
    """
    kwargs: dict = {"seed": seed}
    if val_size is not None:
        kwargs["val_size"] = val_size
    if name.startswith("imagefolder:"):
        return imagefolder(Path(name.split(":", 1)[1]), **kwargs)
    if name not in DATASETS:
        valid = ", ".join([*DATASETS.names(), "imagefolder:PATH"])
        raise UserError(f"unknown dataset {name!r}; valid names: {valid}")
    return DATASETS.get(name)(Path(root) if root else default_data_root(), download=download,
                              **kwargs)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    workers: int = 0,
) -> DataLoader:
    """A DataLoader whose shuffling order depends only on ``seed``."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
        persistent_workers=workers > 0,
    )
