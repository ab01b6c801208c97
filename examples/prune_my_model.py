"""Prune your own ``nn.Module`` through amc_agent's Python API, end to end: train it briefly, let
AMC's DDPG agent search per-layer keep ratios for half the MACs, prune, fine-tune, and export an
ONNX file checked in onnxruntime.

    python examples/prune_my_model.py                        # synthetic data, about a minute
    python examples/prune_my_model.py --dataset fashion-mnist --episodes 100 --epochs 2

Writes into ``--out``: the search's folder (``policy.json``, ``episodes.jsonl``, ...),
``pruned.onnx`` and ``summary.json`` (accuracies in [0, 1], MACs per sample).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

import amc_agent as amc


class MyNet(nn.Module):
    """Your model: a stem, a residual block and a classifier (any conv/linear network works)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 32, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(32), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(32, 48, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(48), nn.ReLU(),
                                   nn.Conv2d(48, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32))
        self.down = nn.Sequential(nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(64), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        return self.head(self.down(x))


@torch.no_grad()
def accuracy(model: nn.Module, data: amc.DataSplits) -> float:
    """Test accuracy in [0, 1]."""
    model.eval()
    loader = torch.utils.data.DataLoader(data.test, batch_size=256)
    hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    return hits / len(data.test)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the example; returns (and writes) the summary."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="synthetic", help="synthetic, fashion-mnist, cifar10, ...")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--budget", type=float, default=0.5, help="fraction of the MACs kept")
    p.add_argument("--out", type=Path, default=Path("runs/example"))
    args = p.parse_args(argv)

    torch.manual_seed(0)
    data = (amc.synthetic(image_size=16, num_classes=4, val_size=256) if args.dataset == "synthetic"
            else amc.load_dataset(args.dataset))
    model = MyNet(data.spec.in_channels, data.spec.num_classes)
    amc.finetune(model, data, amc.TrainConfig(epochs=args.epochs, batch_size=32, lr=0.05), "cpu",
                 progress=False)
    before = accuracy(model, data)

    # The environment walks MyNet's prunable units; the search's agent picks their keep ratios.
    env = amc.ChannelPruningEnv(model, data, amc.EnvConfig(budget=args.budget, val_size=256,
                                                           recalib_batches=2))
    search = amc.Search(env, amc.SearchConfig(agent="amc-ddpg", episodes=args.episodes,
                                              wandb_mode="disabled", progress=False),
                        args.out / "search",
                        policy_context={"recipe": {"name": "prune_my_model:MyNet",
                                                   "kwargs": {}}})
    policy = search.run().policy

    info = env.play(policy.keep_ratios)
    pruned = env.pruned_model()
    pruned_acc = accuracy(pruned, data)
    amc.finetune(pruned, data, amc.TrainConfig(epochs=1, batch_size=32, lr=0.01), "cpu",
                 progress=False)

    onnx = amc.onnx_bytes(pruned, data.spec.input_shape)
    amc.check_onnx(onnx, pruned, data.spec.input_shape)
    (args.out / "pruned.onnx").write_bytes(onnx)
    summary = {"test_acc": before, "test_acc_pruned_before_finetune": pruned_acc,
               "test_acc_pruned": accuracy(pruned, data), "macs": info["original_macs"],
               "macs_pruned": info["macs"], "macs_kept": info["macs"] / info["original_macs"],
               "keep_ratios": policy.keep_ratios}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "keep_ratios"}))
    return summary


if __name__ == "__main__":
    main()
