"""Layer helpers shared by the ports, in PyTorch's conventions.

Kernels are HWIO. ``padding`` is an int (symmetric, as ``torch.nn.Conv2d``) or
``"SAME"`` (TensorFlow's rule, as EfficientNet-Lite's reference pads).
"""

from __future__ import annotations

import contextvars
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from . import interpret

# torchvision initializes convs with kaiming_normal_(mode="fan_out").
_he_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "truncated_normal")


#: The CPU formulations of the ports' operations (:func:`conv_op`): ``"auto"`` uses them where JAX's default
#: backend is the CPU, ``"on"``/``"off"`` everywhere / nowhere. Read while tracing; :meth:`Model.apply` traces with
#: ``"off"`` where op or affine-layer rules (DeepLIFT, LRP) must see every convolution as one convolution.
FAST_CPU = contextvars.ContextVar("jaxviz_fast_cpu", default="auto")
interpret.TRACE_CONTEXT.append(FAST_CPU)  # a forward traced with one setting is not reused under another


def fast_cpu() -> bool:
    """Whether :data:`FAST_CPU` selects the CPU formulations for what is traced now."""
    mode = FAST_CPU.get()
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"FAST_CPU must be 'auto', 'on' or 'off', got {mode!r}")
    return mode == "on" or (mode == "auto" and jax.default_backend() == "cpu")


def conv_op(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
            feature_group_count=1, precision=None):
    """``lax.conv_general_dilated`` as ``nn.Conv`` calls it; on the CPU (:func:`fast_cpu`) a 1x1 convolution is a
    matrix product over the channels (of the strided pixels).

    XLA:CPU runs a 1x1 convolution 1.3-2x slower than the same product written as a ``dot_general``, forward
    and input gradient alike (benchmarks/README.md, "CPU ops"); the values are the same up to summation
    order. Other convolutions are left to ``lax.conv_general_dilated``.
    """
    nd = lhs.ndim
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    channels_last = (dn.lhs_spec[:2] == (0, nd - 1) and dn.out_spec[:2] == (0, nd - 1)
                     and dn.rhs_spec[:2] == (nd - 1, nd - 2))
    pads = lax.padtype_to_pads(lhs.shape[1:-1], rhs.shape[:-2], window_strides, padding) if isinstance(
        padding, str) else padding
    if (fast_cpu() and channels_last and feature_group_count == 1 and all(k == 1 for k in rhs.shape[:-2])
            and all(tuple(p) == (0, 0) for p in pads) and all(d == 1 for d in (lhs_dilation or ()))
            and all(d == 1 for d in (rhs_dilation or ()))):
        if any(s != 1 for s in window_strides):
            lhs = lhs[(slice(None), *(slice(None, None, s) for s in window_strides))]
        kernel = rhs.reshape(rhs.shape[-2:])
        return lax.dot_general(lhs, kernel, (((nd - 1,), (0,)), ((), ())), precision=precision)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                                    feature_group_count, precision=precision)


def conv(features: int, kernel: int, stride: int = 1, padding: int | str = 0, *, groups: int = 1,
         bias: bool = False, name: str | None = None) -> nn.Conv:
    """A 2-D convolution laid out like ``torch.nn.Conv2d`` (computed by :func:`conv_op`)."""
    pad = padding if isinstance(padding, str) else ((padding, padding), (padding, padding))
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=pad,
                   feature_group_count=groups, use_bias=bias, kernel_init=_he_fan_out, conv_general_dilated=conv_op,
                   name=name)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" rule: output ``ceil(size / stride)``, extra pixel at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _shifted_sum(xp: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Valid depthwise correlation of padded NHWC ``xp`` with (k, k, 1, C) ``kernel``."""
    k = kernel.shape[0]
    out_h = (xp.shape[1] - k) // stride + 1
    out_w = (xp.shape[2] - k) // stride + 1
    out = None
    for i in range(k):
        for j in range(k):
            window = xp[:, i:i + (out_h - 1) * stride + 1:stride, j:j + (out_w - 1) * stride + 1:stride, :]
            out = window * kernel[i, j, 0] if out is None else out + window * kernel[i, j, 0]
    return out


def _pad(x, pads):
    return jnp.pad(x, ((0, 0), *pads, (0, 0)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def depthwise_shift(x: jax.Array, kernel: jax.Array, stride: int, pads) -> jax.Array:
    """Depthwise convolution as k*k shifted multiply-adds, with a backward of the same form.

    XLA:CPU fuses the shifted sums into one loop (5-40x faster than its grouped
    convolution); the gradient w.r.t. ``x`` is again a depthwise correlation (of
    the stride-dilated cotangent with the flipped kernel), so it costs about as
    much as the forward instead of k*k separate pads. Reverse mode only (jvp is
    not defined for a custom_vjp): use ``DepthwiseConv(impl="conv")`` for jvp.
    """
    return _shifted_sum(_pad(x, pads), kernel, stride)


def _depthwise_fwd(x, kernel, stride, pads):
    return depthwise_shift(x, kernel, stride, pads), (x, kernel)


def _depthwise_bwd(stride, pads, residuals, g):
    x, kernel = residuals
    k = kernel.shape[0]
    xp = _pad(x, pads)
    hp, wp = xp.shape[1:3]
    out_h, out_w = g.shape[1:3]
    span_h, span_w = (out_h - 1) * stride + 1, (out_w - 1) * stride + 1
    # dxp[q] = sum_i dilated_g[q - i] * kernel[i]: a correlation with the flipped kernel.
    g_full = jax.lax.pad(g, jnp.zeros((), g.dtype), ((0, 0, 0), (k - 1, hp - span_h, stride - 1),
                                                      (k - 1, wp - span_w, stride - 1), (0, 0, 0)))
    dxp = _shifted_sum(g_full, kernel[::-1, ::-1], 1)
    (top, _), (left, _) = pads
    dx = dxp[:, top:top + x.shape[1], left:left + x.shape[2], :]
    dkernel = jnp.stack([
        jnp.stack([jnp.sum(xp[:, i:i + span_h:stride, j:j + span_w:stride, :] * g, axis=(0, 1, 2)) for j in range(k)])
        for i in range(k)])[:, :, None, :]
    return dx, dkernel.astype(kernel.dtype)


depthwise_shift.defvjp(_depthwise_fwd, _depthwise_bwd)
# Eagerly, k*k static slices would each compile a program; jitted, a layer compiles once
# per shape (under an outer jit or grad this is simply inlined).
_depthwise_shift_jit = jax.jit(depthwise_shift, static_argnums=(2, 3))


class DepthwiseConv(nn.Module):
    """Depthwise convolution, kernel (k, k, 1, C) HWIO as ``nn.Conv(groups=C)`` stores it.

    ``impl="auto"`` uses :func:`depthwise_shift` on CPU and
    ``lax.conv_general_dilated`` elsewhere (cuDNN / TPU kernels).
    """

    kernel_size: int
    stride: int = 1
    padding: str | int = "SAME"
    impl: str = "auto"  # "auto", "shift" or "conv"

    @nn.compact
    def __call__(self, x):
        k, s, channels = self.kernel_size, self.stride, x.shape[-1]
        kernel = self.param("kernel", _he_fan_out, (k, k, 1, channels), x.dtype)
        if self.padding == "SAME":
            pads = (same_padding(x.shape[1], k, s), same_padding(x.shape[2], k, s))
        else:
            pads = ((self.padding, self.padding),) * 2
        impl = self.impl if self.impl != "auto" else ("shift" if jax.default_backend() == "cpu" else "conv")
        if impl == "conv":
            return jax.lax.conv_general_dilated(x, kernel, (s, s), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                                feature_group_count=channels)
        return _depthwise_shift_jit(x, kernel, s, pads)


def batch_norm(epsilon: float = 1e-5, name: str | None = None) -> nn.BatchNorm:
    """BatchNorm in inference mode (running statistics), as ``model.eval()``."""
    return nn.BatchNorm(use_running_average=True, momentum=0.9, epsilon=epsilon, name=name)


def _pool_windows(xp: jax.Array, kernel: int, stride: int, out_h: int, out_w: int):
    for i in range(kernel):
        for j in range(kernel):
            yield i, j, xp[:, i:i + (out_h - 1) * stride + 1:stride, j:j + (out_w - 1) * stride + 1:stride]


def _pool_out(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """PyTorch's output size; in ceil mode the last window must start inside the input or left padding."""
    span = size + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _pool_pads(x, kernel, stride, padding, ceil_mode):
    pads = []
    for size in x.shape[1:3]:
        out = _pool_out(size, kernel, stride, padding, ceil_mode)
        pads.append((padding, max((out - 1) * stride + kernel - size - padding, 0)))
    return tuple(pads)


def _pad_neg_inf(x, pads):
    return jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)


def _out_hw(xp, kernel, stride):
    return (xp.shape[1] - kernel) // stride + 1, (xp.shape[2] - kernel) // stride + 1


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool(x: jax.Array, kernel: int, stride: int, pads) -> jax.Array:
    xp = _pad_neg_inf(x, pads)
    out = None
    for _, _, window in _pool_windows(xp, kernel, stride, *_out_hw(xp, kernel, stride)):
        out = window if out is None else jnp.maximum(out, window)
    return out


def _max_pool_fwd(x, kernel, stride, pads):
    out = _max_pool(x, kernel, stride, pads)
    return out, (x, out)


def _max_pool_bwd(kernel, stride, pads, residuals, g):
    x, out = residuals
    xp = _pad_neg_inf(x, pads)
    out_h, out_w = _out_hw(xp, kernel, stride)
    taken = jnp.zeros(out.shape, bool)
    dxp = jnp.zeros(xp.shape, g.dtype)
    for i, j, window in _pool_windows(xp, kernel, stride, out_h, out_w):
        first = (window == out) & ~taken
        taken = taken | first
        dxp = dxp.at[:, i:i + (out_h - 1) * stride + 1:stride, j:j + (out_w - 1) * stride + 1:stride].add(
            jnp.where(first, g, 0))
    (top, _), (left, _) = pads
    return (dxp[:, top:top + x.shape[1], left:left + x.shape[2]],)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


#: ``"max"``, or ``"window_mean"`` while measuring receptive fields (every window
#: position then gets gradient); see :func:`jaxviz.models.receptive_field`.
POOL_MODE = contextvars.ContextVar("jaxviz_pool_mode", default="max")
interpret.TRACE_CONTEXT.append(POOL_MODE)  # a forward traced in one mode is not reused in the other


def max_pool(x: jax.Array, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False,
             pads: tuple | None = None) -> jax.Array:
    """``torch.nn.MaxPool2d``: pads with -inf; the gradient goes to each window's *first* maximum.

    Flat image regions make ties common (equal activations in a window); PyTorch
    routes the gradient to the first maximum in row-major order, and so does this
    (XLA's ``select_and_scatter`` picks another), so gradients match PyTorch's.
    The forward is a fused max over k*k strided views. ``pads`` ((top, bottom),
    (left, right)) overrides ``padding``/``ceil_mode`` (TensorFlow's SAME pads).
    """
    pads = pads if pads is not None else _pool_pads(x, kernel, stride, padding, ceil_mode)
    if POOL_MODE.get() == "window_mean":
        xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
        windows = [w for _, _, w in _pool_windows(xp, kernel, stride, *_out_hw(xp, kernel, stride))]
        return sum(windows) / len(windows)
    return _max_pool(x, kernel, stride, tuple(pads))


def adaptive_avg_pool(x: jax.Array, out_h: int, out_w: int) -> jax.Array:
    """``torch.nn.AdaptiveAvgPool2d``: cell i spans [floor(i H / n), ceil((i + 1) H / n))."""
    h, w = x.shape[1:3]
    if (h, w) == (out_h, out_w):
        return x + jnp.zeros((), x.dtype)  # an op (that XLA removes), so the layer around it exists at every size
    rows = []
    for i in range(out_h):
        top, bottom = (i * h) // out_h, -(-((i + 1) * h) // out_h)
        cols = []
        for j in range(out_w):
            left, right = (j * w) // out_w, -(-((j + 1) * w) // out_w)
            cols.append(jnp.mean(x[:, top:bottom, left:right], axis=(1, 2)))
        rows.append(jnp.stack(cols, axis=1))
    return jnp.stack(rows, axis=1)


def flatten_nchw(x: jax.Array) -> jax.Array:
    """Flatten (B, H, W, C) in PyTorch's (C, H, W) order, so converted dense weights apply."""
    return jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)


def global_avg_pool(x: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, C)."""
    return jnp.mean(x, axis=(1, 2))
