"""DeepInversion step: jaxviz vs a plain PyTorch loop with the reference repository's settings.

    python benchmarks/deepinversion.py                      # ResNet-50, batch 8, 224 px (CPU-sized)
    python benchmarks/deepinversion.py --batch 64 --dtype bfloat16   # the GPU target

Both sides run the same math on ResNet-50 with the same (random, torchvision-initialized) weights:
forward with the BN-statistic loss at every BatchNorm input (forward hooks on the PyTorch side),
cross-entropy with the targets, first BN layer weighted 10, the 4-direction TV and L2 priors on the
normalized input, random roll (30 px) and flip, Adam (betas 0.5, 0.9) with a cosine learning rate,
clipping to the valid range. Only full-resolution steps are timed (the reference's setting 0 runs
its last third there; the half-resolution steps cost about a quarter as much).

jaxviz's compile (a 1-step call) is timed apart from the steady state: the median of ``--repeats`` runs
of ``--steps`` steps; the PyTorch loop's first run is its warm-up.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from jaxviz import models  # noqa: E402
from jaxviz.datafree import deepinversion as di  # noqa: E402

from harness import Row, markdown, report, time_loop, time_step_runs  # noqa: E402
from peers import bn_statistic_terms, sync, torch_pair  # noqa: E402

SETTINGS = di.Settings(low_res_fraction=0.0)  # the reference's ImageNet weights; full resolution only


def torch_loop(net, targets, size, steps, settings=SETTINGS):
    """The reference's loop in plain PyTorch: hooks, priors, Adam, cosine lr, clip (float32)."""
    import torch

    dev = next(net.parameters()).device
    mean = torch.tensor(models.IMAGENET_MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(models.IMAGENET_STD, device=dev).view(1, 3, 1, 1)
    torch.manual_seed(0)
    x = ((torch.rand(len(targets), 3, size, size, device=dev) - mean) / std).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=settings.lr, betas=(0.5, 0.9), eps=1e-8)
    y = torch.tensor(targets, device=dev)
    lo, hi = (0 - mean) / std, (1 - mean) / std
    with bn_statistic_terms(net) as terms:
        for i in range(steps):
            _torch_step(net, x, y, opt, terms, i, steps, settings, lo, hi)
    return x


def _torch_step(net, x, y, opt, terms, i, steps, settings, lo, hi):
    """One step of the reference loop: cosine lr, roll and flip, hooks' BN terms, priors, Adam, clip."""
    import torch

    warm = min(settings.warmup, max(steps - 1, 1))
    lr = settings.lr * (i + 1) / warm if i < warm else 0.5 * settings.lr * (
        1 + math.cos(math.pi * (i - warm) / max(steps - warm, 1)))
    for g in opt.param_groups:
        g["lr"] = lr
    dx, dy = np.random.randint(-settings.jitter, settings.jitter + 1, 2)
    xj = torch.roll(x, shifts=(int(dx), int(dy)), dims=(2, 3))
    if np.random.rand() < 0.5:
        xj = torch.flip(xj, dims=(3,))
    terms.clear()
    logits = net(xj)
    bn = settings.first_bn_weight * terms[0] + sum(terms[1:])
    d = (x[:, :, :, 1:] - x[:, :, :, :-1], x[:, :, 1:] - x[:, :, :-1], x[:, :, 1:, :-1] - x[:, :, :-1, 1:],
         x[:, :, 1:, 1:] - x[:, :, :-1, :-1])
    tv = sum(torch.norm(t) for t in d)
    loss = (settings.main * torch.nn.functional.cross_entropy(logits, y) + settings.bn * bn
            + settings.tv_l2 * tv + settings.l2 * torch.norm(x))
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        x.data = torch.max(torch.min(x, hi), lo)


def rows(batch, size, steps, repeats, dtype, with_peer: bool = True):
    net, variables = torch_pair("resnet50") if with_peer else (None, models.load("resnet50", weights=None)[1])
    model = models.build("resnet50")
    targets = [(17 * i) % 1000 for i in range(batch)]
    variables = jax.tree.map(lambda a: a.astype(dtype), variables)

    def ours(n):
        r = di.deepinversion(jax.random.key(0), model, variables, targets, size=size, steps=n, settings=SETTINGS,
                             chunk=n, progress=False)
        jax.block_until_ready(r.images)

    task = f"DeepInversion step, {size} px, {steps} steps/run"
    jt = time_loop(ours, steps, repeats)
    if dtype != jnp.float32 or not with_peer:
        return [Row("deepinversion", task, model.name, batch, jnp.dtype(dtype).name, jt, None, "-", per_run=steps,
                    note=f"{jt.median_s / steps * 1e3:.1f} ms/step")]
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    pt = time_step_runs(lambda n: sync(torch_loop(net, targets, size, n)), steps, repeats)
    return [Row("deepinversion", task, model.name, batch, "float32", jt, pt, "plain PyTorch loop (reference settings)",
                per_run=steps)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), nargs="+", default=["float32"])
    args = p.parse_args(argv)
    out = []
    for dtype in args.dtype:
        out += rows(args.batch, args.size, args.steps, args.repeats, jnp.dtype(dtype))
        print(markdown(out[-1:], unit="steps/s"), flush=True)
    report(out, "deepinversion", unit="steps/s")


if __name__ == "__main__":
    main()
