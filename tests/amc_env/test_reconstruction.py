"""ThiNet, LASSO and least-squares reconstruction on layers whose answer is known."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops import Permute

from amc_agent.env.criteria import UnitContext, make_criterion
from amc_agent.env.reconstruction import Calibrator, ConsumerSample, ridge_solve
from amc_agent.env.surgery import Surgeon, full_group, prune_root
from amc_agent.env.units import build_graph, discover_units

SHAPE = (3, 8, 8)
IGNORED = [1, 4, 5, 9]  # input channels the consumer provably ignores (zero weights)


def chain(kind: str) -> tuple[nn.Sequential, str]:
    """A 12-channel unit followed by a consumer of the given kind; returns (model, consumer)."""
    if kind in ("1x1", "3x3"):
        k = 1 if kind == "1x1" else 3
        layers = [nn.Conv2d(3, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(),
                  nn.Conv2d(12, 8, k, padding=k // 2), nn.BatchNorm2d(8), nn.ReLU(),
                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)]
        consumer = "3"
    elif kind == "depthwise":
        layers = [nn.Conv2d(3, 12, 1), nn.BatchNorm2d(12), nn.ReLU(),
                  nn.Conv2d(12, 12, 3, padding=1, groups=12), nn.BatchNorm2d(12), nn.ReLU(),
                  nn.Conv2d(12, 8, 1), nn.BatchNorm2d(8), nn.ReLU(),
                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)]
        consumer = "6"
        nn.init.uniform_(layers[3].weight, 0.1, 0.5)  # no dead channel: all carry signal
    elif kind == "channels-last":
        # Linear layers on (B, H, W, C) maps (ConvNeXt, Swin): the channel axis is the last one,
        # and H == W == 8 == the consumer's outputs, so a channel-first reading would pass shapes.
        layers = [Permute([0, 2, 3, 1]), nn.Linear(3, 12), nn.GELU(), nn.Linear(12, 8),
                  Permute([0, 3, 1, 2]), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)]
        consumer = "3"
    else:  # a linear layer reading a flattened 12 x 4 x 4 map
        layers = [nn.Conv2d(3, 12, 3, stride=2, padding=1), nn.BatchNorm2d(12), nn.ReLU(),
                  nn.Flatten(), nn.Linear(12 * 16, 4)]
        consumer = "4"
    return nn.Sequential(*layers).eval(), consumer


def ignore(model: nn.Module, consumer: str, channels: list[int]) -> None:
    """Zero the consumer's weights on ``channels`` of its input."""
    mod = model.get_submodule(consumer)
    with torch.no_grad():
        if isinstance(mod, nn.Linear):
            w = mod.weight.view(mod.out_features, 12, -1)
            w[:, channels] = 0.0
        else:
            mod.weight[:, channels] = 0.0


def batches(n: int = 2, size: int = 16, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, *SHAPE, generator=g), torch.zeros(size, dtype=torch.long))
            for _ in range(n)]


def context(model: nn.Module, images: int = 32, points: int = 10,
            data: list | None = None) -> UnitContext:
    example = torch.zeros(1, *SHAPE)
    units = discover_units(model, example)
    unit = units[0]
    owners = {m: u.name for u in units for m in u.members}
    s = Surgeon(model, example)
    return UnitContext(unit=unit, model=s.model, graph=s.graph, group=s.group(unit.name),
                       original=model,
                       original_group=full_group(build_graph(model, example), model, unit.name),
                       calibration=data or batches(),
                       calibrator=Calibrator(model, data or batches(), images, points, owners))


KINDS = ["1x1", "3x3", "depthwise", "linear", "channels-last"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["thinet", "lasso"])
def test_drops_exactly_the_ignored_channels(kind: str, name: str) -> None:
    torch.manual_seed(0)
    model, consumer = chain(kind)
    ignore(model, consumer, IGNORED)
    ctx = context(model)
    [sample] = ctx.consumer_samples()
    assert sample.name == consumer
    kept = make_criterion(name).select(ctx, 12 - len(IGNORED))
    assert kept == [c for c in range(12) if c not in IGNORED]


@pytest.mark.parametrize("kind", KINDS)
def test_reconstruction_never_raises_and_on_random_layers_lowers_the_error(kind: str) -> None:
    torch.manual_seed(1)
    model, consumer = chain(kind)
    ctx = context(model)
    crit = make_criterion("l1+reconstruct")
    assert crit.reconstruct and crit.spec == "l1+reconstruct"
    kept = crit.select(ctx, 6)
    [sample] = ctx.consumer_samples()
    surgeon_model = ctx.model
    prune_root(ctx.graph, surgeon_model, ctx.unit.name, kept)
    rows = torch.zeros(12, dtype=torch.bool)
    rows[kept] = True
    before = sample.error(surgeon_model, rows)
    errors = ctx.calibrator.reconstruct(ctx.unit, surgeon_model, kept)
    after = sample.error(surgeon_model, rows)
    assert set(errors) == {consumer}
    assert after < 0.95 * before
    assert errors[consumer] == pytest.approx(after / sample.energy())


@pytest.mark.parametrize("kind", ["3x3", "channels-last"])
def test_refit_is_exact_when_the_kept_channels_suffice(kind: str) -> None:
    """Channels the consumer ignores carry nothing: cutting them leaves zero error, and a refit
    keeps it (near) zero instead of moving the weights (so the sampled targets are the
    consumer's true outputs at the sampled positions)."""
    torch.manual_seed(2)
    model, consumer = chain(kind)
    ignore(model, consumer, IGNORED)
    ctx = context(model)
    kept = make_criterion("thinet").select(ctx, 8)
    w_before = model.get_submodule(consumer).weight[:, kept].clone()
    prune_root(ctx.graph, ctx.model, ctx.unit.name, kept)
    errors = ctx.calibrator.reconstruct(ctx.unit, ctx.model, kept)
    assert errors[consumer] < 1e-8
    assert torch.allclose(ctx.model.get_submodule(consumer).weight, w_before, atol=1e-4)


def test_ridge_solve_primal_and_dual_agree_with_lstsq() -> None:
    g = torch.Generator().manual_seed(0)
    a, r = torch.randn(50, 8, generator=g).double(), torch.randn(50, 3, generator=g).double()
    ref = torch.linalg.lstsq(a, r).solution
    assert torch.allclose(ridge_solve(a, r, ridge=0.0), ref, atol=1e-8)
    wide = torch.randn(6, 20, generator=g).double()
    d = ridge_solve(wide, r[:6], ridge=1e-9)  # under-determined: interpolates, minimum norm
    assert torch.allclose(wide @ d, r[:6], atol=1e-5)
    assert torch.allclose(d, torch.linalg.pinv(wide) @ r[:6], atol=1e-4)


def test_sample_count_is_bounded_by_images_and_points_not_the_data() -> None:
    torch.manual_seed(3)
    for kind, rows_per_image in (("3x3", 5), ("linear", 1)):
        model, _ = chain(kind)
        for n_batches in (2, 8):
            ctx = context(model, images=20, points=5, data=batches(n_batches, 16))
            [s] = ctx.consumer_samples()
            assert isinstance(s, ConsumerSample)
            assert s.A.shape[0] == s.Y.shape[0] == 20 * rows_per_image
            assert ctx.calibrator.images == 20


def test_samples_are_cached_per_episode_and_targets_per_search() -> None:
    torch.manual_seed(4)
    model, _ = chain("1x1")
    ctx = context(model)
    first = ctx.consumer_samples()
    assert ctx.consumer_samples() is first  # same episode (same model object): sampled once
    targets = dict(ctx.calibrator._targets)
    s = Surgeon(model, torch.zeros(1, *SHAPE))
    again = ctx.calibrator.sample(ctx.unit, s.model, s.group(ctx.unit.name), s.graph, {})
    assert again is not first and torch.equal(again[0].A, first[0].A)
    assert all(ctx.calibrator._targets[k] is v for k, v in targets.items())


def test_pruned_consumer_outputs_are_matched_to_their_original_channels() -> None:
    """A consumer whose own outputs were cut earlier is fitted to the surviving columns."""
    torch.manual_seed(5)
    model, consumer = chain("3x3")
    ctx = context(model)
    units = discover_units(model, torch.zeros(1, *SHAPE))
    second = units[1]  # the consumer's own output channels
    ctx.kept = {second.name: [0, 2, 5]}
    prune_root(ctx.graph, ctx.model, second.name, [0, 2, 5])
    ctx.group = full_group(ctx.graph, ctx.model, ctx.unit.name)
    [s] = ctx.consumer_samples()
    assert s.Y.shape[1] == 3
    orig = model.get_submodule(consumer).weight.detach()[[0, 2, 5]]
    assert torch.allclose(s.weight(ctx.model).reshape(3, -1), orig.reshape(3, -1))
    assert s.error(ctx.model) < 1e-6 * s.energy()  # nothing cut from the unit yet


@pytest.mark.parametrize("name", ["thinet", "lasso", "l1+reconstruct"])
def test_env_episode_on_a_residual_net(name: str) -> None:
    from tests.amc_env.helpers import make_env, run_episode

    env = make_env("resnet20", criterion=name, budget=0.5, recalibrate=False,
                   calib_images=16, calib_points=4)
    info = run_episode(env, 0.5)
    assert 0.47 <= info["macs"] / info["original_macs"] <= 0.5
    stage = env.units[0]  # the stem's residual stream: consumers inside every block of stage 1
    samples = env.calibrator._samples.get(stage.name, [])
    names = {s.name for s in samples}
    assert {c for c in stage.consumers if c.endswith("conv1")} <= names


@pytest.mark.parametrize(("k", "stride", "pad", "dil"), [(3, 1, 1, 1), (1, 2, 0, 1),
                                                         (3, 2, 1, 1), (5, 1, 2, 2)])
def test_sampled_patches_equal_unfold(k: int, stride: int, pad: int, dil: int) -> None:
    from torch.nn import functional as F

    from amc_agent.env.reconstruction import _rows

    conv = nn.Conv2d(4, 5, k, stride=stride, padding=pad, dilation=dil)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 9, 11, generator=g)
    cols = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)
    pos = torch.stack([torch.randperm(cols.shape[2], generator=g)[:4] for _ in range(3)])
    ref = cols.gather(2, pos.unsqueeze(1).expand(-1, cols.shape[1], -1)).permute(0, 2, 1)
    assert torch.allclose(_rows(conv, x, pos), ref.reshape(-1, cols.shape[1]))


@pytest.mark.parametrize(("name", "criterion"), [("resnet20", "group-l2+reconstruct"),
                                                 ("mobilenetv2", "group-l2+reconstruct"),
                                                 ("resnet20", "thinet")])
def test_reused_prefix_gives_bit_identical_episodes(name: str, criterion: str) -> None:
    """Captures that reuse unchanged blocks (PrefixCache) sample the same rows as full forward
    passes: every episode's kept channels, refitted weights and accuracy are identical, and
    the reuse did happen."""
    from amc_agent.env import reconstruction
    from tests.amc_env.helpers import make_env, run_episode

    envs = {reuse: make_env(name, criterion=criterion, budget=0.4, calib_images=16,
                            calib_points=4, cache=False, reuse_prefix=reuse)
            for reuse in (False, True)}
    served = []
    real = reconstruction.PrefixCache._serving

    def counting(self, bname, block, state):
        fwd = real(self, bname, block, state)

        def f(*args, **kwargs):
            cached = [e.output for e in self._entries.values()]
            out = fwd(*args, **kwargs)
            served.append(any(c is out for c in cached))  # a hit returns the stored tensor
            return out
        return f

    reconstruction.PrefixCache._serving = counting
    try:
        for seed, ratios in enumerate(([0.5] * 40, [0.3, 0.9, 0.6] * 20)):
            infos, states = [], []
            for reuse in (False, True):
                info = run_episode(envs[reuse], ratios[:envs[reuse].n_units], seed=seed)
                infos.append((info["kept_channels"], info["accuracy"], info["macs"]))
                states.append(envs[reuse].pruned_model().state_dict())
            assert infos[0] == infos[1]
            assert states[0].keys() == states[1].keys()
            assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    finally:
        reconstruction.PrefixCache._serving = real
    assert 0 < sum(served) < len(served)  # some blocks were served, the changed ones ran


def test_prefix_cache_serves_only_unchanged_blocks_on_equal_inputs() -> None:
    """A block is served when its weights and its inputs are what they were; a refit (in-place
    change), a replaced weight or another input makes it run again."""
    from amc_agent.env.reconstruction import PrefixCache

    torch.manual_seed(0)
    # Blocks "0", "1", "2" each wrap one conv; a conv's hook fires only when its block runs.
    model = nn.Sequential(*(nn.Sequential(c) for c in (
        nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 2, 1)))).eval()
    cache, state = PrefixCache(model), {"batch": 0}
    calls: list[str] = []
    for name, block in model.named_children():
        block[0].register_forward_hook(lambda m, i, o, name=name: calls.append(name))
    x = torch.randn(2, *SHAPE)

    def run(inp: torch.Tensor, read: str = "2.0") -> list[str]:
        calls.clear()
        with torch.no_grad(), cache.active([read], state):
            out = model(inp)
        ran = list(calls)
        with torch.no_grad():
            assert torch.equal(out, model(inp))  # what a plain forward computes
        return ran

    assert run(x) == ["0", "1", "2"]
    assert run(x.clone()) == ["2"]  # equal values: both blocks served, the read layer runs
    with torch.no_grad():
        model[1][0].weight.add_(1.0)  # a refit
    assert run(x) == ["1", "2"]
    same = model[0][0].weight.detach().clone()
    model[0][0].weight = nn.Parameter(same)  # replaced by equal values: its output is equal,
    assert run(x) == ["0", "2"]  # so the next block is served from it
    model[0][0].weight = nn.Parameter(same * 0.5)  # a cut replaces it
    assert run(x) == ["0", "1", "2"]
    assert run(x + 1) == ["0", "1", "2"]
    assert run(x + 1, read="1.0") == ["1", "2"]  # the block holding the read layer runs
    assert not any("forward" in vars(m) for m in model.modules())  # nothing left patched
