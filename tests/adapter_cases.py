"""The networks jaxviz did not write that tests/test_adapters.py runs every technique on, each with its references.

Third-party definitions (Haiku's ``hk.nets.ResNet18``, jax-resnet's linen ``ResNet18``) and small networks in each
framework's usual style (linen with functional ReLUs, ``jnp.maximum`` and ``nn.remat``; NNX; Equinox with
``eqx.nn.BatchNorm``; a plain ``lax.conv`` function with ``jnp.maximum(x, 0)`` and ``jnp.clip``).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from collections.abc import Callable

import equinox as eqx
import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
from flax import nnx
from jax_resnet import ConvBlock, ResNet18, ResNetBlock

from jaxviz import models

SIZE = 16
CLASSES = 5


@dataclasses.dataclass
class Case:
    """An adapted model and its references.

    ``direct(relu, relu6)`` returns ``f(images) -> logits`` for the network with those activations put in by hand;
    ``reference(images, layer, delta)`` returns ``(logits, activation of layer)`` with ``delta`` added to it, read
    with the framework's own tools; ``bn_reference(images)`` returns ``{bn layer: input}``.
    """

    model: models.Model
    variables: object
    direct: Callable
    reference: Callable | None
    layers: tuple[str, ...]  # layers the reference can read, in forward order
    cam_layer: str
    bn_reference: Callable | None = None


def random_images(seed=0, n=2, size=SIZE):
    return jax.random.uniform(jax.random.key(seed), (n, size, size, 3))


def _randomize_stats(key, mean, var):
    k1, k2 = jax.random.split(key)
    return (jax.random.uniform(k1, mean.shape, minval=-0.5, maxval=0.5),
            jax.random.uniform(k2, var.shape, minval=0.5, maxval=2.0))


# ------------------------------------------------------------------------------------------------ linen


def _linen_interceptor(wanted, delta, seen):
    """A linen method interceptor that records (and perturbs) module outputs by path."""

    def intercept(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name != "__call__":
            return out
        path = ".".join(context.module.path)
        if path == wanted and delta is not None:
            out = out + delta
        if isinstance(out, jax.Array):
            seen.setdefault(path, out)
        if isinstance(context.module, nn.BatchNorm):
            seen.setdefault(("bn", path), args[0])
        return out

    return intercept


def _linen_reference(module, variables, kwargs):
    def reference(images, layer=None, delta=None):
        seen: dict = {}
        with nn.intercept_methods(_linen_interceptor(layer, delta, seen)):
            logits = module.apply(variables, images, **kwargs)
        return logits, seen.get(layer)

    def bn_reference(images):
        seen: dict = {}
        with nn.intercept_methods(_linen_interceptor(None, None, seen)):
            module.apply(variables, images, **kwargs)
        return {k[1]: v for k, v in seen.items() if isinstance(k, tuple)}

    return reference, bn_reference


class LinenBlock(nn.Module):
    features: int
    train: bool
    relu: Callable = nn.relu

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(self.features, (3, 3), use_bias=False, name="conv")(x)
        y = nn.BatchNorm(use_running_average=not self.train, name="bn")(y)
        return self.relu(y) + x


class LinenNet(nn.Module):
    """A user's linen CNN: functional ReLUs, jnp.maximum, nn.remat, BatchNorm, and a ``train`` flag."""

    relu: Callable = nn.relu
    maximum: Callable = lambda x: jnp.maximum(x, 0)
    remat: bool = True

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.Conv(8, (3, 3), strides=2, name="stem")(x)
        x = nn.BatchNorm(use_running_average=not train, name="stem_bn")(x)
        x = self.relu(x)
        x = (nn.remat(LinenBlock) if self.remat else LinenBlock)(8, train, self.relu, name="block1")(x)
        x = self.maximum(nn.Conv(8, (3, 3), name="conv2")(x))
        x = x.mean(axis=(1, 2))
        return nn.Dense(CLASSES, name="head")(x)


def linen_case():
    module = LinenNet()
    variables = module.init(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)), train=False)
    stats = jax.tree_util.tree_map_with_path(
        lambda p, a: _randomize_stats(jax.random.key(len(p) + a.size), a, a)[0 if p[-1].key == "mean" else 1],
        variables["batch_stats"])
    variables = {**variables, "batch_stats": stats}
    model, variables = models.from_linen(module, variables, input_size=SIZE, apply_kwargs={"train": False})
    # The references read activations with linen's interceptors, which cannot record inside nn.remat: they run
    # the same network without it (same variables, same values).
    reference, bn_reference = _linen_reference(LinenNet(remat=False), variables, {"train": False})

    def direct(relu=nn.relu, relu6=None):
        net = LinenNet(relu=relu, maximum=relu)
        return lambda images: net.apply(variables, images, train=False)

    return Case(model, variables, direct, reference, ("stem", "stem_bn", "block1.conv", "block1.bn", "block1",
                                                      "conv2", "head"), "conv2", bn_reference)


def jax_resnet_case():
    module = ResNet18(n_classes=CLASSES)
    variables = jax.jit(module.init)(jax.random.key(1), jnp.zeros((1, 32, 32, 3)))  # eager: 2x the time
    model, variables = models.from_linen(module, variables, input_size=32)
    reference, bn_reference = _linen_reference(module, variables, {})

    def direct(relu=nn.relu, relu6=None):
        net = ResNet18(n_classes=CLASSES, conv_block_cls=functools.partial(ConvBlock, activation=relu),
                       block_cls=functools.partial(ResNetBlock, activation=relu))
        return lambda images: net.apply(variables, images)

    layers = tuple(n for n in model.layers if n.count(".") <= 1 and not re.fullmatch(r"(relu|maxpool)\d+", n))
    return Case(model, variables, direct, reference, layers, "layers_7", bn_reference)


# ------------------------------------------------------------------------------------------------ haiku


def _haiku_fn(images, is_training):
    return hk.nets.ResNet18(CLASSES)(images, is_training)


def haiku_case():
    transformed = hk.transform_with_state(_haiku_fn)
    # jitted: run op by op, the initialization compiled each operation on its own (15 s against 8 s)
    params, state = jax.jit(transformed.init, static_argnums=2)(jax.random.key(2), jnp.zeros((1, 32, 32, 3)), True)
    # Haiku's ResNet starts its logits and each block's last BatchNorm scale at zero: make them random so that
    # the input reaches the output.
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(20), len(leaves))
    params = jax.tree_util.tree_unflatten(treedef, [
        jax.random.uniform(k, p.shape, minval=0.5, maxval=1.0) * (0.1 if p.ndim == 2 else 1.0) if not p.any() else p
        for p, k in zip(leaves, keys, strict=True)])
    state = {k: {**v, "average": _randomize_stats(jax.random.key(len(k)), v["average"], v["average"])[
        0 if k.endswith("mean_ema") else 1]} if "average" in v else v for k, v in state.items()}
    model, variables = models.from_haiku(transformed, params, state, input_size=32,
                                         apply_kwargs={"is_training": False})

    def run(images, intercept):
        with hk.intercept_methods(intercept):
            return _haiku_fn(images, False)

    def reference(images, layer=None, delta=None):
        seen: dict = {}

        def intercept(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if context.method_name == "__call__":
                path = ".".join(context.module.module_name.split("/~/")[1:])
                if path == layer and delta is not None:
                    out = out + delta
                seen.setdefault(path, out)
            return out

        logits, _ = hk.transform_with_state(lambda x: run(x, intercept)).apply(params, state, None, images)
        return logits, seen.get(layer)

    def bn_reference(images):
        seen: dict = {}

        def intercept(next_fun, args, kwargs, context):
            if isinstance(context.module, hk.BatchNorm) and context.method_name == "__call__":
                seen[".".join(context.module.module_name.split("/~/")[1:])] = args[0]
            return next_fun(*args, **kwargs)

        hk.transform_with_state(lambda x: run(x, intercept)).apply(params, state, None, images)
        return seen

    def direct(relu=jax.nn.relu, relu6=None):
        plain = hk.transform_with_state(_haiku_fn)

        def f(images):
            original = jax.nn.relu
            jax.nn.relu = relu  # the hand replacement: Haiku's ResNet calls jax.nn.relu by name
            try:
                return plain.apply(params, state, None, images, False)[0]
            finally:
                jax.nn.relu = original

        return f

    layers = ("initial_conv", "initial_batchnorm", "block_group_0.block_0", "block_group_0", "block_group_1",
              "block_group_3.block_1.conv_1", "block_group_3", "logits")
    return Case(model, variables, direct, reference, layers, "block_group_3", bn_reference)


# ------------------------------------------------------------------------------------------------ nnx


class NnxNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, relu=nnx.relu):
        self.conv1 = nnx.Conv(3, 8, (3, 3), strides=2, rngs=rngs)
        self.bn1 = nnx.BatchNorm(8, rngs=rngs)
        self.conv2 = nnx.Conv(8, 8, (3, 3), rngs=rngs)
        self.fc = nnx.Linear(8, CLASSES, rngs=rngs)
        self.relu = relu

    def __call__(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.conv2(x))
        return self.fc(x.mean(axis=(1, 2)))


def nnx_case():
    net = NnxNet(nnx.Rngs(3))
    mean, var = _randomize_stats(jax.random.key(3), net.bn1.mean[...], net.bn1.var[...])
    net.bn1.mean[...], net.bn1.var[...] = mean, var
    net.eval()
    model, variables = models.from_nnx(net, input_size=SIZE)
    graphdef, _ = nnx.split(net)

    def parts(images, layer=None, delta=None):
        m = nnx.merge(graphdef, variables)
        out = {}

        def step(name, x):
            if name == layer and delta is not None:
                x = x + delta
            out[name] = x
            return x

        x = step("conv1", m.conv1(images))
        x = step("bn1", m.bn1(x))
        x = step("conv2", m.conv2(m.relu(x)))
        x = step("fc", m.fc(m.relu(x).mean(axis=(1, 2))))
        return x, out

    def reference(images, layer=None, delta=None):
        logits, out = parts(images, layer, delta)
        return logits, out.get(layer)

    def direct(relu=nnx.relu, relu6=None):
        m = nnx.merge(graphdef, variables)
        m.relu = relu
        return lambda images: m(images)

    def bn_reference(images):
        return {"bn1": parts(images)[1]["conv1"]}

    return Case(model, variables, direct, reference, ("conv1", "bn1", "conv2", "fc"), "conv2", bn_reference)


# ------------------------------------------------------------------------------------------------ equinox


class EqxNet(eqx.Module):
    conv1: eqx.nn.Conv2d
    bn1: eqx.nn.BatchNorm
    conv2: eqx.nn.Conv2d
    fc: eqx.nn.Linear
    relu: Callable = eqx.field(static=True)
    relu6: Callable = eqx.field(static=True)

    def __init__(self, key, relu=jax.nn.relu, relu6=jax.nn.relu6):
        k1, k2, k3 = jax.random.split(key, 3)
        self.conv1 = eqx.nn.Conv2d(3, 8, 3, stride=2, padding=1, key=k1)
        self.bn1 = eqx.nn.BatchNorm(8, axis_name="batch", inference=True)
        self.conv2 = eqx.nn.Conv2d(8, 8, 3, padding=1, key=k2)
        self.fc = eqx.nn.Linear(8, CLASSES, key=k3)
        self.relu, self.relu6 = relu, relu6

    def __call__(self, x, state):
        x, state = self.bn1(self.conv1(x), state)
        x = self.relu6(self.conv2(self.relu(x)))
        return self.fc(x.mean(axis=(1, 2))), state


def equinox_case():
    net, state = eqx.nn.make_with_state(EqxNet)(jax.random.key(4))
    mean, var = state.get(net.bn1.ema_state_index)
    state = state.set(net.bn1.ema_state_index, _randomize_stats(jax.random.key(4), mean, var))
    model, variables = models.from_equinox(net, state, input_size=SIZE)

    def parts(images, layer=None, delta=None):
        out = {}

        def step(name, x):  # x: (B, C, H, W); deltas and the reference's activations NHWC
            if name == layer and delta is not None:
                x = x + jnp.moveaxis(delta, -1, 1)
            out[name] = jnp.moveaxis(x, 1, -1)
            return x

        one = lambda f: jax.vmap(f)
        x = jnp.moveaxis(images, -1, 1)
        x = step("conv1", one(net.conv1)(x))
        x = step("bn1", jax.vmap(lambda z: net.bn1(z, state)[0], axis_name="batch")(x))
        x = step("conv2", one(net.conv2)(jax.nn.relu(x)))
        logits = one(net.fc)(jax.nn.relu6(x).mean(axis=(2, 3)))
        return logits, out

    def reference(images, layer=None, delta=None):
        logits, out = parts(images, layer, delta)
        return logits, out.get(layer)

    def direct(relu=jax.nn.relu, relu6=jax.nn.relu6):
        hand = copy.copy(net)  # static fields are not pytree leaves: set them on a copy
        object.__setattr__(hand, "relu", relu)
        object.__setattr__(hand, "relu6", relu6)
        return lambda images: jax.vmap(lambda x: hand(x, state)[0], axis_name="batch")(jnp.moveaxis(images, -1, 1))

    def bn_reference(images):
        return {"bn1": parts(images)[1]["conv1"]}

    return Case(model, variables, direct, reference, ("conv1", "bn1", "conv2"), "conv2", bn_reference)


# ------------------------------------------------------------------------------------------------ plain


def plain_net(params, x, relu=lambda z: jnp.maximum(z, 0), relu6=lambda z: jnp.clip(z, 0, 6)):
    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    with jax.named_scope("features"):
        x = conv(x, params["w1"])
        x = relu(x)
        x = relu6(conv(x, params["w2"]))
    with jax.named_scope("pool"):
        x = x.mean(axis=(1, 2))
    return x @ params["fc"]


def plain_case():
    k1, k2, k3 = jax.random.split(jax.random.key(5), 3)
    params = {"w1": jax.random.normal(k1, (3, 3, 3, 8)) * 0.5, "w2": jax.random.normal(k2, (3, 3, 8, 8)) * 0.3,
              "fc": jax.random.normal(k3, (8, CLASSES))}
    model, variables = models.wrap(plain_net, params, input_size=SIZE)

    def reference(images, layer=None, delta=None):
        assert layer == "features"
        x = jax.lax.conv_general_dilated(images, params["w1"], (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        x = jnp.clip(jax.lax.conv_general_dilated(jnp.maximum(x, 0), params["w2"], (1, 1), "SAME",
                                                  dimension_numbers=("NHWC", "HWIO", "NHWC")), 0, 6)
        a = x + (delta if delta is not None else 0)
        return a.mean(axis=(1, 2)) @ params["fc"], a

    def direct(relu=lambda z: jnp.maximum(z, 0), relu6=lambda z: jnp.clip(z, 0, 6)):
        return lambda images: plain_net(params, images, relu, relu6 if relu6 is not None else relu)

    return Case(model, variables, direct, reference, ("features",), "features")


CASES = {"linen": linen_case, "jax_resnet": jax_resnet_case, "haiku": haiku_case, "nnx": nnx_case,
         "equinox": equinox_case, "plain": plain_case}
