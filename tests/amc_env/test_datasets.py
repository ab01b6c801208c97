"""Datasets: the offline Fashion-MNIST path, held-out validation split, stand-ins for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import datasets as tvd

from amc_agent.env import datasets as D
from amc_agent.env.errors import UserError

needs_debian = pytest.mark.skipif(
    not (D.DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (make installs it)",
)


@needs_debian
def test_fashion_mnist_offline_from_debian_files(tmp_path: Path) -> None:
    data = D.load_dataset("fashion-mnist", tmp_path, val_size=5000, seed=3, download=False)
    assert len(data.train) + len(data.val) == 60000
    assert len(data.val) == 5000 and len(data.test) == 10000
    assert set(data.train.indices).isdisjoint(data.val.indices)
    x, y = data.val[0]
    assert x.shape == (1, 28, 28) and 0 <= y < 10
    assert data.spec.input_shape == (1, 28, 28) and data.spec.num_classes == 10
    # Normalised: roughly zero mean, unit std over a few images.
    xs = torch.stack([data.test[i][0] for i in range(200)])
    assert abs(xs.mean().item()) < 0.3 and 0.7 < xs.std().item() < 1.3
    # Unpacked once into ROOT/FashionMNIST/raw for torchvision's own loader.
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_validation_split_is_seeded_and_held_out() -> None:
    a_tr, a_va = D.held_out_split(100, 20, seed=1)
    b_tr, b_va = D.held_out_split(100, 20, seed=1)
    _, c_va = D.held_out_split(100, 20, seed=2)
    assert (a_tr, a_va) == (b_tr, b_va) and a_va != c_va
    assert sorted(a_tr + a_va) == list(range(100))
    with pytest.raises(UserError, match="--val-size"):
        D.held_out_split(100, 100, seed=0)


def test_missing_fashion_mnist_offline_says_how_to_get_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(D, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        D.load_dataset("fashion-mnist", tmp_path / "root", download=False)


def test_unknown_dataset_lists_names() -> None:
    with pytest.raises(UserError, match="fashion-mnist.*cifar10.*imagefolder:PATH"):
        D.load_dataset("mnist-fashion")


def test_synthetic_is_deterministic_and_learnable_shape() -> None:
    a = D.load_dataset("synthetic", seed=0)
    b = D.load_dataset("synthetic", seed=0)
    assert torch.equal(a.train[5][0], b.train[5][0]) and a.train[5][1] == b.train[5][1]
    assert a.train[0][0].shape == a.spec.input_shape
    assert len(a.val) == 128 and len(a.train) == 512 - 128


@pytest.mark.parametrize(("name", "classes"), [("cifar10", 10), ("cifar100", 100)])
def test_cifar_missing_offline_is_user_error(tmp_path, name: str, classes: int) -> None:
    with pytest.raises(UserError, match=f"{name} not found"):
        D.load_dataset(name, tmp_path, download=False)


@pytest.mark.parametrize("cls", [tvd.CIFAR10, tvd.CIFAR100])
def test_cifar_code_path_on_synthetic_stand_in(tmp_path, monkeypatch, cls) -> None:
    # CIFAR cannot be downloaded here: stand in torchvision's loader with 50 fake images.
    def fake_init(self, root, train=True, transform=None, target_transform=None,
                  download=False):
        n = 50 if train else 20
        g = torch.Generator().manual_seed(int(train))
        self.data = torch.randint(0, 256, (n, 32, 32, 3), generator=g,
                                  dtype=torch.uint8).numpy()
        self.targets = torch.randint(0, 10, (n,), generator=g).tolist()
        self.transform, self.target_transform = transform, target_transform

    monkeypatch.setattr(cls, "__init__", fake_init)
    name = "cifar10" if cls is tvd.CIFAR10 else "cifar100"
    data = D.load_dataset(name, tmp_path, val_size=10, download=False)
    assert data.spec.input_shape == (3, 32, 32)
    assert len(data.train) == 40 and len(data.val) == 10 and len(data.test) == 20
    x, _ = data.train[0]
    assert x.shape == (3, 32, 32)


def _folder(root: Path, classes: int, per_class: int, size: tuple[int, int],
            val_per_class: int = 2) -> Path:
    """An ImageNet-style folder of ``size`` (width, height) PNGs."""
    for split, n in (("train", per_class), ("val", val_per_class)):
        for c in range(classes):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", size, (i * 7 % 256, 10 * c, 200)).save(
                    root / split / f"c{c}" / f"{i}.png")
    return root


def test_imagefolder(tmp_path: Path) -> None:
    _folder(tmp_path, 2, 4, (40, 30), val_per_class=4)
    # Default size: the images' own shorter side (30 < 224), no-flip augmentation for small ones.
    data = D.load_dataset(f"imagefolder:{tmp_path}", val_size=2)
    assert data.spec.num_classes == 2 and data.spec.input_shape == (3, 30, 30)
    assert len(data.train) == 6 and len(data.val) == 2 and len(data.test) == 8
    assert data.val[0][0].shape == (3, 30, 30) and data.train[0][0].shape == (3, 30, 30)
    assert data.split["image_size"] == 30 and data.split["augment"] == "crop"
    # Photo-sized inputs get ImageNet's recipe by default.
    big = D.load_dataset(f"imagefolder:{tmp_path}", val_size=2, image_size=160)
    assert big.val[0][0].shape == (3, 160, 160) and big.split["augment"] == "imagenet"
    with pytest.raises(UserError, match="expected train/ and val/"):
        D.load_dataset(f"imagefolder:{tmp_path / 'train'}")


def _kinds(dataset) -> list[str]:
    """The transform class names of a Subset over a torchvision dataset."""
    return [type(t).__name__ for t in dataset.dataset.transform.transforms]


@pytest.mark.parametrize(("augment", "expected"), [
    ("none", ["Resize", "CenterCrop", "ToTensor", "Normalize"]),
    ("crop", ["Resize", "CenterCrop", "RandomCrop", "ToTensor", "Normalize"]),
    ("standard", ["Resize", "CenterCrop", "RandomCrop", "RandomHorizontalFlip", "ToTensor",
                  "Normalize"]),
    ("imagenet", ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]),
])
def test_augment_modes_touch_the_training_split_only(tmp_path, augment, expected) -> None:
    _folder(tmp_path, 2, 10, (12, 12))
    data = D.load_dataset(f"imagefolder:{tmp_path}", augment=augment)
    assert _kinds(data.train) == expected
    assert _kinds(data.val) == _kinds(data.train_plain) == \
        ["Resize", "CenterCrop", "ToTensor", "Normalize"]
    assert data.split["augment"] == augment
    if augment == "none":  # then training images are exactly the plain ones
        assert torch.equal(data.train[0][0], data.train_plain[0][0])


def test_default_validation_split_scales_with_the_dataset(tmp_path) -> None:
    assert D.default_val_size("x", 60000) == 5000 and D.default_val_size("x", 1800) == 180
    _folder(tmp_path / "small", 3, 20, (8, 8))
    data = D.load_dataset(f"imagefolder:{tmp_path / 'small'}")
    assert len(data.val) == 6 and len(data.train) == 54 and data.spec.image_size == 8
    _folder(tmp_path / "tiny", 2, 3, (8, 8))
    with pytest.raises(UserError, match="has 6 training images, too few"):
        D.load_dataset(f"imagefolder:{tmp_path / 'tiny'}")


def test_image_size_resizes_square_datasets() -> None:
    data = D.load_dataset("synthetic", image_size=20)
    assert data.spec.input_shape == (3, 20, 20) and data.train[0][0].shape == (3, 20, 20)
    assert data.split["image_size"] == 20 and data.split["augment"] == "none"
    with pytest.raises(UserError, match="no augmentation"):
        D.load_dataset("synthetic", augment="standard")


@needs_debian
def test_fashion_mnist_at_another_size_keeps_its_recipe(tmp_path) -> None:
    data = D.load_dataset("fashion-mnist", tmp_path, download=False, image_size=32)
    assert data.val[0][0].shape == (1, 32, 32) and data.spec.input_shape == (1, 32, 32)
    assert len(data.val) == 5000 and data.split["augment"] == "standard"
    assert _kinds(data.train) == ["Resize", "RandomCrop", "RandomHorizontalFlip", "ToTensor",
                                  "Normalize"]
    assert data.train.dataset.transform.transforms[1].padding == 2  # 2 px at 28, scaled


def test_input_belongs_to_the_checkpoint() -> None:
    record = D.split_record("synthetic", 0, 128, 512, image_size=20, augment="none")
    assert D.resolve_input(record, "synthetic", None, None) == (20, "none")
    assert D.resolve_input(record, "synthetic", 20, None) == (20, "none")
    with pytest.raises(UserError, match="trained on 20x20 inputs; --image-size 16"):
        D.resolve_input(record, "synthetic", 16, None)
    # A fine-tune may choose its own augmentation; another dataset ignores the record.
    assert D.resolve_input(record, "synthetic", None, "crop") == (20, "crop")
    assert D.resolve_input(record, "cifar10", 16, None) == (16, None)
    old = D.split_record("synthetic", 0, 128, 512)  # written before sizes were recorded
    assert D.resolve_input(old, "synthetic", None, None) == (None, None)
    with pytest.raises(UserError, match="unknown --augment 'flip'"):
        D.resolve_input(None, "synthetic", None, "flip")
    with pytest.raises(UserError, match="--image-size must be a positive"):
        D.resolve_input(None, "synthetic", 0, None)
