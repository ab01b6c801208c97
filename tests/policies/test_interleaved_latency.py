"""Round-robin latency: the models alternate within each round, and each keeps its per-round
medians so ratios can be taken round by round."""

from __future__ import annotations

from amc_agent.env.latency import Latency
from amc_agent.policies import finetune
from tests.amc_env.helpers import model


def test_rounds_alternate_and_keep_per_round_medians(monkeypatch) -> None:
    order: list[str] = []
    times = iter([5.0, 2.0, 7.0, 3.0, 6.0, 4.0])  # original, pruned, original, ...

    def fake(m, input_shape, batch_size=1, device="cpu", **_):
        order.append(m.tag)
        return Latency(next(times), 0.0, 5, batch_size, 1, device)

    monkeypatch.setattr(finetune, "measure_latency", fake)
    a, b = model("cnn"), model("cnn")
    a.tag, b.tag = "original", "pruned"
    out = finetune.interleaved_latency({"original": a, "pruned": b}, (3, 16, 16), "cpu",
                                       batch_sizes=(1,), rounds=3)
    assert order == ["original", "pruned"] * 3
    assert out["original"]["b1"]["round_ms"] == [5.0, 7.0, 6.0]
    assert out["pruned"]["b1"]["round_ms"] == [2.0, 3.0, 4.0]
    assert out["original"]["b1"]["median_ms"] == 6.0 and out["pruned"]["b1"]["median_ms"] == 3.0
