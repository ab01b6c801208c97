"""Give results from before the checkpoint digest the digest of a network shown to be theirs.

    python -m bench.adopt_digest --checkpoint runs/s5/resnet20_e3.pt \
        --witness compare_resnet20_flops0.5_group-l2-reconstruct --work runs/adopt_e3

Results written before ``checkpoint_sha256`` was recorded (bench.common.write_result) name their
network by path alone, so the report keeps them apart from every digested result at that path.
A checkpoint trained again by the same command on the same CPU generation is often the same
network (training is bit-identical there; "AMD EPYC" names several generations, and each gave
another network), but that is a claim to check. The witness is an undigested comparison result
at the path: its ``uniform`` strategy (no search, so deterministic) is run again by amc-compare
with the witness's own flags and one fine-tune seed (a checkpoint whose recorded test accuracy
already differs from the witness's ``base_test_acc`` is refused without it), and the checkpoint
is adopted only if the original's test accuracy, the uniform policy's keep ratios, its
validation and test accuracy before fine-tuning and fine-tune seed 0's test accuracy all equal
the witness's exactly. Then every undigested result at that path gets the
checkpoint's ``checkpoint_sha256`` and, as evidence, ``checkpoint_sha256_adopted`` (witness,
command, what matched, date, machine). Otherwise: one line naming the first difference, exit 2,
nothing written.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from amc_agent.cli import compare
from amc_agent.env import atomic
from amc_agent.env.checkpoint import load_checkpoint
from bench.common import RESULTS, checkpoint_sha256, machine


def rerun_argv(witness: dict[str, Any], work: Path) -> list[str]:
    """The witness's amc-compare flags with only ``uniform``, one fine-tune seed, out ``work``."""
    argv = shlex.split(witness["compare_command"])[1:]
    for flag, value in (("--strategies", "uniform"), ("--finetune-seeds", "1"),
                        ("--out", str(work))):
        argv[argv.index(flag) + 1] = value
    return [a for a in argv if a != "--resume"]


def evidence(results: dict[str, Any]) -> dict[str, Any]:
    """The deterministic figures a comparison run shares with its witness."""
    u = results["strategies"]["uniform"]
    return {"original test_acc": results["original"]["test_acc"],
            "uniform keep_ratios": u["keep_ratios"],
            "uniform val_acc_before_finetune": u["val_acc_before_finetune"],
            "uniform test_acc_before_finetune": u["test_acc_before_finetune"],
            "uniform fine-tune seed 0 test_acc": u["test_acc_seeds"][0]}


def undigested(checkpoint: str) -> list[Path]:
    """Every result at ``checkpoint`` that records no digest."""
    out = []
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        if r.get("checkpoint") == checkpoint and "checkpoint_sha256" not in r:
            out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    """Re-run the witness's uniform strategy; adopt the digest on an exact match, else exit 2."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--witness", required=True, help="a result name in bench/results")
    p.add_argument("--work", type=Path, required=True, help="amc-compare output folder")
    args = p.parse_args(argv)
    wpath = RESULTS / f"{args.witness}.json"
    if not wpath.is_file():
        print(f"error: no result {wpath}", file=sys.stderr)
        return 2
    witness = json.loads(wpath.read_text())
    if witness.get("checkpoint") != args.checkpoint or "checkpoint_sha256" in witness \
            or "uniform" not in witness.get("strategies", {}):
        print(f"error: {wpath} is not an undigested comparison with a uniform row at "
              f"{args.checkpoint}", file=sys.stderr)
        return 2
    base = load_checkpoint(args.checkpoint)["metrics"].get("test_acc")
    if "base_test_acc" in witness and base != witness["base_test_acc"]:
        print(f"error: {args.checkpoint} is another network than {args.witness}'s: its test "
              f"accuracy is {base}, the witness's {witness['base_test_acc']}; nothing adopted",
              file=sys.stderr)
        return 2
    cmd = rerun_argv(witness, args.work)
    if not (args.work / "results.json").is_file():
        assert compare.main(cmd) == 0
    got = evidence(json.loads((args.work / "results.json").read_text()))
    want = evidence(witness)
    for key, value in want.items():
        if got[key] != value:
            print(f"error: {args.checkpoint} is another network than {args.witness}'s: {key} "
                  f"{got[key]} here, {value} there; nothing adopted", file=sys.stderr)
            return 2
    sha = checkpoint_sha256(args.checkpoint)
    proof = {"witness": args.witness, "command": "amc-compare " + shlex.join(cmd),
             "matched": sorted(want), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
             "machine": machine()}
    paths = undigested(args.checkpoint)
    for path in paths:
        r = json.loads(path.read_text())
        atomic.write_json(path, {**r, "checkpoint_sha256": sha,
                                 "checkpoint_sha256_adopted": proof})
    print(f"{args.checkpoint} is {args.witness}'s network (weights {sha}): digest adopted by "
          f"{len(paths)} results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
