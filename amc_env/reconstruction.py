"""Calibration sampling and least-squares reconstruction of the layers that read a unit.

The reconstruction-based criteria keep the *next* layer's response unchanged instead of ranking
weights by size: ThiNet (Luo et al., ICCV 2017) and LASSO channel pruning (He et al., ICCV 2017),
and AMC (He et al., ECCV 2018) refits the next layer by least squares after choosing channels.

A unit's *consumers* are the conv (``groups == 1``) and linear layers that read its channels.
For each consumer the :class:`Calibrator` samples ``N = images x points`` rows (AMC: random
output positions of a few batches):

- ``A`` ``[N, I, K]``: the consumer's input patches on the episode's current (partially pruned)
  model, ``I`` its input channels, ``K`` the features one channel contributes to one output
  position (``kh * kw`` for a conv, ``H * W`` for a linear layer after a flatten, else 1);
- ``Y`` ``[N, O]``: the *original* model's output of the consumer at the same positions, on its
  surviving output channels. As in He et al., inputs come from the pruned network and targets
  from the unpruned one, so a refit also absorbs the error of earlier units.

Memory is bounded by the sample count (``N`` rows per consumer), never by the dataset. Targets are
cached for the whole search (the original model and the calibration images never change); inputs
are sampled once per unit per episode.

Residual stages (one unit = every conv writing into the stage's residual stream) follow what the
papers did for ResNets: the consumers inside the blocks (each block's first conv, the next
stage's first conv and projection shortcut) are reconstructed; the identity shortcut sum has no
weights and is left alone. Consumers that are grouped convs, non-zero-padded convs or layers the
forward pass never reaches are skipped; a unit with no usable consumer falls back to L1 ranking
in the criteria.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import Tensor, nn
from torch.nn import functional as F

from amc_agent.env.units import Unit, is_out_pruning

RIDGE = 1e-4
"""Ridge strength of the weight update, relative to the mean input energy per feature."""


@dataclass
class ConsumerSample:
    """Calibration rows of one consumer layer of one unit (see the module docstring)."""

    name: str
    A: Tensor
    """``[N, I, K]`` input patches on the current model (before the unit is cut)."""
    Y: Tensor
    """``[N, O]`` the original model's outputs at the same positions."""
    pos: Tensor
    """Consumer input channels (positions in ``I``) that carry the unit's channels."""
    root: Tensor
    """The unit channel each of ``pos`` carries (original channel index)."""
    channels: int
    """The unit's width."""

    def weight(self, model: nn.Module) -> Tensor:
        """The consumer's current weight viewed as ``[O, I, K]``."""
        w = model.get_submodule(self.name).weight.detach()
        return w.reshape(w.shape[0], self.A.shape[1], self.A.shape[2])

    def bias(self, model: nn.Module) -> Tensor:
        """The consumer's bias, zeros if it has none."""
        mod = model.get_submodule(self.name)
        b = getattr(mod, "bias", None)
        return torch.zeros(self.Y.shape[1]) if b is None else b.detach().cpu()

    def contributions(self, model: nn.Module, chunk: int = 1024) -> tuple[Tensor, Tensor]:
        """``(G, h)``: the Gram matrix ``G[c, d] = <Z_c, Z_d>`` of the unit channels' output
        contributions ``Z_c = A[:, pos_c] W[:, pos_c]^T`` and ``h[c] = <Z_c, T>`` with ``T`` the
        part of the target the unit's channels must produce (target minus bias minus the other
        input channels' contribution). Both indexed by unit channel, float64."""
        w = self.weight(model).double().cpu()
        n_unit = self.channels
        other = torch.ones(self.A.shape[1], dtype=torch.bool)
        other[self.pos] = False
        G = torch.zeros(n_unit, n_unit, dtype=torch.float64)
        h = torch.zeros(n_unit, dtype=torch.float64)
        b = self.bias(model).double()
        for s in range(0, self.A.shape[0], chunk):
            a = self.A[s: s + chunk].double()
            z = torch.einsum("nck,ock->cno", a[:, self.pos], w[:, self.pos])
            z = torch.zeros(n_unit, *z.shape[1:], dtype=z.dtype).index_add_(0, self.root, z)
            t = self.Y[s: s + chunk].double() - b
            if other.any():
                t = t - torch.einsum("nik,oik->no", a[:, other], w[:, other])
            zf = z.flatten(1)
            G += zf @ zf.T
            h += zf @ t.flatten()
        return G, h

    def energy(self) -> float:
        """``||Y||^2``: normalises consumers against each other."""
        return max(float(self.Y.double().square().sum()), 1e-12)

    def error(self, model: nn.Module, kept_rows: Tensor | None = None) -> float:
        """Squared output error ``||A W^T + b - Y||^2`` of the consumer in ``model`` on the
        calibration rows; ``kept_rows`` selects the input channels still present (after a cut)."""
        a = self.A if kept_rows is None else self.A[:, kept_rows]
        mod = model.get_submodule(self.name)
        w = mod.weight.detach().cpu().double().reshape(mod.weight.shape[0], -1)
        pred = a.flatten(1).double() @ w.T + self.bias(model).double()
        return float((pred - self.Y.double()).square().sum())


class _Stop(Exception):
    """Raised by a hook once every consumer of interest has been seen (ends the forward)."""


def _positions(n_images: int, length: int, points: int, gen: torch.Generator) -> Tensor:
    """``[n_images, p]`` random output positions per image, without replacement."""
    p = min(points, length)
    return torch.stack([torch.randperm(length, generator=gen)[:p] for _ in range(n_images)])


def _usable(mod: nn.Module) -> bool:
    if isinstance(mod, nn.Linear):
        return True
    return (isinstance(mod, nn.Conv2d) and mod.groups == 1 and mod.padding_mode == "zeros"
            and not isinstance(mod.padding, str))


def _conv_rows(mod: nn.Conv2d, x: Tensor, pos: Tensor) -> Tensor:
    """``[B * p, I * kh * kw]`` input patches (``F.unfold`` order) of the sampled output
    positions only: indexing the padded input costs ``O(rows)``, not a whole unfold."""
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = mod.kernel_size, mod.stride, mod.dilation, \
        mod.padding
    xp = F.pad(x, (pw, pw, ph, ph))
    w_out = (x.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    pos = pos.to(x.device)
    oy, ox = pos // w_out, pos % w_out  # [B, p]
    iy = (oy * sh).unsqueeze(-1) + torch.arange(kh, device=x.device) * dh  # [B, p, kh]
    ix = (ox * sw).unsqueeze(-1) + torch.arange(kw, device=x.device) * dw  # [B, p, kw]
    b = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1, 1)
    patches = xp.permute(0, 2, 3, 1)[b, iy.unsqueeze(-1), ix.unsqueeze(-2)]  # [B, p, kh, kw, I]
    return patches.permute(0, 1, 4, 2, 3).reshape(-1, x.shape[1] * kh * kw)


def _rows(mod: nn.Module, x: Tensor, pos: Tensor) -> Tensor:
    """Sampled input rows ``[B * p, features]`` of ``mod`` at positions ``pos`` ``[B, p]``."""
    if isinstance(mod, nn.Conv2d):
        return _conv_rows(mod, x, pos)
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    idx = pos.to(x.device).unsqueeze(2).expand(-1, -1, flat.shape[2])
    return flat.gather(1, idx).reshape(-1, flat.shape[2])


def _outputs(mod: nn.Module, y: Tensor, pos: Tensor) -> Tensor:
    """Sampled outputs ``[B * p, O]`` at positions ``pos`` ``[B, p]``: a conv's channels are
    axis 1, a linear layer's the last axis (also on ``(B, H, W, C)`` maps: Swin, ConvNeXt)."""
    flat = y.reshape(y.shape[0], y.shape[1], -1) if isinstance(mod, nn.Conv2d) else \
        y.reshape(y.shape[0], -1, y.shape[-1]).transpose(1, 2)
    idx = pos.to(y.device).unsqueeze(1).expand(-1, flat.shape[1], -1)
    return flat.gather(2, idx).permute(0, 2, 1).reshape(-1, flat.shape[1])


def _length(mod: nn.Module, y: Tensor) -> int:
    """Number of output positions per image."""
    return y[0, 0].numel() if isinstance(mod, nn.Conv2d) else y[0].numel() // y.shape[-1]


CACHE_BYTES = 1 << 30
"""Largest total size of the block outputs a :class:`PrefixCache` keeps (1 GiB)."""


class PrefixCache:
    """Block outputs of one episode's model on the calibration images, reused by the next
    capture where nothing upstream changed.

    Each unit's capture runs the calibration images from the input up to the unit's consumers,
    and between two captures only the previous unit's layers were cut and refitted, so every
    block before them computes what it computed last time. A *block* is an outermost child of an
    ``nn.Sequential`` (a residual or inverted-residual block, a stem); its output is returned
    from the cache instead of computed when its parameters and buffers are the same tensors at
    the same versions (a cut replaces them, a refit bumps the version) and its inputs equal, value
    for value, the ones it saw (kept for the comparison, which costs a read of them, not a
    convolution), with nothing of that call modified in place since. The result is the tensors
    the full forward computes, bit for bit, on a deterministic backend. Blocks holding a layer
    the capture reads always run, so its hooks fire; entries are kept up to :data:`CACHE_BYTES`
    in all.
    """

    def __init__(self, model: nn.Module, max_bytes: int = CACHE_BYTES) -> None:
        self.model = model
        self.max_bytes = max_bytes
        self.blocks = _outermost_blocks(model)
        self._entries: dict[tuple[str, int], _Entry] = {}
        self._bytes = 0

    @contextlib.contextmanager
    def active(self, names: Sequence[str], state: dict[str, int]):
        """Within the block, blocks not holding any of ``names`` serve and fill the cache for
        batch ``state["batch"]``."""
        patched = []
        for bname, block in self.blocks.items():
            if any(n == bname or n.startswith(bname + ".") for n in names):
                continue
            block.forward = self._serving(bname, block, state)  # type: ignore[method-assign]
            patched.append(block)
        try:
            yield
        finally:
            for block in patched:
                del block.forward

    def _serving(self, name: str, block: nn.Module, state: dict[str, int]):
        compute = type(block).forward.__get__(block)

        def forward(*args: Any, **kwargs: Any) -> Any:
            key = (name, state["batch"])
            weights = (*block.parameters(), *block.buffers())
            plain = not kwargs and all(isinstance(a, Tensor) for a in args)
            hit = self._entries.get(key)
            if plain and hit is not None and _same_call(hit, weights, args):
                return hit.output
            out = compute(*args, **kwargs)
            if plain and isinstance(out, Tensor):
                old = self._entries.pop(key, None)
                self._bytes -= 0 if old is None else old.bytes
                entry = _Entry(weights, tuple(t._version for t in weights), args,
                               tuple(a._version for a in args), out, out._version)
                if self._bytes + entry.bytes <= self.max_bytes:
                    self._entries[key] = entry
                    self._bytes += entry.bytes
            return out

        return forward


@dataclass
class _Entry:
    """One block's call in the last capture: its parameters and buffers with their versions
    (kept alive, so no later tensor can take their identity), its inputs (kept, with their
    versions, to compare values with the next call's) and its output."""

    weights: tuple[Tensor, ...]
    weight_versions: tuple[int, ...]
    inputs: tuple[Tensor, ...]
    input_versions: tuple[int, ...]
    output: Tensor
    output_version: int

    @property
    def bytes(self) -> int:
        """Memory the entry holds (output and inputs; an input shared with another entry's
        output counts twice: an upper bound)."""
        return sum(t.numel() * t.element_size() for t in (self.output, *self.inputs))


def _same_call(hit: _Entry, weights: tuple[Tensor, ...], args: tuple[Tensor, ...]) -> bool:
    """Whether a block called with ``args`` and weights ``weights`` computes ``hit.output``:
    the same weight tensors at the same versions, inputs of equal values (the same tensor, or
    an equal one: a stem outside any ``nn.Sequential`` recomputes them), nothing of the last
    call modified in place since."""
    return (len(weights) == len(hit.weights)
            and all(w is h and w._version == v
                    for w, h, v in zip(weights, hit.weights, hit.weight_versions, strict=True))
            and hit.output._version == hit.output_version
            and len(args) == len(hit.inputs)
            and all(b._version == v and (a is b or (a.shape == b.shape and a.dtype == b.dtype
                                                    and torch.equal(a, b)))
                    for a, b, v in zip(args, hit.inputs, hit.input_versions, strict=True)))


def _outermost_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The children of ``nn.Sequential`` containers in ``model`` that no other such child
    contains, by qualified name."""
    blocks: dict[str, nn.Module] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Sequential) and not any(
                name == b or name.startswith(b + ".") for b in blocks):
            for child, sub in mod.named_children():
                blocks[f"{name}.{child}" if name else child] = sub
    return blocks


def _capture(
    model: nn.Module, names: Sequence[str], batches: Sequence[tuple[Tensor, Tensor]], fn,
    cache: PrefixCache | None = None,
) -> None:
    """Run ``batches`` through ``model`` calling ``fn(batch_index, name, module, input, output)``
    on the first call of each named module; the forward stops once all have been seen.
    ``cache``: reuse the blocks upstream of the named modules that did not change since the
    last capture on this model (:class:`PrefixCache`)."""
    seen: set[str] = set()
    state = {"batch": 0}
    hooks = []

    def hook(name: str):
        def f(mod: nn.Module, inputs: tuple, output: Tensor) -> None:
            if name in seen:
                return
            seen.add(name)
            fn(state["batch"], name, mod, inputs[0], output)
            if len(seen) == len(names):
                raise _Stop

        return f

    for n in names:
        hooks.append(model.get_submodule(n).register_forward_hook(hook(n)))
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), cache.active(names, state) if cache else contextlib.nullcontext():
            for i, (x, _) in enumerate(batches):
                state["batch"] = i
                seen.clear()
                with contextlib.suppress(_Stop):
                    model(x)
    finally:
        model.train(was)
        for h in hooks:
            h.remove()


class Calibrator:
    """Samples consumer inputs/targets for units and refits consumers by least squares.

    ``batches`` are fixed training images (the first ``images`` are used), ``points`` the output
    positions sampled per image and consumer, ``owners`` maps a layer name to the unit whose
    output channels it carries (to know which original outputs a pruned consumer still has).
    ``reuse_prefix``: each episode's captures share a :class:`PrefixCache` (same rows, less
    computation).
    """

    def __init__(
        self,
        original: nn.Module,
        batches: Sequence[tuple[Tensor, Tensor]],
        images: int,
        points: int,
        owners: Mapping[str, str],
        seed: int = 0,
        reuse_prefix: bool = True,
    ) -> None:
        self.original = original
        self.batches = _first_images(batches, images)
        self.images = sum(len(x) for x, _ in self.batches)
        self.points = points
        self.owners = dict(owners)
        self.seed = seed
        self._targets: dict[str, tuple[list[Tensor], Tensor]] = {}
        self._episode_model: nn.Module | None = None
        self._samples: dict[str, list[ConsumerSample]] = {}
        self.reuse_prefix = reuse_prefix
        self._prefix: PrefixCache | None = None

    # ------------------------------------------------------------------------- sampling

    def _original_targets(self, names: Sequence[str]) -> None:
        missing = [n for n in names if n not in self._targets]
        if not missing:
            return
        pos: dict[str, list[Tensor]] = {n: [] for n in missing}
        ys: dict[str, list[Tensor]] = {n: [] for n in missing}

        def grab(_: int, name: str, mod: nn.Module, __: Tensor, y: Tensor) -> None:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(name.encode())
                                                + len(pos[name]))
            p = _positions(y.shape[0], _length(mod, y), self.points, gen)
            pos[name].append(p)
            ys[name].append(_outputs(mod, y, p).cpu())

        _capture(self.original, missing, self.batches, grab)
        for n in missing:
            if ys[n]:
                self._targets[n] = (pos[n], torch.cat(ys[n]))

    def sample(self, unit: Unit, model: nn.Module, group: tp.Group,
               graph: tp.DependencyGraph, kept: Mapping[str, Sequence[int]]
               ) -> list[ConsumerSample]:
        """Calibration rows of every usable consumer of ``unit`` on ``model`` (the episode's
        copy, ``unit`` not yet cut; ``group`` its full group there, ``kept`` what earlier units
        kept). Cached per episode: a new ``model`` object starts a new episode."""
        if model is not self._episode_model:
            self._episode_model, self._samples = model, {}
            self._prefix = PrefixCache(model) if self.reuse_prefix else None
        if unit.name in self._samples:
            return self._samples[unit.name]
        maps = _consumer_maps(unit, model, group, graph)
        names = [n for n in maps if _usable(model.get_submodule(n))]
        self._original_targets(names)
        names = [n for n in names if n in self._targets]
        rows: dict[str, list[Tensor]] = {n: [] for n in names}

        def grab(batch: int, name: str, mod: nn.Module, x: Tensor, _: Tensor) -> None:
            rows[name].append(_rows(mod, x, self._targets[name][0][batch]).cpu())

        _capture(model, names, self.batches, grab, self._prefix)
        out = []
        for n in names:
            mod = model.get_submodule(n)
            a = torch.cat(rows[n])
            k = mod.kernel_size[0] * mod.kernel_size[1] if isinstance(mod, nn.Conv2d) else \
                maps[n][2]
            y = self._targets[n][1]
            owner = self.owners.get(n)
            if owner is not None and owner in kept:
                y = y[:, torch.as_tensor(list(kept[owner]), dtype=torch.long)]
            out.append(ConsumerSample(n, a.reshape(a.shape[0], -1, k), y, maps[n][0], maps[n][1],
                                      unit.channels))
        self._samples[unit.name] = out
        return out

    # ------------------------------------------------------------------------- reconstruction

    def reconstruct(self, unit: Unit, model: nn.Module, kept: Sequence[int]) -> dict[str, float]:
        """Refit every sampled consumer of ``unit`` in ``model`` (already cut to ``kept``) by
        ridge-regularised least squares on its calibration rows; returns the relative output
        error per consumer after the refit. Never raises the error on the calibration rows: the
        update minimises error + ridge * ||update||^2, and zero update is a candidate."""
        errors = {}
        for s in self._samples.get(unit.name, []) if model is self._episode_model else []:
            keep_rows = _kept_rows(s, kept)
            a = s.A[:, keep_rows].flatten(1).double()
            mod = model.get_submodule(s.name)
            w = mod.weight.detach().cpu().double().reshape(mod.weight.shape[0], -1)
            if a.shape[1] != w.shape[1]:
                continue  # the consumer changed shape in a way the rows do not describe
            resid = s.Y.double() - s.bias(model).double() - a @ w.T
            delta = ridge_solve(a, resid)
            with torch.no_grad():
                mod.weight.add_((delta.T).reshape(mod.weight.shape).to(mod.weight))
            errors[s.name] = s.error(model, keep_rows) / s.energy()
        return errors


def ridge_solve(a: Tensor, r: Tensor, ridge: float = RIDGE) -> Tensor:
    """``D`` minimising ``||a D - r||^2 + lam ||D||^2`` (``a`` ``[N, F]``, ``r`` ``[N, O]``),
    ``lam = ridge x`` mean squared feature; solved in the smaller of the primal ``F x F`` and the
    dual ``N x N`` systems, so wide layers with few samples stay cheap and well posed."""
    n, f = a.shape
    lam = ridge * float(a.square().sum()) / max(f, 1) + 1e-12
    if f <= n:
        lhs = a.T @ a
        lhs.diagonal().add_(lam)
        return torch.linalg.solve(lhs, a.T @ r)
    lhs = a @ a.T
    lhs.diagonal().add_(lam)
    return a.T @ torch.linalg.solve(lhs, r)


def _kept_rows(s: ConsumerSample, kept: Sequence[int]) -> Tensor:
    """Mask over the consumer's input channels that survive cutting the unit to ``kept``."""
    mask = torch.ones(s.A.shape[1], dtype=torch.bool)
    keep = torch.zeros(s.channels, dtype=torch.bool)
    keep[torch.as_tensor(list(kept), dtype=torch.long)] = True
    mask[s.pos] = keep[s.root]
    return mask


def _first_images(
    batches: Sequence[tuple[Tensor, Tensor]], images: int
) -> list[tuple[Tensor, Tensor]]:
    out, seen = [], 0
    for x, y in batches:
        if seen >= images:
            break
        out.append((x[: images - seen], y[: images - seen]))
        seen += len(out[-1][1])
    return out


def _consumer_maps(
    unit: Unit, model: nn.Module, group: tp.Group, graph: tp.DependencyGraph
) -> dict[str, tuple[Tensor, Tensor, int]]:
    """Per consumer name: (input channel positions, unit channel of each, features per
    channel ``K``), from the unit's group items that cut the consumer's inputs."""
    by_module = {id(model.get_submodule(n)): n for n in unit.consumers}
    idxs: dict[str, list[tuple[int, int]]] = {}
    for item in group:
        name = by_module.get(id(item.dep.target.module))
        if name is None or is_out_pruning(graph, item.dep.handler):
            continue
        idxs.setdefault(name, []).extend(zip(item.idxs, item.root_idxs, strict=True))
    maps = {}
    for name, pairs in idxs.items():
        mod = model.get_submodule(name)
        k = len(pairs) // unit.channels if isinstance(mod, nn.Linear) else 1
        uniq = sorted({(i // max(k, 1), r) for i, r in pairs})
        pos = torch.tensor([p for p, _ in uniq], dtype=torch.long)
        root = torch.tensor([r for _, r in uniq], dtype=torch.long)
        maps[name] = (pos, root, max(k, 1))
    return maps
