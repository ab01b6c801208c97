"""Rerunning some criteria keeps the other rows only when the settings match."""

from __future__ import annotations

import json

import pytest

from bench import bench_criteria

SETTINGS = {"checkpoint": "r20.pt", "budget": 0.5, "round_to": 1, "val_size": 1000,
            "heldout_images": 4000, "calib_images": 256, "calib_points": 10,
            "count_sets": {"uniform": {"a": 0.5}}}


def _row(name: str, acc: float) -> dict:
    return {"criterion": name, "counts": "uniform", "val_acc": acc}


def test_update_replaces_the_rerun_rows_and_keeps_the_rest(tmp_path) -> None:
    path = tmp_path / "criteria_r20.json"
    path.write_text(json.dumps({**SETTINGS, "command": "first", "date": "d0", "machine": {"m": 1},
                                "rows": [_row("l1", 0.6), _row("group-l2", 0.8)]}))
    new = {**SETTINGS, "rows": [_row("consumer-l1", 0.7), _row("l1", 0.65)]}
    merged = bench_criteria._merged(path, new, ["consumer-l1", "l1"])
    assert [(r["criterion"], r["val_acc"]) for r in merged["rows"]] == [
        ("l1", 0.65), ("consumer-l1", 0.7), ("group-l2", 0.8)]  # registry order
    assert (merged["first_command"], merged["first_machine"]) == ("first", {"m": 1})
    assert merged["updates"][0]["criteria"] == ["consumer-l1", "l1"]


def test_update_refuses_other_settings(tmp_path) -> None:
    path = tmp_path / "criteria_r20.json"
    path.write_text(json.dumps({**SETTINGS, "command": "first", "date": "d0", "machine": {},
                                "rows": []}))
    with pytest.raises(SystemExit, match="settings differ .*budget"):
        bench_criteria._merged(path, {**SETTINGS, "budget": 0.3, "rows": []}, ["l1"])
