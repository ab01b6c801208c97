"""Datasets: the offline Fashion-MNIST path, held-out validation split, stand-ins for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import datasets as tvd

from amc_env import datasets as D
from amc_env.errors import UserError

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


def test_imagefolder(tmp_path: Path) -> None:
    for split in ("train", "val"):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(4):
                img = Image.new("RGB", (40, 30), (i * 40, 10, 200))
                img.save(tmp_path / split / c / f"{i}.png")
    data = D.load_dataset(f"imagefolder:{tmp_path}", val_size=2)
    assert data.spec.num_classes == 2 and data.spec.input_shape == (3, 224, 224)
    assert len(data.train) == 6 and len(data.val) == 2 and len(data.test) == 8
    assert data.val[0][0].shape == (3, 224, 224)
    with pytest.raises(UserError, match="expected train/ and val/"):
        D.load_dataset(f"imagefolder:{tmp_path / 'train'}")
