"""Search-quality findings: a gap counts only beyond the seed spread and beyond the held-out
images' own binomial error (every row is scored on the same images)."""

from __future__ import annotations

from bench import report_search


def _search(acc: float) -> dict:
    return {"rescored_val_acc": acc, "rescore_images": 4000, "episodes_served_from_cache": 0}


def test_a_gap_below_the_splits_binomial_error_is_a_tie() -> None:
    by = {"tpe": [_search(0.9015), _search(0.9028)],   # seed spread 0.09 points
          "ddpg": [_search(0.880), _search(0.882)],
          "uniform": [{"rescored_val_acc": 0.9035, "rescore_images": 4000}]}
    lines = report_search._search_findings(by)
    assert "binomial standard error (0.49 points on 4000 images" in lines[0]
    tpe = next(ln for ln in lines if ln.startswith("- tpe"))
    # -0.135 points is beyond two seed SEs (0.130) but far below what 4000 images resolve.
    assert "within the noise of uniform (-0.13, 2 SE 0.13)" in tpe
    assert "ahead of ddpg (+2.12" in tpe  # two points is a lead
    ddpg = next(ln for ln in lines if ln.startswith("- ddpg"))
    assert ddpg.endswith("behind tpe (-2.12, 2 SE 0.24), uniform (-2.25, 2 SE 0.20).")
