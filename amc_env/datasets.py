"""Datasets by name, with a seeded validation split held out from the *training* split.

AMC computes its reward on images held out from the training set; the test split is kept for final
numbers only. The split **belongs to the checkpoint**: ``amc-train`` records it
(:func:`split_record`: dataset, split seed, validation size, training-split size) and every later
command rebuilds the same split from the record (:func:`resolve_split`), whatever its own
``--seed``; a reward computed on images the model trained on is a defect. Every dataset here is
returned as :class:`DataSplits` (train / val / test) plus a :class:`DataSpec` that says what models
must accept (input channels, image size, class count).

Registered names: ``fashion-mnist`` (default; offline from Debian's ``dataset-fashion-mnist``),
``cifar10``, ``cifar100`` (torchvision; download when online), ``imagefolder:PATH`` (ImageNet-style
``PATH/train`` and ``PATH/val`` folders) and ``synthetic`` (deterministic, for tests).

Every dataset takes an ``image_size`` (pixels, square; images are resized to it) and an
``augment`` mode (:data:`AUGMENTS`) for its training split; both default per dataset (its own
size, and no flips where a flip could change the class) and are recorded with the split, since a
model trained on one input size is scored on that size by every later command.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from torchvision import datasets as tvd
from torchvision import transforms as T

from amc_agent.env.errors import UserError
from amc_agent.env.registry import Registry

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
    split: dict[str, Any] = field(default_factory=dict)
    """The split's record (:func:`split_record`), written into checkpoints."""


AUGMENTS = ("none", "crop", "standard", "imagenet")
"""Training-split augmentation modes: ``none``; ``crop`` (random crop after zero padding of about
1/8 of the side, no flip: digits, text); ``standard`` (``crop`` + horizontal flip: the CIFAR
recipe of He et al. 2016); ``imagenet`` (RandomResizedCrop + flip, Szegedy et al. 2015)."""

MAX_VAL_SIZE = 5000
"""Default validation split: a tenth of the training split, at most this many images."""

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


def default_val_size(name: str, n: int) -> int:
    """The default validation split of a ``n``-image training split: a tenth, at most
    :data:`MAX_VAL_SIZE`; :class:`UserError` naming the size when ``n`` is too small for one."""
    size = min(MAX_VAL_SIZE, n // 10)
    if size < 1:
        raise UserError(f"{name} has {n} training images, too few to hold out a validation split "
                        "by default (a tenth of them); add images or pass --val-size N")
    return size


def _splits(
    spec: DataSpec,
    train_aug: Dataset,
    train_plain: Dataset,
    test: Dataset,
    val_size: int | None,
    seed: int,
    augment: str,
) -> DataSplits:
    n = len(train_plain)  # type: ignore[arg-type]
    if val_size is None:
        val_size = default_val_size(spec.name, n)
    tr, va = held_out_split(n, val_size, seed)
    return DataSplits(
        spec=spec,
        train=Subset(train_aug, tr),
        train_plain=Subset(train_plain, tr),
        val=Subset(train_plain, va),
        test=test,
        split=split_record(spec.name, seed, val_size, n, spec.image_size, augment),
    )


def split_record(dataset: str, seed: int, val_size: int, train_size: int,
                 image_size: int | None = None, augment: str | None = None) -> dict[str, Any]:
    """The plain-typed record of a validation split: which dataset, the seed of the permutation,
    how many images are held out, and how many the full training split has (a dataset that
    changed size would permute differently, so the record would no longer describe it); plus the
    input the model saw: ``image_size`` (pixels) and the training ``augment`` mode."""
    out: dict[str, Any] = {"dataset": dataset, "seed": int(seed), "val_size": int(val_size),
                           "train_size": int(train_size)}
    if image_size is not None:
        out["image_size"] = int(image_size)
    if augment is not None:
        out["augment"] = augment
    return out


DEFAULT_SPLIT_SEED = 0


def resolve_split(
    record: dict[str, Any] | None,
    dataset: str,
    val_size: int | None,
    split_seed: int | None,
    source: str = "the checkpoint",
) -> tuple[int, int | None]:
    """(split seed, validation size) for ``dataset`` given the checkpoint's split ``record``.

    With a record for this dataset the recorded split is used; an explicit ``val_size`` or
    ``split_seed`` that differs from it is a :class:`UserError` (it would score rewards on images
    the model trained on). A checkpoint from another dataset never saw this one's training images,
    and a model without a checkpoint has no split: the flags (or the defaults) are used. A
    checkpoint trained on ``dataset`` without a record (written before splits were recorded) is
    refused unless ``split_seed`` says which split it was trained with.
    """
    if record is None:
        return (DEFAULT_SPLIT_SEED if split_seed is None else split_seed), val_size
    if record.get("dataset") != dataset:
        return (DEFAULT_SPLIT_SEED if split_seed is None else split_seed), val_size
    if not record.get("recorded", True):
        if split_seed is None:
            raise UserError(
                f"{source} records no validation split (written by an older version); pass "
                "--split-seed N (the --seed it was trained with) and --val-size if it was not "
                "the default, or retrain it")
        return split_seed, val_size
    for flag, given, kept in (("--val-size", val_size, record["val_size"]),
                              ("--split-seed", split_seed, record["seed"])):
        if given is not None and given != kept:
            raise UserError(
                f"{source} was trained with {record['val_size']} validation images held out "
                f"(split seed {record['seed']}); {flag} {given} would score on images it trained "
                f"on: drop {flag}")
    return int(record["seed"]), int(record["val_size"])


def check_split(data: DataSplits, record: dict[str, Any] | None) -> None:
    """:class:`UserError` if ``data``'s training split no longer has the size ``record`` saw (the
    same seed would then hold out other images)."""
    if record and record.get("dataset") == data.spec.name and "train_size" in record \
            and record["train_size"] != data.split["train_size"]:
        raise UserError(
            f"{data.spec.name}'s training split has {data.split['train_size']} images, but the "
            f"checkpoint was trained when it had {record['train_size']}: its validation split "
            "cannot be rebuilt; retrain on the dataset as it is now")


def resolve_input(
    record: dict[str, Any] | None,
    dataset: str,
    image_size: int | None,
    augment: str | None,
    source: str = "the checkpoint",
) -> tuple[int | None, str | None]:
    """(image size, augment mode) for ``dataset`` given the checkpoint's split ``record``
    (``None``: the dataset's default).

    A checkpoint trained on ``dataset`` fixes the image size: every later command feeds the model
    the inputs it was trained on, and a different explicit ``image_size`` is a
    :class:`UserError`. Its augmentation is the default for later fine-tunes; an explicit
    ``augment`` wins (it never touches validation or test images).
    """
    if augment is not None and augment not in AUGMENTS:
        raise UserError(f"unknown --augment {augment!r}; valid: {', '.join(AUGMENTS)}")
    if image_size is not None and image_size < 1:
        raise UserError(f"--image-size must be a positive number of pixels, got {image_size}")
    if record is None or record.get("dataset") != dataset:
        return image_size, augment
    kept = record.get("image_size")
    if kept is not None and image_size is not None and image_size != kept:
        raise UserError(f"{source} was trained on {kept}x{kept} inputs; --image-size "
                        f"{image_size} would score a model on inputs it never saw: drop "
                        "--image-size")
    return (kept if image_size is None else image_size), augment or record.get("augment")


def _pipelines(
    base: list, size: int, augment: str, norm: T.Normalize, pad: int
) -> tuple[T.Compose, T.Compose]:
    """(training, plain) transforms: ``base`` brings an image to ``size`` pixels square, then the
    ``augment`` mode (:data:`AUGMENTS`) applies to the training pipeline only."""
    if augment not in AUGMENTS:
        raise UserError(f"unknown --augment {augment!r}; valid: {', '.join(AUGMENTS)}")
    plain = T.Compose([*base, T.ToTensor(), norm])
    if augment == "none":
        return plain, plain
    if augment == "imagenet":
        return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(),
                          norm]), plain
    flip = [T.RandomHorizontalFlip()] if augment == "standard" else []
    return T.Compose([*base, T.RandomCrop(size, padding=pad), *flip, T.ToTensor(), norm]), plain


def _square(native: int, size: int, native_pad: int) -> tuple[list, int]:
    """Sizing transforms and crop padding for a dataset of ``native``-pixel square images shown
    at ``size`` pixels (padding scaled with the size)."""
    return ([] if size == native else [T.Resize(size)]), max(1, round(native_pad * size / native))


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
    root: Path, val_size: int | None = None, seed: int = 0, download: bool = True,
    image_size: int | None = None, augment: str | None = None,
) -> DataSplits:
    """Fashion-MNIST (Xiao et al. 2017): 1x28x28, 10 classes, 60000 train / 10000 test.
    Default augmentation ``standard`` (crop padding 2 pixels at 28, flip: garments keep their
    class under a mirror)."""
    prepare_fashion_mnist(root, download)
    size, augment = image_size or 28, augment or "standard"
    base, pad = _square(28, size, 2)
    aug, plain = _pipelines(base, size, augment, T.Normalize((0.2860,), (0.3530,)), pad)
    spec = DataSpec("fashion-mnist", 1, size, 10)
    return _splits(
        spec,
        tvd.FashionMNIST(str(root), train=True, transform=aug),
        tvd.FashionMNIST(str(root), train=True, transform=plain),
        tvd.FashionMNIST(str(root), train=False, transform=plain),
        val_size,
        seed,
        augment,
    )


def _cifar(
    cls: type, name: str, classes: int, mean: tuple, std: tuple
) -> DatasetFactory:
    def factory(
        root: Path, val_size: int | None = None, seed: int = 0, download: bool = True,
        image_size: int | None = None, augment: str | None = None,
    ) -> DataSplits:
        size, augment = image_size or 32, augment or "standard"
        base, pad = _square(32, size, 4)
        aug, plain = _pipelines(base, size, augment, T.Normalize(mean, std), pad)
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
        return _splits(DataSpec(name, 3, size, classes), train_aug, train_plain, test, val_size,
                       seed, augment)

    factory.__doc__ = (f"{name} (Krizhevsky 2009) through torchvision: 3x32x32, {classes} "
                       "classes; default augmentation ``standard`` (crop padding 4, flip).")
    return factory


DATASETS.register("cifar10")(
    _cifar(tvd.CIFAR10, "cifar10", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
)
DATASETS.register("cifar100")(
    _cifar(tvd.CIFAR100, "cifar100", 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
)


IMAGEFOLDER_MAX_SIZE = 224
"""Largest default image size of ``imagefolder:PATH`` (ImageNet's), in pixels."""


def imagefolder(
    path: Path, val_size: int | None = None, seed: int = 0, image_size: int | None = None,
    augment: str | None = None,
) -> DataSplits:
    """ImageNet-style folders: ``path/train/CLASS/*.jpg`` and ``path/val/CLASS/*.jpg``.

    ``path/val`` is the test split; the validation split is held out from ``path/train``.
    Default image size: the first training image's shorter side, at most
    :data:`IMAGEFOLDER_MAX_SIZE` (a folder of 8x8 digits stays 8x8, photos become 224x224).
    Default augmentation: ``imagenet`` from 128 pixels up (photos), else ``crop`` (no flip: a
    folder of small images may hold digits or text). With ``imagenet``, evaluation resizes to
    256/224 of the size and centre-crops (ImageNet's protocol); otherwise it resizes the shorter
    side to the size and centre-crops.
    """
    for sub in ("train", "val"):
        if not (path / sub).is_dir():
            raise UserError(f"imagefolder: {path / sub} is not a folder (expected train/ and val/)")
    probe = tvd.ImageFolder(str(path / "train"))
    if not probe.samples:
        raise UserError(f"imagefolder: {path / 'train'} holds no images")
    size = image_size or min(IMAGEFOLDER_MAX_SIZE, min(probe.loader(probe.samples[0][0]).size))
    augment = augment or ("imagenet" if size >= 128 else "crop")
    resize = int(size * 256 / 224) if augment == "imagenet" else size
    aug, plain = _pipelines([T.Resize(resize), T.CenterCrop(size)], size, augment,
                            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                            max(1, size // 8))
    train_aug = tvd.ImageFolder(str(path / "train"), transform=aug)
    spec = DataSpec(f"imagefolder:{path}", 3, size, len(train_aug.classes))
    return _splits(
        spec,
        train_aug,
        tvd.ImageFolder(str(path / "train"), transform=plain),
        tvd.ImageFolder(str(path / "val"), transform=plain),
        val_size,
        seed,
        augment,
    )


@DATASETS.register("synthetic")
def synthetic(
    root: Path | None = None,
    val_size: int | None = 128,
    seed: int = 0,
    download: bool = False,
    in_channels: int = 3,
    image_size: int | None = 16,
    num_classes: int = 4,
    train_size: int = 512,
    test_size: int = 256,
    augment: str | None = None,
) -> DataSplits:
    """Deterministic learnable stand-in for tests: each class is a fixed random template plus
    Gaussian noise (std 0.5), so a tiny CNN separates the classes in a few steps. Generated at
    ``image_size`` pixels; tensors, so augmentation ``none`` only."""
    if augment not in (None, "none"):
        raise UserError(f"synthetic data take no augmentation; got --augment {augment}")
    image_size = image_size or 16
    g = torch.Generator().manual_seed(1234)
    templates = torch.randn(num_classes, in_channels, image_size, image_size, generator=g)

    def make(n: int) -> TensorDataset:
        y = torch.randint(0, num_classes, (n,), generator=g)
        x = templates[y] + 0.5 * torch.randn(n, in_channels, image_size, image_size, generator=g)
        return TensorDataset(x, y)

    train = make(train_size)
    spec = DataSpec("synthetic", in_channels, image_size, num_classes)
    return _splits(spec, train, train, make(test_size), val_size, seed, "none")


def load_dataset(
    name: str,
    root: Path | None = None,
    val_size: int | None = None,
    seed: int = DEFAULT_SPLIT_SEED,
    download: bool = True,
    image_size: int | None = None,
    augment: str | None = None,
) -> DataSplits:
    """Build the splits for ``name`` (a registered name or ``imagefolder:PATH``).

    ``val_size`` is the number of training images held out for rewards (dataset default if None:
    :func:`default_val_size`); ``seed`` (the *split* seed, not a command's ``--seed``) fixes
    which ones; ``image_size`` (pixels) and ``augment`` (:data:`AUGMENTS`) default per dataset.
    Unknown names raise :class:`UserError` listing the valid names. For a checkpoint's data use
    :func:`load_checkpoint_data`.
    """
    kwargs: dict = {"seed": seed}
    for key, value in (("val_size", val_size), ("image_size", image_size),
                       ("augment", augment)):
        if value is not None:
            kwargs[key] = value
    if name.startswith("imagefolder:"):
        return imagefolder(Path(name.split(":", 1)[1]), **kwargs)
    if name not in DATASETS:
        valid = ", ".join([*DATASETS.names(), "imagefolder:PATH"])
        raise UserError(f"unknown dataset {name!r}; valid names: {valid}")
    return DATASETS.get(name)(Path(root) if root else default_data_root(), download=download,
                              **kwargs)


def load_checkpoint_data(
    ckpt: dict[str, Any] | None,
    name: str | None = None,
    root: Path | None = None,
    val_size: int | None = None,
    split_seed: int | None = None,
    download: bool = True,
    image_size: int | None = None,
    augment: str | None = None,
) -> DataSplits:
    """The splits of dataset ``name`` (default: the checkpoint's) with the validation split and
    input size the checkpoint ``ckpt`` was trained with (see :func:`resolve_split` and
    :func:`resolve_input`; ``None``: no checkpoint)."""
    name = name or (ckpt["dataset"] if ckpt else "fashion-mnist")
    record = None
    if ckpt is not None:
        record = ckpt.get("split") or {"dataset": ckpt["dataset"], "recorded": False}
    image_size, augment = resolve_input(record, name, image_size, augment)
    seed, size = resolve_split(record, name, val_size, split_seed)
    data = load_dataset(name, root, size, seed=seed, download=download, image_size=image_size,
                        augment=augment)
    check_split(data, record)
    return data


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
