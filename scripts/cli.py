"""What every command shares: argument parsing with ``--config FILE.yaml``, seeding, device
checks, model sources, and turning user errors into one line on stderr with exit status 2."""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
import yaml

from amc_agent.env.datasets import AUGMENTS, DataSplits, load_checkpoint_data
from amc_agent.env.errors import UserError
from amc_agent.env.training import Diverged


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit status 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def make_parser(prog: str, description: str) -> Parser:
    """A parser with the common flags: ``--config``, ``--seed``, ``--device``, ``--threads``."""
    p = Parser(prog=prog, description=description)
    p.add_argument("--config", type=Path, help="YAML file of flag values; flags given override it")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice)")
    return p


def add_model_source(p: argparse.ArgumentParser, many: bool = False) -> None:
    """``--checkpoint FILE`` or ``--model NAME [--weights FILE]``, plus the dataset flags
    (``many``: ``--checkpoint`` may be repeated and is a list)."""
    if many:
        p.add_argument("--checkpoint", type=Path, action="append",
                       help="checkpoint written by amc-train; repeat it to train one agent over "
                            "several models (episodes cycle through them; the first is the one "
                            "the policy is declared for)")
    else:
        p.add_argument("--checkpoint", type=Path, help="checkpoint written by amc-train")
    p.add_argument("--model", help="model name (resnet20, mobilenetv2, resnet18, ...) or "
                                   "package.module:callable")
    p.add_argument("--weights", type=Path, help="torchvision-format state_dict for --model")
    add_dataset_args(p)


def add_dataset_args(p: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--data-root``, ``--val-size``, ``--split-seed``, ``--image-size``,
    ``--augment``."""
    p.add_argument("--dataset", default=None,
                   help="fashion-mnist, cifar10, cifar100, imagefolder:PATH, synthetic "
                        "(default: the --checkpoint's dataset, else fashion-mnist)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="dataset folder (default $AMC_DATA_ROOT or ./data)")
    p.add_argument("--val-size", type=int, default=None,
                   help="training images held out for validation (dataset default; a "
                        "--checkpoint's recorded split wins and a different value is refused)")
    p.add_argument("--split-seed", type=int, default=None,
                   help="seed of the held-out validation split (default 0); a --checkpoint "
                        "records its own, so this is only for --model or old checkpoints. "
                        "--seed never moves the split")
    p.add_argument("--image-size", type=int, default=None,
                   help="input side in pixels, images resized to it (default: the dataset's own "
                        "size; photo folders at most 224); a --checkpoint's size wins and a "
                        "different value is refused")
    p.add_argument("--augment", default=None, choices=AUGMENTS,
                   help="training augmentation: none, crop (pad + random crop), standard (crop "
                        "+ flip), imagenet (random resized crop + flip); default: per dataset "
                        "(a --checkpoint's own), no flip for small image folders")


def source_checkpoint(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``--checkpoint`` file read once (``None`` with ``--model``), for
    :func:`dataset_name` and :func:`resolve_model` to share."""
    from amc_agent.env.checkpoint import load_checkpoint

    if args.checkpoint is not None and args.model is not None:
        raise UserError("give either --checkpoint or --model, not both")
    return None if args.checkpoint is None else load_checkpoint(args.checkpoint)


def dataset_name(args: argparse.Namespace, ckpt: dict[str, Any] | None,
                 fallback: str = "fashion-mnist") -> str:
    """``--dataset`` if given, else the dataset checkpoint ``ckpt`` was trained on, else
    ``fallback``."""
    if args.dataset:
        return args.dataset
    return ckpt["dataset"] if ckpt is not None else fallback


def load_data(args: argparse.Namespace, ckpt: dict[str, Any] | None,
              fallback: str = "fashion-mnist") -> DataSplits:
    """The dataset the flags name, with the validation split the checkpoint ``ckpt`` was
    trained with (:func:`amc_agent.env.datasets.load_checkpoint_data`)."""
    return load_checkpoint_data(ckpt, dataset_name(args, ckpt, fallback), args.data_root,
                                args.val_size, args.split_seed, image_size=args.image_size,
                                augment=args.augment)


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; values from ``--config`` become defaults that explicit flags override."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path)
    known, _ = pre.parse_known_args(argv)
    if known.config is not None:
        parser.set_defaults(**read_config(known.config, parser))
    return parser.parse_args(argv)


def read_config(path: Path, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Flag values from a YAML mapping (keys spelled as flags, dashes or underscores)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} is not valid YAML ({type(exc).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must be a mapping of flag names to values")
    dests = {a.dest for a in parser._actions}
    out = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in dests or dest == "config":
            raise UserError(f"config file {path}: unknown key {key!r}")
        action = next(a for a in parser._actions if a.dest == dest)
        if isinstance(action, argparse._AppendAction) and isinstance(value, list):
            out[dest] = [action.type(v) if action.type else v for v in value]
        else:
            out[dest] = action.type(value) if action.type and value is not None else value
    return out


def mapping_arg(text: Any) -> dict[str, Any]:
    """argparse type: a YAML/JSON mapping given as text (``'{warmup_episodes: 20}'``)."""
    if isinstance(text, dict):
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"not a YAML/JSON mapping: {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"not a YAML/JSON mapping: {text!r}")
    return value


def check_output(path: Path, folder: bool, flag: str = "--out") -> None:
    """Refuse an output (``flag``, default ``--out``) that cannot be written, before any work is
    done (creates nothing).

    ``folder``: whether ``path`` is an output folder (else a file). A file where a folder must be
    (or the reverse), or a nearest existing ancestor that is not a writable folder, is a
    :class:`UserError`.
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file; give a folder name such as runs/search")
    if not folder and path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name such as model.pt")
    ancestor = path if folder and path.is_dir() else path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"cannot write {flag} {path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {flag} {path}: {ancestor} is not writable")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_device(device: str) -> str:
    """Validate ``--device``; a CUDA device on a machine without one is a user error."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {device!r}; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available; "
                        "use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {device!r}; use cpu or cuda")
    return device


def apply_runtime(args: argparse.Namespace) -> None:
    """Seed, thread count and device check from the common flags."""
    check_device(args.device)
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)


def run(prog: str, main: Callable[[], int | None]) -> NoReturn:
    """Run a command's ``main``; a :class:`UserError` becomes one stderr line and exit 2, a
    diverged training run one line and exit 1 (its broken weights are never saved)."""
    try:
        code = main()
    except UserError as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        sys.exit(2)
    except Diverged as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        sys.exit(130)
    sys.exit(code or 0)


def resolve_model(
    args: argparse.Namespace, in_channels: int, num_classes: int,
    ckpt: dict[str, Any] | None = None, *, input_shape: Sequence[int],
) -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any] | None]:
    """The model named by ``--checkpoint`` or ``--model [--weights]``.

    Returns (model, recipe, checkpoint-or-None). ``ckpt`` is ``--checkpoint`` already read
    (:func:`source_checkpoint`); otherwise it is read here. A checkpoint's dataset shape must
    match the dataset's; a ``--model`` is built for the dataset's input channels and classes.
    The model must run on one input of ``input_shape`` (the dataset's channels, height, width in
    pixels), so a mismatch is one line before anything is trained, searched or written.
    """
    from amc_agent.env.checkpoint import model_from_checkpoint
    from amc_agent.env.models import build_model, build_pretrained, check_input_shape

    if ckpt is None:
        ckpt = source_checkpoint(args)
    if ckpt is not None:
        kw = ckpt["recipe"].get("kwargs", {})
        if (kw.get("in_channels"), kw.get("num_classes")) != (in_channels, num_classes):
            raise UserError(
                f"checkpoint {args.checkpoint} is for {kw.get('in_channels')}-channel inputs and "
                f"{kw.get('num_classes')} classes, but the dataset has {in_channels} and "
                f"{num_classes}; pass --dataset {ckpt['dataset']}"
            )
        model, recipe = model_from_checkpoint(ckpt), ckpt["recipe"]
    elif args.model is None:
        raise UserError("no model given; pass --checkpoint FILE or --model NAME")
    else:
        recipe = {"name": args.model, "kwargs": {"in_channels": in_channels,
                                                 "num_classes": num_classes}}
        model = build_model(recipe) if args.weights is None else \
            build_pretrained(args.model, args.weights, in_channels, num_classes)
    check_input_shape(model, input_shape)
    return model, recipe, ckpt
