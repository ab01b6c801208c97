"""``python -m amc_agent.cli.prepare_data``: put Fashion-MNIST where torchvision reads it (for
make)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from amc_agent.cli import cli
from amc_agent.env.datasets import default_data_root, prepare_fashion_mnist

PROG = "prepare-data"


def main(argv: Sequence[str] | None = None) -> int:
    """Unpack Debian's files (or download) into ``--data-root/FashionMNIST/raw``."""
    p = cli.Parser(prog=PROG, description=__doc__)
    p.add_argument("--data-root", default=None, help="default $AMC_DATA_ROOT or ./data")
    p.add_argument("--no-download", action="store_true", help="never use the network")
    args = p.parse_args(argv)
    root = default_data_root() if args.data_root is None else Path(args.data_root)
    prepare_fashion_mnist(root, download=not args.no_download)
    print(f"Fashion-MNIST ready in {root / 'FashionMNIST' / 'raw'}")
    return 0


if __name__ == "__main__":
    cli.run(PROG, main)
