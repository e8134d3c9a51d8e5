"""The CPU experiments op by op: one ResNet-50 operation at its exact shape, several formulations and PyTorch.

    python benchmarks/cpu_ops.py                          # every group, batch 8
    python benchmarks/cpu_ops.py --group pool stem --batch 1 8

Each case compiles every formulation (forward, or input gradient ``vjp(f, x)(g)`` with the forward included, as
autodiff runs it), then calls them and PyTorch's own operation (oneDNN) in turns, ``--repeats`` rounds after one
warm-up round, and prints each median in ms. Groups:

* ``pool``: max-pool 3x3/2 (pad 1) on (B, 112, 112, 64): the port's mask VJP (first maximum, as PyTorch;
  scatter-adds of the strided windows), the same mask computed once as a window index and added back phase by
  phase, and XLA's ``select_and_scatter`` (``jax.grad`` of ``lax.reduce_window``);
* ``stem``, ``strided``: a stride-2 convolution's input gradient as autodiff's transpose (a convolution with
  ``lhs_dilation`` 2), as polyphase stride-1 convolutions (one per output phase, or one with the phases stacked
  in its output channels), and as a matrix product over patches (stem only);
* ``1x1``: a 1x1 convolution as ``lax.conv_general_dilated`` and as a ``dot_general`` over the channels;
* ``3x3``: a 3x3 convolution as a convolution, as one product over 9-fold patches (im2col), and as 9 products of
  shifted views.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

sys.path.insert(0, str(Path(__file__).parent))
from jaxviz.models import layers  # noqa: E402

from harness import device_name  # noqa: E402

DN = ("NHWC", "HWIO", "NHWC")


def conv(x, w, s, pads):
    return lax.conv_general_dilated(x, w, (s, s), pads, dimension_numbers=DN)


# ------------------------------------------------------------------------------------------------ strided convs

def dx_polyphase(g, w, s, pads, in_hw, stacked=False):
    """The input gradient of ``conv(x, w, s, pads)`` for the cotangent ``g``, as stride-1 convolutions.

    Input row ``u = q s + r`` (padded coordinates) receives ``sum_m g[q - m] w[r + s m]``: for each phase ``r`` a
    stride-1 correlation of ``g`` with the flipped taps ``w[r::s]``; the phases are interleaved at the end.
    ``stacked``: one convolution with every phase's taps (zero-padded to ``ceil(k / s)``) in its output channels.
    """
    k_h, k_w = w.shape[:2]
    (top, _), (left, _) = pads
    h, wd = in_hw
    qh, qw = -(-(h + top) // s), -(-(wd + left) // s)
    oh, ow = g.shape[1:3]
    taps = jnp.swapaxes(w, 2, 3)  # (k, k, O, I): the gradient maps O channels to I
    cin = w.shape[2]
    batch = g.shape[0]

    def correlate(sub):
        mh, mw = sub.shape[:2]
        return conv(g, sub[::-1, ::-1], 1, ((mh - 1, qh - oh), (mw - 1, qw - ow)))

    if stacked:
        mh, mw = -(-k_h // s), -(-k_w // s)
        subs = [jnp.pad(taps[rh::s, rw::s], ((0, mh - len(range(rh, k_h, s))), (0, mw - len(range(rw, k_w, s))),
                                              (0, 0), (0, 0))) for rh in range(s) for rw in range(s)]
        out = correlate(jnp.concatenate(subs, axis=-1)).reshape(batch, qh, qw, s, s, cin)
    else:
        rows = []
        for rh in range(s):
            cols = [correlate(taps[rh::s, rw::s]) if rh < k_h and rw < k_w else jnp.zeros((batch, qh, qw, cin), g.dtype)
                    for rw in range(s)]
            rows.append(jnp.stack(cols, axis=3))
        out = jnp.stack(rows, axis=3)
    out = out.transpose(0, 1, 3, 2, 4, 5).reshape(batch, qh * s, qw * s, cin)
    return out[:, top:top + h, left:left + wd]


def patches(x, k, s, pads):
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    oh, ow = (xp.shape[1] - k) // s + 1, (xp.shape[2] - k) // s + 1
    return jnp.concatenate([xp[:, i:i + (oh - 1) * s + 1:s, j:j + (ow - 1) * s + 1:s] for i in range(k)
                            for j in range(k)], axis=-1)


def im2col(x, w, s, pads):
    return jnp.einsum("bhwk,ko->bhwo", patches(x, w.shape[0], s, pads), w.reshape(-1, w.shape[-1]))


def shifted_dots(x, w, s, pads):
    k = w.shape[0]
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    oh, ow = (xp.shape[1] - k) // s + 1, (xp.shape[2] - k) // s + 1
    return sum(jnp.einsum("bhwi,io->bhwo", xp[:, i:i + (oh - 1) * s + 1:s, j:j + (ow - 1) * s + 1:s], w[i, j])
               for i in range(k) for j in range(k))


# ------------------------------------------------------------------------------------------------ max-pool

def _first_index(xp, out, kernel, stride, out_h, out_w):
    """Per window, the row-major index of its first maximum (int8)."""
    idx = None
    for n, (_, _, window) in enumerate(layers._pool_windows(xp, kernel, stride, out_h, out_w)):
        hit = window == out
        idx = jnp.where(hit, jnp.int8(n), jnp.int8(kernel * kernel)) if idx is None else jnp.where(
            hit & (idx == kernel * kernel), jnp.int8(n), idx)
    return idx


def pool_grad_phases(x, kernel, stride, pads, g):
    """The max-pool VJP (first maximum) with the window index computed once, then each input phase's sum of
    shifted contributions, interleaved (no scatter)."""
    s = stride
    xp = layers._pad_neg_inf(x, pads)
    out_h, out_w = layers._out_hw(xp, kernel, stride)
    out = layers._max_pool(x, kernel, stride, pads)
    idx = _first_index(xp, out, kernel, stride, out_h, out_w)
    qh, qw = -(-xp.shape[1] // s), -(-xp.shape[2] // s)
    rows = []
    for rh in range(s):
        cols = []
        for rw in range(s):
            acc = jnp.zeros((g.shape[0], qh, qw, g.shape[3]), g.dtype)
            for i in range(rh, kernel, s):
                for j in range(rw, kernel, s):
                    part = jnp.where(idx == i * kernel + j, g, 0)
                    acc = acc + jnp.pad(part, ((0, 0), (i // s, qh - out_h - i // s), (j // s, qw - out_w - j // s),
                                               (0, 0)))
            cols.append(acc)
        rows.append(jnp.stack(cols, axis=3))
    full = jnp.stack(rows, axis=2).reshape(g.shape[0], qh * s, qw * s, g.shape[3])
    (top, _), (left, _) = pads
    return full[:, top:top + x.shape[1], left:left + x.shape[2]]


def pool_reduce_window(x, kernel, stride, pads):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, kernel, kernel, 1), (1, stride, stride, 1),
                             ((0, 0), *pads, (0, 0)))


# ------------------------------------------------------------------------------------------------ cases

def _fwd(f, s, pads):
    return lambda x, w: f(x, w, s, pads)


def _dx(f, s, pads, shape):
    """The input gradient of ``f(x, w, s, pads)`` (x of ``shape``) as autodiff computes it."""
    return lambda g, w: jax.vjp(lambda x: f(x, w, s, pads), jnp.zeros(shape, g.dtype))[1](g)[0]


def _pool_vjp(pool, pads):
    return lambda x, g: jax.vjp(lambda x: pool(x, 3, 2, pads), x)[1](g)[0]


def _dot(x, w, s=1, pads=None):
    return jnp.einsum("bhwi,io->bhwo", x, w[0, 0])


def _polyphase(s, pads, hw, stacked):
    return lambda g, w: dx_polyphase(g, w, s, pads, hw, stacked)


def cases(group, batch):
    """(name, {formulation: (fn, args)}, torch call) per case of the group."""
    import torch

    rng = np.random.default_rng(0)

    def arrays(h, c, k, s, p, o):
        x = rng.random((batch, h, h, c), np.float32)
        w = (rng.standard_normal((k, k, c, o)) * 0.1).astype(np.float32)
        oh = (h + 2 * p - k) // s + 1
        g = rng.random((batch, oh, oh, o), np.float32)
        tx, tw = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(w.transpose(3, 2, 0, 1).copy())
        tg = torch.from_numpy(g.transpose(0, 3, 1, 2).copy())
        return x, w, g, tx, tw, tg

    def torch_dx(tg, tx, tw, s, p):
        return lambda: torch.ops.aten.convolution_backward(tg, tx, tw, None, [s, s], [p, p], [1, 1], False, [0, 0], 1,
                                                           [True, False, False])[0]

    def torch_fwd(tx, tw, s, p):
        def f():
            with torch.no_grad():
                return torch.nn.functional.conv2d(tx, tw, stride=s, padding=p)
        return f

    if group == "pool":
        x = rng.random((batch, 112, 112, 64), np.float32)
        g = rng.random((batch, 56, 56, 64), np.float32)
        pads = ((1, 1), (1, 1))
        tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
        tg = torch.from_numpy(g.transpose(0, 3, 1, 2).copy())

        def torch_grad():
            out = torch.nn.functional.max_pool2d(tx, 3, 2, 1)
            return torch.autograd.grad(out, tx, tg)[0]

        yield "max-pool 3x3/2 @112x64, forward + grad", {
            "forward (max of 9 views)": (lambda x: layers._max_pool(x, 3, 2, pads), (x,)),
            "mask VJP, scatter-add (the port's)": (_pool_vjp(layers._max_pool, pads), (x, g)),
            "mask VJP, index + phases": (lambda x, g: pool_grad_phases(x, 3, 2, pads, g), (x, g)),
            "select_and_scatter": (_pool_vjp(pool_reduce_window, pads), (x, g)),
        }, torch_grad
    if group in ("stem", "strided"):
        shapes = [(224, 3, 7, 2, 3, 64)] if group == "stem" else [
            (56, 128, 3, 2, 1, 128), (56, 256, 1, 2, 0, 512), (28, 256, 3, 2, 1, 256), (14, 512, 3, 2, 1, 512)]
        for h, c, k, s, p, o in shapes:
            x, w, g, tx, tw, tg = arrays(h, c, k, s, p, o)
            pads = ((p, p), (p, p))
            forms = {
                "forward": (_fwd(conv, s, pads), (x, w)),
                "dx: transpose (lhs-dilated conv)": (_dx(conv, s, pads, x.shape), (g, w)),
                "dx: polyphase, one conv per phase": (_polyphase(s, pads, (h, h), False), (g, w)),
                "dx: polyphase, phases stacked": (_polyphase(s, pads, (h, h), True), (g, w)),
            }
            if group == "stem":
                forms["dx: product over patches (transpose of im2col)"] = (_dx(im2col, s, pads, x.shape), (g, w))
            yield f"{k}x{k}/{s} {c}->{o} @{h}", forms, (torch_fwd(tx, tw, s, p), torch_dx(tg, tx, tw, s, p))
    if group == "1x1":
        for h, c, o in [(56, 256, 64), (56, 64, 256), (28, 512, 128), (28, 128, 512), (14, 1024, 256),
                        (14, 256, 1024), (7, 2048, 512), (7, 512, 2048)]:
            x, w, g, tx, tw, tg = arrays(h, c, 1, 1, 0, o)
            pads = ((0, 0), (0, 0))
            yield f"1x1 {c}->{o} @{h}", {
                "conv forward": (_fwd(conv, 1, pads), (x, w)),
                "dot forward": (_fwd(_dot, 1, pads), (x, w)),
                "conv dx": (_dx(conv, 1, pads, x.shape), (g, w)),
                "dot dx": (_dx(_dot, 1, pads, x.shape), (g, w)),
            }, (torch_fwd(tx, tw, 1, 0), torch_dx(tg, tx, tw, 1, 0))
    if group == "3x3":
        for h, c in [(56, 64), (28, 128), (14, 256), (7, 512)]:
            x, w, g, tx, tw, tg = arrays(h, c, 3, 1, 1, c)
            pads = ((1, 1), (1, 1))
            forms = {}
            for name, f in (("conv", conv), ("im2col", im2col), ("9 shifted dots", shifted_dots)):
                forms[f"{name} forward"] = (_fwd(f, 1, pads), (x, w))
                forms[f"{name} dx"] = (_dx(f, 1, pads, x.shape), (g, w))
            yield f"3x3 {c}->{c} @{h}", forms, (torch_fwd(tx, tw, 1, 1), torch_dx(tg, tx, tw, 1, 1))


def time_case(forms, peer, repeats):
    calls = {}
    for name, (fn, args) in forms.items():
        compiled = jax.jit(fn).lower(*args).compile()
        calls[name] = (lambda c, a: lambda: jax.block_until_ready(c(*a)))(compiled, args)
    peers = peer if isinstance(peer, tuple) else (peer,)
    for i, p in enumerate(peers):
        calls[f"PyTorch {('forward', 'dx')[i] if len(peers) == 2 else 'forward + grad'}"] = p
    runs = {n: [] for n in calls}
    for r in range(repeats + 1):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            if r:
                runs[name].append(time.perf_counter() - t0)
    return {n: 1e3 * statistics.median(rs) for n, rs in runs.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--group", nargs="*", default=["pool", "stem", "strided", "1x1", "3x3"],
                   choices=["pool", "stem", "strided", "1x1", "3x3"])
    p.add_argument("--batch", nargs="*", type=int, default=[8])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    print(f"device: {device_name()}, jax {jax.__version__}; ms, median of {args.repeats} rounds", flush=True)
    for batch in args.batch:
        for group in args.group:
            for name, forms, peer in cases(group, batch):
                med = time_case(forms, peer, args.repeats)
                print(f"batch {batch}, {name}: " + "; ".join(f"{n} {t:.1f}" for n, t in med.items()), flush=True)


if __name__ == "__main__":
    main()
