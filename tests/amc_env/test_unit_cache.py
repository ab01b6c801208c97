"""Unit discovery is cached per architecture fingerprint and bounded in time."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from amc_agent.env import unit_cache, units
from amc_agent.env.errors import UserError
from amc_agent.env.units import discover_units
from tests.amc_env.test_opaque_ops import ShuffleNet

EXAMPLE = torch.zeros(1, 3, 16, 16)


def _net(width: int = 16) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU(), nn.Conv2d(width, 8, 3), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AMC_CACHE_DIR", str(tmp_path))


def test_a_second_discovery_reads_the_cache_and_repeats_the_warning(monkeypatch) -> None:
    with pytest.warns(UserWarning, match="left unpruned: stage.1.branch2.5") as first:
        found = discover_units(ShuffleNet().eval(), EXAMPLE)
    assert len(list(unit_cache.cache_dir().glob("*.json"))) == 1

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("discovery ran again")

    monkeypatch.setattr(units, "_discover", fail)
    with pytest.warns(UserWarning) as again:
        assert discover_units(ShuffleNet().eval(), EXAMPLE) == found
    assert [str(w.message) for w in again] == [str(w.message) for w in first]


@pytest.mark.parametrize("change", ["width", "input", "exclude", "forward"])
def test_what_decides_the_units_changes_the_key(change: str) -> None:
    code = (units,)
    base = unit_cache.fingerprint(_net(), EXAMPLE, (), (), code)
    model, example, exclude = _net(), EXAMPLE, ()
    if change == "width":
        model = _net(12)
    elif change == "input":
        example = torch.zeros(1, 3, 20, 20)
    elif change == "exclude":
        exclude = ("0",)
    else:  # a forward patched on an instance is not in any class source: never cached
        model.forward = lambda x: x
    key = unit_cache.fingerprint(model, example, (), exclude, code)
    assert key != base and (key is None) == (change == "forward")
    assert unit_cache.fingerprint(_net(), EXAMPLE, (), (), code) == base  # values do not count


def test_discovery_past_its_time_bound_is_one_clear_error() -> None:
    with pytest.raises(UserError, match=r"unit discovery did not finish within 0 s "
                                         r"\(dependency groups\)"):
        discover_units(_net(), EXAMPLE, timeout_s=0.0)
    assert not list(unit_cache.cache_dir().glob("*.json"))
