"""Gatys style transfer: jaxviz's loop vs a plain PyTorch loop doing the same math.

    python benchmarks/style.py                          # VGG19, 256 and 512 px, float32 (CPU-sized)
    python benchmarks/style.py --dtype float32 bfloat16  # on a GPU

Both sides optimize the pixels of one image with Adam (lr 0.03, clamped to [0, 1]) on the same loss over
the same VGG19 weights (random, torchvision-initialized, converted): Gatys' style layers relu1_1 ... relu5_1
(Gram matrices divided by C*H*W, mean squared difference, weight 1e6), content at relu4_2 (mean squared
difference), total variation (mean squared neighbour difference, weight 10); ImageNet normalization inside
the network. The PyTorch side takes the activations it needs with one pass through ``features`` up to
relu5_1, as the PyTorch tutorial does.

Steps per second: the median of ``--repeats`` runs of ``--steps`` steps; jaxviz's first call (compile) and
PyTorch's first (warm-up) call are timed apart.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).parent))
from jaxviz import models  # noqa: E402
from jaxviz.io import image
from jaxviz.style import gram
from jaxviz.style import transfer as style

from harness import Row, markdown, report, time_loop, time_step_runs  # noqa: E402
from peers import device, sync, torch_pair  # noqa: E402

LAYERS = gram.default_layers(models.build("vgg19"))
STYLE_WEIGHT, TV_WEIGHT, LR = 1e6, 10.0, 0.03


def _index(name: str) -> int:
    return int(name.split(".")[1])


def torch_loop(net, content, painting, steps: int):
    """The same Gatys loop in plain PyTorch (float32)."""
    import torch

    mean = torch.tensor(models.IMAGENET_MEAN, device=content.device).view(1, 3, 1, 1)
    std = torch.tensor(models.IMAGENET_STD, device=content.device).view(1, 3, 1, 1)
    wanted = {_index(n): n for n in (*LAYERS.style, LAYERS.content)}
    last = max(wanted)

    def features(x):
        out, h = {}, (x - mean) / std
        for i, layer in enumerate(net.features[:last + 1]):
            h = layer(h)
            if i in wanted:
                out[wanted[i]] = h
        return out

    def gram_matrix(f):
        b, c, h, w = f.shape
        f = f.reshape(b * c, h * w)
        return f @ f.t() / (b * c * h * w)

    with torch.no_grad():
        targets = {n: gram_matrix(f) for n, f in features(painting).items() if n in LAYERS.style}
        content_target = features(content)[LAYERS.content]
    x = content.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=LR)
    mse = torch.nn.functional.mse_loss
    for _ in range(steps):
        f = features(x)
        style_loss = sum(mse(gram_matrix(f[n]), targets[n]) for n in LAYERS.style)
        tv = mse(x[:, :, 1:], x[:, :, :-1]) + mse(x[:, :, :, 1:], x[:, :, :, :-1])
        loss = STYLE_WEIGHT * style_loss + mse(f[LAYERS.content], content_target) + TV_WEIGHT * tv
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x


def rows(size: int, steps: int, repeats: int, dtype, with_peer: bool = True) -> list[Row]:
    net, variables = torch_pair("vgg19") if with_peer else (None, models.load("vgg19", weights=None)[1])
    model = models.build("vgg19")
    variables = jax.tree.map(lambda a: a.astype(dtype), variables)
    content = jnp.asarray(image.sample("chelsea", size))[None]
    painting = jnp.asarray(image.sample("immunohistochemistry", size))[None]
    targets = gram.style_targets(model, variables, painting.astype(dtype), LAYERS.style)
    target_content = model.apply(variables, content.astype(dtype), capture=(LAYERS.content,))[1][LAYERS.content]
    data = {"variables": variables, "style": targets, "content": target_content,
            "weights": {"style": jnp.float32(STYLE_WEIGHT), "content": jnp.float32(1.0), "tv": jnp.float32(TV_WEIGHT)},
            "layer_weights": {n: 1.0 for n in LAYERS.style}}
    loss_fn = functools.partial(style._transfer_loss, model=model, style_layers=LAYERS.style,
                                content_layer=LAYERS.content)
    x0 = content.astype(dtype)
    adam = optax.adam(LR)  # one optimizer object: the step is static, a new one would compile anew

    def ours(n):
        out = style.minimize(loss_fn, x0, data, optimizer=adam, steps=n, project=True, progress=False)
        jax.block_until_ready(out)

    task = f"Gatys transfer step, {size} px, {steps} steps/run"
    jt = time_loop(ours, steps, repeats)
    if dtype != jnp.float32 or not with_peer:
        return [Row("style", task, model.name, 1, jnp.dtype(dtype).name, jt, None, "-", per_run=steps,
                    note=f"{jt.median_s / steps * 1e3:.1f} ms/step")]
    import torch

    tc = torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(content), (0, 3, 1, 2)))).to(device())
    tp = torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(painting), (0, 3, 1, 2)))).to(device())
    for p in net.parameters():
        p.requires_grad_(False)
    pt = time_step_runs(lambda n: sync(torch_loop(net, tc, tp, n)), steps, repeats)
    return [Row("style", task, model.name, 1, "float32", jt, pt, "plain PyTorch loop (same layers, Adam)",
                per_run=steps)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), nargs="+", default=["float32"])
    args = p.parse_args(argv)
    out = []
    for dtype in args.dtype:
        for size in args.sizes:
            out += rows(size, args.steps, args.repeats, jnp.dtype(dtype))
            print(markdown(out[-1:], unit="steps/s"), flush=True)
    report(out, "style", unit="steps/s")


if __name__ == "__main__":
    main()
