"""Checkpoints: plain types, ``weights_only=True`` round trip, clear errors on bad files."""

from __future__ import annotations

import pytest
import torch

from amc_agent.env.checkpoint import FORMAT, load_checkpoint, model_from_checkpoint, save_checkpoint
from amc_agent.env.errors import UserError
from amc_agent.env.models import build_model

RECIPE = {"name": "resnet20", "kwargs": {"in_channels": 1, "num_classes": 10}}
SHAPE = (1, 28, 28)


def test_round_trip_weights_only(tmp_path) -> None:
    model = build_model(RECIPE).eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, RECIPE, "fashion-mnist", {"test_acc": 0.5}, input_shape=SHAPE)
    raw = torch.load(path, weights_only=True)  # plain types only: no pickled modules
    assert raw["format"] == FORMAT and raw["recipe"] == RECIPE
    assert raw["versions"]["torch"] == torch.__version__
    again = model_from_checkpoint(load_checkpoint(path)).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    # No temp files left beside it.
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_missing_corrupt_truncated_and_foreign_files(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="corrupt"):
        load_checkpoint(tmp_path / "junk.pt")
    good = tmp_path / "good.pt"
    save_checkpoint(good, build_model(RECIPE), RECIPE, "fashion-mnist", input_shape=SHAPE)
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:1000])
    with pytest.raises(UserError, match="corrupt"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save(build_model(RECIPE).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(UserError, match="expected 'amc-checkpoint/1'"):
        load_checkpoint(tmp_path / "sd.pt")


def test_state_dict_version_metadata_survives(tmp_path) -> None:
    # MNASNet refuses weights whose per-module version metadata is missing.
    recipe = {"name": "mnasnet0_5", "kwargs": {"in_channels": 3, "num_classes": 10}}
    model = build_model(recipe).eval()
    save_checkpoint(tmp_path / "m.pt", model, recipe, "synthetic", input_shape=(3, 32, 32))
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt["state_metadata"][""] == {"version": 2}
    rebuilt = model_from_checkpoint(ckpt).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
