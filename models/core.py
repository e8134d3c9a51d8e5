"""The model contract shared by every port.

A :class:`Model` is a frozen, hashable record: a Flax module plus what a user
needs to feed it (native input size, preprocessing) and to look inside it
(layer names in forward order). Being hashable, it can be a static argument of
``jax.jit``; swapping its activation (:meth:`Model.with_act`) gives a new record
over the same weights.

Every port's Flax module follows two rules:

* ``__call__(x, capture=frozenset())`` takes *preprocessed* NHWC images and
  returns ``(logits, {name: activation})`` for the names in ``capture``, which
  it records with :class:`Taps`;
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
    """Collects the activations a caller asked for, inside a module's forward.

    ``x = taps("layer1", x)`` records ``x`` under ``"layer1"`` if it was
    requested, and returns it unchanged, so unrequested layers cost nothing.
    """

    def __init__(self, wanted: Iterable[str]):
        self.wanted = frozenset(wanted)
        self.out: dict[str, jax.Array] = {}

    def __call__(self, name: str, x: jax.Array) -> jax.Array:
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
    """

    name: str
    module: nn.Module
    input_size: int
    num_classes: int
    preprocessing: Preprocessing
    layers: tuple[str, ...]
    labels: str = "imagenet"

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

    def apply(self, variables, images: jax.Array, capture: Iterable[str] | str | None = None):
        """Runs the network on ``images``.

        Args:
            variables: the model's variables (``params`` and ``batch_stats``).
            images: (B, H, W, 3) float RGB in [0, 1].
            capture: layer names whose activations to return as well.

        Returns:
            Logits (B, num_classes) when ``capture`` is None; otherwise
            ``(logits, {name: activation})``. Spatial activations are NHWC;
            ``avgpool`` is (B, C).
        """
        _check_images(images)
        wanted = frozenset(check_names(capture, self.layers)) if capture is not None else frozenset()
        logits, acts = self.module.apply(variables, self.preprocessing(images), capture=wanted)
        return logits if capture is None else (logits, acts)

    def __call__(self, variables, images, capture=None):
        return self.apply(variables, images, capture)


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
