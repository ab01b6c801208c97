"""Numbers for the big case: what one search episode costs on ResNet-50 at ImageNet size on this
device, measured per image, and the search's wall time on 1, 8 and 64 workers projected from it.

Measured here (torchvision ResNet-50, 1000 classes, 224x224 inputs, random weights: cost does
not depend on them): the scoring pass per image as episodes run it (BN folded, channels-last),
the BN-recalibration pass per image (train-mode forward, no gradient), one fine-tune step per
image (forward, backward, SGD), and one episode's surgery and channel selection (a random
policy at 50% MACs, the default criterion) from the environment's own timings.

Projected (assumptions stated in the result and in BENCHMARKS.md): an AMC-sized search of
``--episodes`` episodes (AMC: 400-800), each scoring ``--reward-images`` held-out images (AMC's
ImageNet setting: 3000) after recalibrating BN on ``--recalib-images``; the pruned model costs
what the full one does (an upper bound: a 50% MACs model scores faster); workers scale linearly
(synchronous batches wait for their slowest episode; the 2-worker efficiency measured on this
machine is in the parallel-workers section).

    python -m bench.bench_scale --device cpu --batch 16
    python -m bench.bench_scale --device cuda --batch 256   # on a GPU machine
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn
from torchvision.models import resnet50

from amc_agent.env.datasets import synthetic
from amc_agent.env.env import ChannelPruningEnv, EnvConfig
from amc_agent.env.evaluation import channels_last, fold_plan, inference_copy, recalibrate_bn
from bench.common import write_result

WORKERS = (1, 8, 64)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def per_image(fn, batch: int, device: str, repeats: int) -> float:
    """Median seconds per image of ``fn()`` over ``repeats`` timed calls after one warm-up."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--episodes", type=int, default=400)
    p.add_argument("--reward-images", type=int, default=3000)
    p.add_argument("--recalib-images", type=int, default=512)
    args = p.parse_args()
    dev, b = args.device, args.batch
    torch.manual_seed(0)
    model = resnet50(num_classes=1000).to(dev).eval()
    x = torch.randn(b, 3, 224, 224, device=dev)
    y = torch.randint(0, 1000, (b,), device=dev)
    fast = inference_copy(model, fold_plan(model))
    xl = channels_last(x)
    with torch.no_grad():
        t_eval = per_image(lambda: fast(xl), b, dev, args.repeats)
    t_recal = per_image(lambda: recalibrate_bn(model, [(x, y)]), b, dev, args.repeats)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        model.train()
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    t_train = per_image(step, b, dev, args.repeats)
    # One real episode for surgery and channel selection (scoring on a few images only: its
    # per-image cost is measured above).
    data = synthetic(image_size=224, num_classes=1000, train_size=64, test_size=16, val_size=32)
    env = ChannelPruningEnv(resnet50(num_classes=1000), data,
                            EnvConfig(val_size=16, eval_batch=16, recalib_batches=1,
                                      recalib_batch_size=16, device=dev, round_to=8))
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    done, info = False, {}
    while not done:
        _, _, done, _, info = env.step([rng.uniform(0.3, 1.0)])
    prune_s = info["timings"]["surgery"] + info["timings"]["criterion"]
    episode_s = prune_s + args.recalib_images * t_recal + args.reward_images * t_eval
    projection = [{"workers": w, "search_hours": args.episodes * episode_s / w / 3600}
                  for w in WORKERS]
    device_name = torch.cuda.get_device_name(0) if dev.startswith("cuda") else \
        f"CPU ({torch.get_num_threads()} threads)"
    path = write_result(f"scale_resnet50_{dev.split(':')[0]}", {
        "device": dev, "device_name": device_name, "batch": b, "units": env.n_units,
        "eval_ms_per_image": 1000 * t_eval, "recal_ms_per_image": 1000 * t_recal,
        "train_ms_per_image": 1000 * t_train, "prune_s": prune_s,
        "episodes": args.episodes, "reward_images": args.reward_images,
        "recalib_images": args.recalib_images, "episode_s": episode_s,
        "projection": projection})
    print(f"wrote {path}: episode {episode_s:.1f} s; " +
          ", ".join(f"{r['workers']} workers {r['search_hours']:.1f} h" for r in projection))


if __name__ == "__main__":
    main()
