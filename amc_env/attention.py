"""Windowed attention whose inner width can be cut: torchvision's Swin and Swin V2 blocks.

torchvision's ``ShiftedWindowAttention`` (Liu et al., "Swin Transformer", ICCV 2021; V2: Liu et
al., CVPR 2022) hands its ``qkv``/``proj`` weights to a function that takes the head width from the
*input's* channel count, so neither Torch-Pruning nor a plain channel cut can narrow the attention:
its q/k/v width (heads x head width) is most of a Swin block's cost besides the MLP.

:func:`prepare` switches such blocks (exact classes only: a user's subclass keeps its own forward)
to a subclass whose forward calls ``qkv`` and ``proj`` as modules and reads the attention width
from ``qkv``'s weight. On the unpruned block it computes bit-identically what torchvision's forward
does. Cutting the width keeps the same positions in every head for q, k and v alike (Torch-Pruning's
head-balanced attention pruning), and keeps the original softmax temperature (V1's ``head_dim **
-0.5``), so a cut block computes exactly the original with those q/k/v dimensions removed.
:func:`attention_group` gives the cut as a Torch-Pruning group (``qkv`` rows, ``proj`` columns),
so every criterion scores it like any other unit.
"""

from __future__ import annotations

import math

import torch
import torch_pruning as tp
from torch import Tensor, nn
from torch.nn import functional as F
from torch_pruning import _helpers
from torchvision.models.swin_transformer import ShiftedWindowAttention, ShiftedWindowAttentionV2


def _window_attention(block: ShiftedWindowAttention, input: Tensor) -> Tensor:
    """torchvision's ``shifted_window_attention`` with the q/k/v width read from ``block.qkv``
    (``C`` below is the block's input/output width, ``width`` the attention's)."""
    window_size, num_heads = block.window_size, block.num_heads
    logit_scale = getattr(block, "logit_scale", None)  # V2's cosine attention
    B, H, W, C = input.shape
    pad_r = (window_size[1] - W % window_size[1]) % window_size[1]
    pad_b = (window_size[0] - H % window_size[0]) % window_size[0]
    x = F.pad(input, (0, 0, 0, pad_r, 0, pad_b))
    _, pad_H, pad_W, _ = x.shape
    shift_size = list(block.shift_size)
    if window_size[0] >= pad_H:
        shift_size[0] = 0
    if window_size[1] >= pad_W:
        shift_size[1] = 0
    if sum(shift_size) > 0:
        x = torch.roll(x, shifts=(-shift_size[0], -shift_size[1]), dims=(1, 2))
    num_windows = (pad_H // window_size[0]) * (pad_W // window_size[1])
    x = x.view(B, pad_H // window_size[0], window_size[0], pad_W // window_size[1],
               window_size[1], C)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(B * num_windows, window_size[0] * window_size[1], C)

    width = block.qkv.out_features // 3
    qkv = block.qkv(x).reshape(x.size(0), x.size(1), 3, num_heads, width // num_heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    if logit_scale is not None:
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(logit_scale, max=math.log(100.0)).exp()
    else:
        q = q * block.head_dim_scale
        attn = q.matmul(k.transpose(-2, -1))
    attn = attn + block.get_relative_position_bias()

    if sum(shift_size) > 0:
        attn_mask = x.new_zeros((pad_H, pad_W))
        h_slices = ((0, -window_size[0]), (-window_size[0], -shift_size[0]),
                    (-shift_size[0], None))
        w_slices = ((0, -window_size[1]), (-window_size[1], -shift_size[1]),
                    (-shift_size[1], None))
        count = 0
        for h in h_slices:
            for w in w_slices:
                attn_mask[h[0]:h[1], w[0]:w[1]] = count
                count += 1
        attn_mask = attn_mask.view(pad_H // window_size[0], window_size[0],
                                   pad_W // window_size[1], window_size[1])
        attn_mask = attn_mask.permute(0, 2, 1, 3).reshape(num_windows,
                                                          window_size[0] * window_size[1])
        attn_mask = attn_mask.unsqueeze(1) - attn_mask.unsqueeze(2)
        attn_mask = attn_mask.masked_fill(attn_mask != 0, -100.0).masked_fill(attn_mask == 0, 0.0)
        attn = attn.view(x.size(0) // num_windows, num_windows, num_heads, x.size(1), x.size(1))
        attn = attn + attn_mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, num_heads, x.size(1), x.size(1))

    attn = F.softmax(attn, dim=-1)
    attn = F.dropout(attn, p=block.attention_dropout, training=block.training)
    x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), x.size(1), width)
    x = F.dropout(block.proj(x), p=block.dropout, training=block.training)

    x = x.view(B, pad_H // window_size[0], pad_W // window_size[1], window_size[0],
               window_size[1], C)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(B, pad_H, pad_W, C)
    if sum(shift_size) > 0:
        x = torch.roll(x, shifts=(shift_size[0], shift_size[1]), dims=(1, 2))
    return x[:, :H, :W, :].contiguous()


class KeyBiasFreeLinear(nn.Linear):
    """Swin V2's ``qkv`` layer: its bias's key third is read as zero, as torchvision's V2
    attention does on a copy of the bias (so no gradient reaches it either)."""

    def forward(self, x: Tensor) -> Tensor:
        """``F.linear`` with the key part of the bias zeroed."""
        bias = self.bias
        if bias is not None:
            n = self.out_features // 3
            bias = bias.clone()
            bias[n:2 * n].zero_()
        return F.linear(x, self.weight, bias)


class PrunableShiftedWindowAttention(ShiftedWindowAttention):
    """Swin's window attention with a cuttable q/k/v width (see the module docstring)."""

    head_dim_scale: float
    """``(original head width) ** -0.5``: the softmax temperature the block was trained with."""

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, H, W, C)``; same layout out."""
        return _window_attention(self, x)


class PrunableShiftedWindowAttentionV2(ShiftedWindowAttentionV2):
    """Swin V2's cosine window attention with a cuttable q/k/v width (see the module docstring)."""

    head_dim_scale: float

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, H, W, C)``; same layout out."""
        return _window_attention(self, x)


_PRUNABLE: dict[type, type] = {
    ShiftedWindowAttention: PrunableShiftedWindowAttention,
    ShiftedWindowAttentionV2: PrunableShiftedWindowAttentionV2,
}
PRUNABLE_ATTENTION = tuple(_PRUNABLE.values())


def prepare(model: nn.Module) -> nn.Module:
    """Switch every torchvision window-attention block of ``model`` to its prunable subclass (in
    place, idempotent; outputs unchanged) and return ``model``."""
    for mod in model.modules():
        cls = _PRUNABLE.get(type(mod))
        if cls is not None:
            mod.head_dim_scale = (mod.qkv.out_features // 3 // mod.num_heads) ** -0.5
            if cls is PrunableShiftedWindowAttentionV2 and type(mod.qkv) is nn.Linear:
                mod.qkv.__class__ = KeyBiasFreeLinear
            mod.__class__ = cls
    return model


def blocks(model: nn.Module) -> dict[nn.Module, nn.Module]:
    """Each prepared attention block's ``qkv`` layer, mapped to its block."""
    return {m.qkv: m for m in model.modules() if isinstance(m, PRUNABLE_ATTENTION)}


def width(block: nn.Module) -> int:
    """The block's current attention width (heads x head width), in channels."""
    return block.qkv.out_features // 3


def attention_group(graph: tp.DependencyGraph, block: nn.Module, idxs: list[int]) -> tp.Group:
    """The Torch-Pruning group that removes attention channels ``idxs`` (in ``[0, width)``) from
    ``block``: rows ``i``, ``width + i`` and ``2 width + i`` of ``qkv`` (q, k and v of that head
    position) and column ``i`` of ``proj``; every item's root index is ``i``."""
    n = width(block)
    qkv, proj = graph.module2node[block.qkv], graph.module2node[block.proj]
    group = tp.Group()
    group._DG = graph
    rows = [(part * n + i, i) for part in range(3) for i in idxs]
    out_fn, in_fn = tp.prune_linear_out_channels, tp.prune_linear_in_channels
    # Plain indices with a root index each, as Torch-Pruning's get_pruning_group leaves them;
    # proj's columns first: Torch-Pruning's importances size their result by the first item.
    for dep, pairs in ((tp.Dependency(out_fn, in_fn, qkv, proj), [(i, i) for i in idxs]),
                       (tp.Dependency(out_fn, out_fn, qkv, qkv), rows)):
        item = _helpers.GroupItem(dep, [int(a) for a, _ in pairs])
        item.root_idxs = [int(b) for _, b in pairs]
        group._group.append(item)
    return group
