"""The model contract shared by every port.

A :class:`Model` is a frozen, hashable record: a Flax module plus what a user
needs to feed it (native input size, preprocessing) and to look inside it
(layer names in forward order). Being hashable, it can be a static argument of
``jax.jit``; swapping its activation (:meth:`Model.with_act`) gives a new record
over the same weights.

Every port's Flax module follows two rules:

* ``__call__(x, taps=None)`` takes *preprocessed* NHWC images, returns logits,
  and passes every named activation through ``taps(name, x)`` (:class:`Taps`);
* every nonlinearity goes through its ``act`` field.

Example:
    >>> model, variables = jaxviz.models.load("efficientnet_lite0")  # doctest: +SKIP
    >>> logits, acts = model.apply(variables, images, capture=["blocks.5"])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["Model", "Preprocessing", "Taps", "IMAGENET_MEAN", "IMAGENET_STD", "check_names", "bn_inputs"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Maps images in [0, 1] RGB to what a network was trained on.

    ``((x * scale)[..., ::-1 if bgr] - mean) / std``, per channel.
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    scale: float = 1.0
    bgr: bool = False

    def __call__(self, images: jax.Array) -> jax.Array:
        x = images * self.scale
        if self.bgr:
            x = x[..., ::-1]
        return (x - jnp.asarray(self.mean, x.dtype)) / jnp.asarray(self.std, x.dtype)


class Taps:
    """The named points of a forward pass: records and (optionally) perturbs activations.

    ``x = taps("layer1", x)`` adds ``perturb["layer1"]`` to ``x`` if given (a zero
    perturbation's gradient is the gradient w.r.t. that activation, as Grad-CAM
    needs), records the result if ``"layer1"`` was requested, and returns it.
    Unrequested layers cost nothing.
    """

    def __init__(self, wanted: Iterable[str] = (), perturb: dict[str, jax.Array] | None = None):
        self.wanted = frozenset(wanted)
        self.perturb = perturb or {}
        self.out: dict[str, jax.Array] = {}

    def __call__(self, name: str, x: jax.Array) -> jax.Array:
        if name in self.perturb:
            delta = self.perturb[name]
            if delta.shape != x.shape:
                raise ValueError(f"perturbation of {name!r} has shape {delta.shape}, the activation {x.shape}")
            x = x + delta
        if name in self.wanted:
            self.out[name] = x
        return x


def check_names(names: Iterable[str], valid: tuple[str, ...], what: str = "layer") -> tuple[str, ...]:
    """Returns ``names`` as a tuple, or raises ValueError listing the valid ones."""
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r}; valid names: {', '.join(valid)}")
    return names


@dataclasses.dataclass(frozen=True)
class Model:
    """A pretrained CNN under jaxviz's contract.

    Attributes:
        name: registry name, e.g. ``"resnet50"``.
        module: the Flax module (see the module docstring for its protocol).
        input_size: native square resolution in pixels.
        num_classes: number of logits.
        preprocessing: applied inside :meth:`apply` to images in [0, 1].
        layers: names of every reachable activation, in forward order.
        labels: which label set the logits index (``"imagenet"``).
        cam_layer: the last spatial layer, whose global average feeds the
            classifier (what CAM weights); None if there is none.
        classifier: the parameter path of the final dense layer.
    """

    name: str
    module: nn.Module
    input_size: int
    num_classes: int
    preprocessing: Preprocessing
    layers: tuple[str, ...]
    labels: str = "imagenet"
    cam_layer: str | None = None
    classifier: str = "fc"

    @property
    def act(self) -> Callable[[jax.Array], jax.Array]:
        """The activation every nonlinearity of the network goes through."""
        return self.module.act

    def with_act(self, act: Callable[[jax.Array], jax.Array]) -> Model:
        """Returns the same network with ``act`` in place of every activation.

        Guided backprop and deconvnet pass ``custom_vjp`` activations here; the
        weights (``variables``) are unchanged and still apply.
        """
        return dataclasses.replace(self, module=self.module.clone(act=act))

    def init(self, key: jax.Array, size: int = 64) -> dict[str, Any]:
        """Random variables (He-normal convs, BN mean 0 / var 1).

        Parameter shapes do not depend on the input size, so a small ``size``
        keeps initialization fast.
        """
        return _jitted_init(self.module)(key, jnp.zeros((1, size, size, 3), jnp.float32))

    def apply(self, variables, images: jax.Array, capture: Iterable[str] | str | None = None,
              perturb: dict[str, jax.Array] | None = None):
        """Runs the network on ``images``.

        Args:
            variables: the model's variables (``params`` and ``batch_stats``).
            images: (B, H, W, 3) float RGB in [0, 1].
            capture: layer names whose activations to return as well.
            perturb: ``{layer: delta}`` added to those activations on the way
                (same shapes); differentiate at zero for gradients w.r.t. layers.

        Returns:
            Logits (B, num_classes) when ``capture`` is None; otherwise
            ``(logits, {name: activation})``. Spatial activations are NHWC;
            ``avgpool`` is (B, C).
        """
        _check_images(images)
        wanted = check_names(capture, self.layers) if capture is not None else ()
        if perturb:
            check_names(tuple(perturb), self.layers)
        taps = Taps(wanted, perturb)
        logits = self.module.apply(variables, self.preprocessing(images), taps)
        return logits if capture is None else (logits, taps.out)

    def __call__(self, variables, images, capture=None, perturb=None):
        return self.apply(variables, images, capture, perturb)


@functools.cache
def _jitted_init(module: nn.Module):
    """One compiled initializer per network: a new key does not recompile."""
    return jax.jit(module.init)


def _check_images(images) -> None:
    shape = getattr(images, "shape", None)
    dtype = getattr(images, "dtype", None)
    if shape is None or len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3) RGB in [0, 1], got shape {shape}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"images must be floating point in [0, 1], got dtype {dtype}; divide uint8 images by 255")


def bn_inputs(model: Model, variables, images: jax.Array):
    """Runs the network and returns what every BatchNorm layer saw.

    The model is not edited: the BatchNorm calls are intercepted with
    ``flax.linen.intercept_methods``. DeepInversion matches the statistics of
    these inputs to each layer's running statistics.

    Returns:
        ``(logits, {bn_name: input})`` with BN names as dotted module paths in
        call order (e.g. ``"layer1.0.bn1"``) and inputs NHWC.
    """
    seen: dict[str, jax.Array] = {}

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, nn.BatchNorm) and context.method_name == "__call__":
            seen[".".join(context.module.path)] = args[0]
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        logits = model.apply(variables, images)
    return logits, seen
