"""Per-layer latency tables: the table predicts a pruned copy's latency from its entries (exact
when latency is additive over layers), is cached and reused, is rebuilt when a key changes, and
drives the wall of latency-target searches."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from amc_agent.cli import cli, search
from amc_agent.env import env as env_module
from amc_agent.env import latency_table
from amc_agent.env.env import ChannelPruningEnv
from amc_agent.env.latency import Latency
from amc_agent.env.surgery import Surgeon, pruned_copy
from amc_agent.env.wall import allowed_counts
from tests.amc_env.helpers import FAST, model, synthetic
from tests.amc_env.test_costmodel import Concat
from tests.amc_env.test_grouped import ResNeXtNet

EXAMPLE = torch.zeros(1, 3, 16, 16)
CALLS: list[int] = []


def fake_latency(mod: nn.Module, input_shape, batch_size=1, device="cpu", **_) -> Latency:
    """Additive over layers: 0.01 ms per call plus 1 ms per thousand conv/linear weights."""
    CALLS.append(batch_size)
    w = sum(m.weight.numel() for m in mod.modules() if isinstance(m, nn.Conv2d | nn.Linear))
    return Latency(0.01 + batch_size * w / 1e3, 0.0, 1, batch_size, 1, device)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("AMC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(latency_table, "measure_latency", fake_latency)
    CALLS.clear()


CASES = {"resnet20": lambda: model("resnet20"), "mobilenetv2": lambda: model("mobilenetv2"),
         "concat": Concat, "resnext_block": ResNeXtNet}


@pytest.mark.parametrize("case", list(CASES))
def test_table_predicts_a_pruned_copy_from_its_entries(case: str) -> None:
    torch.manual_seed(0)
    m = CASES[case]().eval()
    env = ChannelPruningEnv(m, synthetic(), **FAST, budget=0.5)
    options = env.wall.options
    table = latency_table.build_latency_table(m, env.units, EXAMPLE, options, "cpu", 2)
    rng = np.random.default_rng(0)
    for _ in range(3):
        kept = [int(rng.choice(o)) for o in options]
        s = Surgeon(m, EXAMPLE)
        for u, k in zip(env.units, kept, strict=True):
            s.prune(u.name, u.balanced(range(k // u.channel_groups)))
        real = fake_latency(s.model, (3, 16, 16), 2).median_ms
        assert table.predict_rows(np.array([kept]))[0] == pytest.approx(real, rel=1e-9)
    full = [u.channels for u in env.units]
    assert table.predict_rows(np.array([full]))[0] == pytest.approx(table.original_ms)


def test_table_is_calibrated_on_whole_networks(monkeypatch) -> None:
    """Layers timed alone run 1.3x slower than inside the network (plus a launch cost each):
    the raw sum of entries would overstate what pruning saves; the table's scale, fitted on
    uniformly pruned copies timed whole, predicts pruned copies exactly again."""
    def alone_slower(mod: nn.Module, input_shape, batch_size=1, device="cpu", **_) -> Latency:
        convs = [m for m in mod.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        w = sum(m.weight.numel() for m in convs) / 1e3
        return Latency(0.5 + (w if len(convs) > 1 else 1.3 * w + 0.05), 0.0, 1, batch_size, 1,
                       device)

    monkeypatch.setattr(latency_table, "measure_latency", alone_slower)
    m = model("resnet20").eval()
    env = ChannelPruningEnv(m, synthetic(), **FAST, budget=0.5)
    table = latency_table.build_latency_table(m, env.units, EXAMPLE, env.wall.options, "cpu", 1)
    assert table.scale == pytest.approx(1 / 1.3)
    rng = np.random.default_rng(1)
    for _ in range(3):
        kept = [int(rng.choice(o)) for o in env.wall.options]
        s = Surgeon(m, EXAMPLE)
        for u, k in zip(env.units, kept, strict=True):
            s.prune(u.name, range(k))
        real = alone_slower(s.model, (3, 16, 16)).median_ms
        assert table.predict_rows(np.array([kept]))[0] == pytest.approx(real, rel=1e-9)


def _conv_output_elements(mod: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Values one sample's conv/linear layers output in ``mod``."""
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: sizes.append(o[0].numel()))
             for m in mod.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        mod(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    return sum(sizes)


def _timed_whole(network_ms: Callable[[nn.Module, tuple[int, ...]], float]
                 ) -> Callable[..., Latency]:
    """A stand-in for ``measure_latency``: 0.2 ms plus 1 ms per thousand weights, plus
    ``network_ms`` only where several layers run together (a whole network, not one layer
    timed alone)."""
    def measure(mod: nn.Module, input_shape, batch_size=1, device="cpu", **_) -> Latency:
        convs = [m for m in mod.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        ms = 0.2 + sum(m.weight.numel() for m in convs) / 1e3
        if len(convs) > 1:
            ms += network_ms(mod, input_shape)
        return Latency(ms, 0.0, 1, batch_size, 1, device)

    return measure


def test_table_learns_the_cost_per_activation_element(monkeypatch) -> None:
    """Inside the network every conv output also passes through BatchNorm, ReLU and additions
    (2 us per thousand values here), which no layer timed alone pays: the table's element term,
    fitted on uniform and random copies timed whole, predicts other pruned copies exactly; a
    scale on the layer sum alone could not (its error is checked to be large)."""
    with_traffic = _timed_whole(lambda mod, shape: 2e-3 * _conv_output_elements(mod, shape))
    monkeypatch.setattr(latency_table, "measure_latency", with_traffic)
    m = model("resnet20").eval()
    env = ChannelPruningEnv(m, synthetic(), **FAST, budget=0.5)
    table = latency_table.build_latency_table(m, env.units, EXAMPLE, env.wall.options, "cpu", 1)
    assert table.element_ms == pytest.approx(2e-3) and table.scale == pytest.approx(1.0)
    rng = np.random.default_rng(7)
    for _ in range(3):
        kept = np.array([[rng.choice(o) for o in env.wall.options]], dtype=np.float64)
        real = with_traffic(pruned_copy(m, EXAMPLE, env.units, kept[0]), (3, 16, 16)).median_ms
        assert table.predict_rows(kept)[0] == pytest.approx(real, rel=1e-9)
        layers_only = table.original_ms + (table.layer_ms(kept).sum()
                                           - table.layer_ms(np.array([table.channels])).sum())
        assert abs(layers_only - real) > 0.05 * real


def _conv_macs(mod: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one sample's conv/linear layers in ``mod``."""
    macs: list[int] = []

    def hook(m: nn.Module, _i, o: torch.Tensor) -> None:
        per_out = m.in_features if isinstance(m, nn.Linear) else \
            m.in_channels // m.groups * int(np.prod(m.kernel_size))
        macs.append(o[0].numel() * per_out)

    hooks = [m.register_forward_hook(hook) for m in mod.modules()
             if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        mod(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    return sum(macs)


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2"])
def test_table_learns_the_cost_per_multiply_accumulate(monkeypatch, name: str) -> None:
    """Inside the network compute costs more than the layers timed alone say (1 us per
    thousand MACs here, a depthwise conv's included): the table's MAC term, fitted on copies timed
    whole, predicts other pruned copies exactly, and the refit learns it again from timed
    networks when the build did not."""
    compute_bound = _timed_whole(lambda mod, shape: 1e-6 * _conv_macs(mod, shape))
    monkeypatch.setattr(latency_table, "measure_latency", compute_bound)
    m = model(name).eval()
    env = ChannelPruningEnv(m, synthetic(), **FAST, budget=0.5)
    table = latency_table.build_latency_table(m, env.units, EXAMPLE, env.wall.options, "cpu", 1)
    assert table.mac_ms == pytest.approx(1e-6) and table.scale == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    rows = np.array([[rng.choice(o) for o in env.wall.options] for _ in range(12)], float)
    real = np.array([compute_bound(pruned_copy(m, EXAMPLE, env.units, k), (3, 16, 16)).median_ms
                     for k in rows])
    np.testing.assert_allclose(table.predict_rows(rows), real, rtol=1e-9)
    table.set_calibration((1.0, 0.0, 0.0, table.original_ms - table.layer_ms(
        np.array([table.channels])).sum()))  # as if built without the MAC term
    assert not np.allclose(table.predict_rows(rows), real, rtol=0.01)
    table.refit(rows[:8], real[:8])
    np.testing.assert_allclose(table.predict_rows(rows[8:]), real[8:], rtol=1e-6)


def test_table_is_cached_and_rebuilt_when_a_key_changes(tmp_path) -> None:
    m = model("cnn").eval()
    env = ChannelPruningEnv(m, synthetic(), **FAST, budget=0.5)
    first = latency_table.build_latency_table(m, env.units, EXAMPLE, env.wall.options, "cpu", 1)
    measured = len(CALLS)
    assert measured > len(env.units) and len(list(latency_table.cache_dir().glob("*.json"))) == 1
    again = latency_table.build_latency_table(m, env.units, EXAMPLE, env.wall.options, "cpu", 1)
    assert len(CALLS) == measured and again.tables == first.tables  # no re-measurement
    latency_table.build_latency_table(m, env.units, EXAMPLE, env.wall.options, "cpu", 8)
    assert len(CALLS) == 2 * measured and set(CALLS[measured:]) == {8}  # batch is in the key
    coarser = [allowed_counts(u.channels, 4, 0.5) for u in env.units]
    latency_table.build_latency_table(m, env.units, EXAMPLE, coarser, "cpu", 1)
    assert len(list(latency_table.cache_dir().glob("*.json"))) == 3  # so is the grid


def test_latency_target_search_walls_on_the_table(monkeypatch) -> None:
    monkeypatch.setattr(env_module, "measure_latency", fake_latency)
    env = ChannelPruningEnv(model("resnet20"), synthetic(), **FAST, target="latency",
                            budget=0.6)
    assert isinstance(env.latency_model, latency_table.LatencyTable)
    info = env.play({u.name: 0.5 for u in env.units})
    assert info["predicted_latency_ms"] == pytest.approx(info["latency_ms"], rel=1e-9)
    env.reset(seed=0)
    for _ in env.units:
        *_, info = env.step([0.95])  # the wall holds the budget
    assert info["latency_ms"] <= 0.6 * info["original_latency_ms"] + 1e-9


def test_infeasible_latency_budget_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli.run("amc-search", lambda: search.main([
            "--model", "cnn", "--dataset", "synthetic", "--target", "latency", "--budget",
            "0.01", "--eval-size", "32", "--wandb-mode", "disabled", "--no-progress",
            "--out", str(tmp_path / "s")]))
    err = capsys.readouterr().err.splitlines()
    assert exc.value.code == 2 and len(err) == 1
    assert "budget 0.01 is infeasible for target latency" in err[0]
    assert not (tmp_path / "s").exists()


def test_fine_grids_are_thinned_and_interpolated() -> None:
    grid = latency_table._grid(np.arange(4, 65))
    assert len(grid) == latency_table.MAX_GRID and grid[0] == 4 and grid[-1] == 64
    g = np.asarray(grid, float)
    ms = np.add.outer(2 * g, g)  # linear in both widths: interpolation is exact
    x, y = np.array([5.0, 33.0, 64.0]), np.array([7.0, 20.0, 4.0])
    np.testing.assert_allclose(latency_table._interp2(g, g, ms, x, y), 2 * x + y)


@pytest.mark.parametrize("margin", [0.9, 0.0])
def test_latency_wall_learns_the_predictors_bias_from_measured_episodes(monkeypatch,
                                                                       margin: float) -> None:
    """A predictor 10% optimistic: walled to the budget itself, every episode measures over it.
    With the online margin the wall aims at budget / 1.1 after the first timed episode, and
    every later episode measures within the budget."""
    def slow(mod: nn.Module, *args, **kwargs) -> Latency:
        lat = fake_latency(mod, *args, **kwargs)
        pruned = mod is not env.model  # the original, timed beside each episode, runs as known
        return dataclasses.replace(lat, median_ms=(1.1 if pruned else 1.0) * lat.median_ms)

    monkeypatch.setattr(env_module, "measure_latency", slow)
    env = ChannelPruningEnv(model("resnet20"), synthetic(), **FAST, target="latency",
                            budget=0.6, latency_margin=margin)
    over = []
    for seed in range(4):
        env.reset(seed=seed)
        for _ in env.units:
            *_, info = env.step(env.action_space.sample())
        assert info["latency_ms"] == pytest.approx(1.1 * info["predicted_latency_ms"])
        over.append(info["latency_ms"] > info["budget_latency_ms"] * (1 + 1e-9))
    assert over == ([True, False, False, False] if margin else [True] * 4)
    expected = env.budget_abs / 1.1 if margin else env.budget_abs
    assert info["wall_latency_ms"] == pytest.approx(expected)


def test_episode_latency_is_a_ratio_to_the_original_timed_beside_it(monkeypatch) -> None:
    """Machine load doubles after the table was built: the episode's model and the original,
    timed back to back, both run twice as slow, and the episode's latency (their ratio, in the
    table's milliseconds) is what it would have been without the load."""
    monkeypatch.setattr(env_module, "measure_latency", fake_latency)
    env = ChannelPruningEnv(model("resnet20"), synthetic(), **FAST, target="latency",
                            budget=0.6)
    quiet = env.play({u.name: 0.5 for u in env.units})

    def loaded(mod: nn.Module, *args, **kwargs) -> Latency:
        lat = fake_latency(mod, *args, **kwargs)
        return dataclasses.replace(lat, median_ms=2 * lat.median_ms)

    monkeypatch.setattr(env_module, "measure_latency", loaded)
    busy = env.play({u.name: 0.5 for u in env.units})
    assert busy["latency"]["median_ms"] == pytest.approx(2 * quiet["latency"]["median_ms"])
    assert busy["latency_ms"] == pytest.approx(quiet["latency_ms"])
    assert busy["latency_ratio"] == pytest.approx(quiet["latency_ms"] / env.budget_abs * 0.6)


def _random_rows(env: ChannelPruningEnv, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([[rng.choice(o) for o in env.wall.options] for _ in range(n)], float)


def test_refit_learns_what_pruning_really_saves_from_measured_networks(monkeypatch) -> None:
    """Networks measured after the build save half of what the table says pruning saves (a
    floor no layer timed alone shows): refitted on a dozen of them, the table predicts others
    exactly; timings with no slope at all leave the calibration as it was."""
    monkeypatch.setattr(env_module, "measure_latency", fake_latency)
    env = ChannelPruningEnv(model("resnet20"), synthetic(), **FAST, target="latency",
                            budget=0.6)
    table = env.latency_model
    assert isinstance(table, latency_table.LatencyTable)
    orig = table.original_ms
    seen, unseen = _random_rows(env, 12, 0), _random_rows(env, 8, 1)
    truth = lambda rows: orig + 0.5 * (table.predict_rows(rows) - orig)  # noqa: E731
    before = table.calibration()
    want, exact = truth(unseen), truth(seen)  # before any refit moves the table
    assert not np.allclose(table.predict_rows(unseen), want, rtol=0.05)
    table.refit(seen, exact)
    np.testing.assert_allclose(table.predict_rows(unseen), want, rtol=1e-6)
    refitted = table.calibration()
    assert refitted != before
    table.refit(seen, np.full(len(seen), orig))  # pruning saved nothing: no slope to fit
    assert table.calibration() == refitted
    # One timing 5x off (seen on MobileNetV2 under onnxruntime) is left out of the fit.
    wild = exact.copy()
    wild[3] *= 5.0
    table.refit(seen, wild)
    np.testing.assert_allclose(table.predict_rows(unseen), want, rtol=1e-6)
    # Honest spread (all within OUTLIER_FLOOR of the fit) is kept: the fit moves with it.
    noisy = exact * np.where(np.arange(len(seen)) % 2, 1.2, 1.0)
    table.refit(seen, noisy)
    assert not np.allclose(table.predict_rows(unseen), want, rtol=1e-3)


def test_online_predictions_refit_only_on_what_was_timed_before(monkeypatch) -> None:
    """The predictor error a search's wall has: row i predicted by the table refitted on the
    rows before it (none after), the first ``start`` by the table as built; the table itself is
    left as it was."""
    monkeypatch.setattr(env_module, "measure_latency", fake_latency)
    env = ChannelPruningEnv(model("resnet20"), synthetic(), **FAST, target="latency",
                            budget=0.6)
    table = env.latency_model
    assert isinstance(table, latency_table.LatencyTable)
    rows = _random_rows(env, 12, 0)
    built, built_ms = table.calibration(), table.predict_rows(rows)
    truth = table.original_ms + 0.5 * (built_ms - table.original_ms)
    got = latency_table.online_predictions(table, rows, truth, start=4, window=3)
    assert table.calibration() == built
    np.testing.assert_allclose(got[:4], built_ms[:4])
    np.testing.assert_allclose(got[4:], truth[4:], rtol=1e-6)  # learnt from earlier rows
    # Row i never sees its own timing or a later one; the window drops the oldest.
    later = truth.copy()
    later[:4] *= 0.7
    later[9:] *= 0.7
    moved = latency_table.online_predictions(table, rows, later, start=4, window=3)
    np.testing.assert_allclose(moved[7:10], got[7:10], rtol=1e-9)
    assert not np.isclose(moved[4], got[4]) and not np.isclose(moved[11], got[11])


def test_latency_wall_refits_the_table_on_the_searchs_own_episodes(monkeypatch) -> None:
    """Pruned models measure halfway between the table's prediction and the original. Until
    ``LATENCY_REFIT`` episodes are timed the prediction is optimistic; from then on the refitted
    table predicts every episode as measured, so the wall aims at the budget itself and no
    episode lands over it. Fed the same episodes, a fresh env (a resumed search) ends in the
    same state."""
    def floor(mod: nn.Module, *args, **kwargs) -> Latency:
        lat, ref = fake_latency(mod, *args, **kwargs), fake_latency(env.model, *args, **kwargs)
        return dataclasses.replace(lat, median_ms=(lat.median_ms + ref.median_ms) / 2)

    monkeypatch.setattr(env_module, "measure_latency", floor)
    env = ChannelPruningEnv(model("resnet20"), synthetic(), **FAST, target="latency",
                            budget=0.6)
    infos = []
    for seed in range(env_module.LATENCY_REFIT + 4):
        env.reset(seed=seed)
        for _ in env.units:
            *_, info = env.step(env.action_space.sample())
        infos.append(info)
    early, late = infos[:env_module.LATENCY_REFIT], infos[env_module.LATENCY_REFIT:]
    assert all(i["latency_ms"] > i["predicted_latency_ms"] * 1.01 for i in early)
    for i in late:
        assert i["latency_ms"] == pytest.approx(i["predicted_latency_ms"], rel=1e-6)
        assert i["wall_latency_ms"] == pytest.approx(env.budget_abs, rel=1e-6)
        assert i["latency_ms"] <= env.budget_abs * (1 + 1e-6)
    fresh = ChannelPruningEnv(model("resnet20"), synthetic(), **FAST, target="latency",
                              budget=0.6)
    for i in infos:
        fresh.record_latency(list(i["kept_channels"].values()), i["latency_ms"])
    timed, table, aim = fresh.latency_state()
    want_timed, want_table, want_aim = env.latency_state()
    assert timed == want_timed and aim == pytest.approx(want_aim)
    assert table == pytest.approx(want_table)


def _block(c: int) -> int:
    return 8 * -(-c // 8)


def blocked_latency(mod: nn.Module, input_shape, batch_size=1, device="cpu", **_) -> Latency:
    """As :func:`fake_latency`, but layers run their input and output channels in blocks of 8
    (as SIMD kernels do): 9 to 16 channels cost as 16."""
    w = 0.0
    for m in mod.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            c_out, c_in = m.weight.shape[:2]
            w += _block(c_out) * _block(c_in) * m.weight[0, 0].numel()
    return Latency(0.01 + batch_size * w / 1e3, 0.0, 1, batch_size, 1, device)


def test_latency_wall_drops_counts_a_larger_count_matches(monkeypatch) -> None:
    monkeypatch.setattr(latency_table, "measure_latency", blocked_latency)
    monkeypatch.setattr(env_module, "measure_latency", blocked_latency)
    kw = {**FAST, "target": "latency", "budget": 0.6}
    env = ChannelPruningEnv(model("resnet20"), synthetic(), **kw, latency_drop_dominated=True)
    plain = ChannelPruningEnv(model("resnet20"), synthetic(), **kw)
    for u, opts, every in zip(env.units, env.wall.options, plain.wall.options, strict=True):
        assert list(every) == list(allowed_counts(u.channels, 8, env.cfg.lbound))
        assert set(opts) <= set(every) and opts[-1] == u.channels
        # A count off the block of 8 costs what the next multiple of 8 costs, for the layer
        # that produces the channels and for those that consume them: none survives.
        assert all(c % 8 == 0 for c in opts), (u.name, list(opts))
    assert sum(map(len, plain.wall.options)) > sum(map(len, env.wall.options))
    # The wall still holds the budget on the thinner grid.
    env.reset(seed=0)
    for _ in env.units:
        *_, info = env.step([0.95])
    assert info["latency_ms"] <= 0.6 * info["original_latency_ms"] + 1e-9
