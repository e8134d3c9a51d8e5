"""Forward and forward + input-gradient throughput: jaxviz ports vs PyTorch.

    python benchmarks/models.py                      # all rows, fp32
    python benchmarks/models.py --batch 8 --model resnet50 --dtype bfloat16

The peer is the PyTorch reference implementation with the same weights
(torchvision's resnet50, efficientnet-lite-pytorch's Lite0), in eval mode; its
input gradient uses ``torch.autograd.grad`` w.r.t. the input only, as Captum does. jaxviz and the peer run
in turns (``harness.time_jax_and_peer``), median of ``--repeats`` rounds.
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
from jaxviz.models import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

from harness import Row, device_name, markdown, save, time_jax_and_peer  # noqa: E402
from peers import device, sync, torch_pair  # noqa: E402

TARGET = 281


def bench(name: str, batch: int, dtype: str, repeats: int, with_peer: bool) -> list[Row]:
    import torch

    model = models.build(name)
    if with_peer:
        net, variables = torch_pair(name)
    else:
        net, variables = None, models.load(name, weights=None, key=jax.random.key(0))[1]
    jdtype = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
    variables = jax.tree_util.tree_map(lambda a: a.astype(jdtype), variables)
    x = jax.random.uniform(jax.random.key(1), (batch, model.input_size, model.input_size, 3), jdtype)

    forward = jax.jit(lambda v, x: model.apply(v, x))
    input_grad = jax.jit(jax.grad(lambda x, v: model.apply(v, x)[:, TARGET].sum()))
    rows = []
    tx = None
    if with_peer:
        tdtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
        net = net.to(tdtype)
        mean = np.array(IMAGENET_MEAN, np.float32)
        std = np.array(IMAGENET_STD, np.float32)
        xn = (np.asarray(x, np.float32) - mean) / std
        tx = torch.from_numpy(np.ascontiguousarray(xn.transpose(0, 3, 1, 2))).to(device(), tdtype)

    def peer_forward():
        with torch.no_grad():
            return net(tx)

    def peer_grad():
        inp = tx.clone().requires_grad_(True)
        return torch.autograd.grad(net(inp)[:, TARGET].sum(), inp)[0]

    for task, jitted, args, peer_fn in (("forward", forward, (variables, x), peer_forward),
                                         ("forward + input grad", input_grad, (x, variables), peer_grad)):
        ours, peer = time_jax_and_peer(jitted, args, peer_fn if with_peer else None, sync, repeats)
        rows.append(Row("models", task, name, batch, dtype, ours, peer, "PyTorch reference"))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="*", default=["efficientnet_lite0", "resnet50"])
    p.add_argument("--batch", nargs="*", type=int, default=[1, 8, 32])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-peer", action="store_true", help="jaxviz only (e.g. where torch is missing)")
    args = p.parse_args(argv)
    print(f"device: {device_name()}")
    rows = []
    for name in args.model:
        for batch in args.batch:
            rows += bench(name, batch, args.dtype, args.repeats, not args.no_peer)
    print()
    print(markdown(rows))
    print(f"\nsaved {save(rows, f'models-{args.dtype}')}")


if __name__ == "__main__":
    main()
