"""Synthesis loops: jaxviz vs PyTorch peers, optimizer steps per second.

    python benchmarks/synthesis.py                    # DeepDream and Lucid render, batch 1 and 16, 224 px
    python benchmarks/synthesis.py --batch 1 --render-steps 512

* DeepDream step at ``blocks.8`` of EfficientNet-Lite0: random roll, forward,
  mean squared activation, input gradient, step divided by the mean absolute
  gradient, clip. The peer is a plain PyTorch loop doing the same math on the
  efficientnet-lite-pytorch reference with the same weights, its forward
  stopped after block 8 (jaxviz's forward is pruned there by XLA).
* Lucid-style render: channel objective (``blocks.8``, channel 3), Fourier
  parameterization with decorrelated colour, Lucid's standard transforms, Adam
  0.05. The peer is torch-lucent's ``render_vis`` (its own parameterization and
  transforms, the same math), which runs the whole network through hooks.

Compile time (jaxviz: a 1-step call, which compiles the loop for any step
count) is reported apart from the steady state: the median of ``--repeats`` runs
of N steps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from jaxviz import models  # noqa: E402
from jaxviz.core import objectives as obj  # noqa: E402
from jaxviz.io import image
from jaxviz.synthesis import dream, render

from harness import Row, markdown, report, time_loop, time_step_runs  # noqa: E402
from peers import device, sync, torch_pair  # noqa: E402

LAYER, CHANNEL, BLOCK = "blocks.8", 3, 8


def _photos(batch, size=224):
    names = ("chelsea", "coffee", "astronaut", "rocket")
    return np.stack([image.sample(names[i % 4], size) for i in range(batch)]).astype(np.float32)


def dream_rows(model, variables, net, batch, steps, repeats):
    x = _photos(batch)

    def ours(n):
        out = dream.dream(jax.random.key(0), model, variables, jnp.asarray(x), LAYER, steps=n, octaves=1,
                          jitter=16, progress=False).images
        jax.block_until_ready(out)

    jt = time_loop(ours, steps, repeats)
    task = f"DeepDream step ({LAYER}, 224 px)"
    if net is None:
        return Row("synthesis", task, model.name, batch, "float32", jt, None, "-", per_run=steps)
    import torch

    mean = torch.tensor(models.IMAGENET_MEAN, device=device()).view(1, 3, 1, 1)
    std = torch.tensor(models.IMAGENET_STD, device=device()).view(1, 3, 1, 1)

    def features(img):
        h = net._swish(net._bn0(net._conv_stem((img - mean) / std)))
        for block in net._blocks[:BLOCK + 1]:
            h = block(h)
        return h

    def theirs(n):
        g = torch.Generator().manual_seed(0)
        img = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(device())
        for _ in range(n):
            dy, dx = (int(v) for v in torch.randint(-16, 17, (2,), generator=g))
            img.requires_grad_(True)
            loss = features(torch.roll(img, (dy, dx), (2, 3))).pow(2).mean(dim=(1, 2, 3)).sum()
            (grad,) = torch.autograd.grad(loss, img)
            with torch.no_grad():
                grad = grad / (grad.abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-12)
                img = (img + 0.01 * grad).clamp(0, 1)
        sync(img)

    pt = time_step_runs(theirs, steps, repeats)
    return Row("synthesis", task, model.name, batch, "float32", jt, pt, "PyTorch loop", per_run=steps)


def render_rows(model, variables, net, batch, steps, repeats):
    objective = obj.channel(LAYER, CHANNEL)

    def ours(n):
        out = render.render(jax.random.key(0), model, variables, objective, num_images=batch, steps=n,
                            progress=False)
        jax.block_until_ready(out.images)

    jt = time_loop(ours, steps, repeats)
    task = f"Lucid render, {steps} steps (channel {LAYER}:{CHANNEL})"
    if net is None:
        return Row("synthesis", task, model.name, batch, "float32", jt, None, "-", per_run=steps)
    import torch

    try:
        from lucent.optvis import param
        from lucent.optvis import render as lucent_render
    except ImportError as e:  # torch-lucent pulls IPython and kornia: absent on a bare GPU machine
        return Row("synthesis", task, model.name, batch, "float32", jt, None, f"- (torch-lucent missing: {e})",
                   per_run=steps)

    def theirs(n):
        torch.manual_seed(0)
        lucent_render.render_vis(net, f"_blocks_{BLOCK}:{CHANNEL}",
                                 param_f=lambda: param.image(224, batch=batch, fft=True, decorrelate=True),
                                 thresholds=(n,), show_image=False, progress=False)
        sync(None)

    pt = time_step_runs(theirs, steps, repeats)
    return Row("synthesis", task, model.name, batch, "float32", jt, pt, "torch-lucent render_vis", per_run=steps)


def rows(dream: tuple[int, int] | None, render_: tuple[int, int] | None, repeats: int,
         with_peer: bool = True) -> list[Row]:
    """DeepDream and render rows at ``(batch, steps)`` each (None: left out)."""
    if with_peer:
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads()))
        net, variables = torch_pair("efficientnet_lite0")
    else:
        net, variables = None, models.load("efficientnet_lite0", weights=None)[1]
    model = models.build("efficientnet_lite0")
    out = []
    if dream:
        out.append(dream_rows(model, variables, net, *dream, repeats))
        print(markdown(out[-1:], unit="steps/s"), flush=True)
    if render_:
        out.append(render_rows(model, variables, net, *render_, repeats))
        print(markdown(out[-1:], unit="steps/s"), flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    p.add_argument("--dream-steps", type=int, default=20)
    p.add_argument("--render-steps", type=int, default=None, help="default: 512 at batch 1, 32 above")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", choices=("dream", "render"), default=None)
    args = p.parse_args(argv)
    rows_ = []
    for batch in args.batch:
        steps = args.render_steps or (512 if batch == 1 else 32)
        rows_ += rows((batch, args.dream_steps) if args.only in (None, "dream") else None,
                      (batch, steps) if args.only in (None, "render") else None, args.repeats)
    report(rows_, "synthesis", unit="steps/s")


if __name__ == "__main__":
    main()
