"""The torchvision ports of the model zoo against torchvision, layer by layer, on random weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torchvision

import jaxviz
from jaxviz import models
from jaxviz.models import IMAGENET_MEAN, IMAGENET_STD

from conftest import (
    CAT_CLASSES,
    COFFEE_CLASSES,
    PARITY_RTOL,
    assert_close_to_max,
    randomize_batchnorm,
    to_nchw,
    to_nhwc,
    torch_state_dict_numpy,
)

# name: (torchvision constructor, input side, parameter count)
ZOO = {
    "vgg16": (lambda: torchvision.models.vgg16(), 64, 138_357_544),
    "vgg19": (lambda: torchvision.models.vgg19(), 64, 143_667_240),
    "alexnet": (lambda: torchvision.models.alexnet(), 96, 61_100_840),
    "googlenet": (lambda: torchvision.models.googlenet(aux_logits=False, transform_input=True, init_weights=True),
                  96, 6_624_904),
}


def _torch_layers(net, names):
    """torchvision modules for our layer names (module paths), skipping those torchvision calls functionally."""
    modules = dict(net.named_modules())
    return {n: modules[n] for n in names if n in modules}


@pytest.mark.parametrize("name", list(ZOO))
def test_matches_torchvision_layer_by_layer(name):
    build, size, _ = ZOO[name]
    torch.manual_seed(0)
    net = build().eval()
    randomize_batchnorm(net, seed=4)
    state = torch_state_dict_numpy(net)
    if name == "googlenet":  # the pretrained checkpoints carry the auxiliary heads: they must be dropped
        state.update({f"aux1.fc1.{k}": np.zeros(3, np.float32) for k in ("weight", "bias")})
    variables = models.convert_state_dict(name, state)
    model = models.build(name)
    x = np.random.default_rng(0).uniform(size=(2, size, size, 3)).astype(np.float32)
    outputs = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: outputs.__setitem__(n, o.detach().clone()))
             for n, m in _torch_layers(net, model.layers).items()]
    mean, std = np.array(IMAGENET_MEAN, np.float32), np.array(IMAGENET_STD, np.float32)
    with torch.no_grad():  # GoogLeNet: torchvision's transform_input expects ImageNet-normalized input
        logits = net(to_nchw((x - mean) / std)).numpy()
    for h in hooks:
        h.remove()
    assert len(outputs) >= len(model.layers) - 2, sorted(set(model.layers) - set(outputs))
    ours_logits, acts = jax.jit(lambda v, x: model.apply(v, x, capture=list(outputs)))(variables, jnp.asarray(x))
    for n, o in outputs.items():
        expected = to_nhwc(o)
        assert_close_to_max(acts[n], expected.reshape(acts[n].shape), PARITY_RTOL, n)
    assert_close_to_max(ours_logits, logits, PARITY_RTOL, "logits")


@pytest.mark.parametrize("name", list(ZOO))
def test_parameter_counts(name):
    build, _, count = ZOO[name]
    model = models.build(name)
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    ours = sum(int(np.prod(s.shape)) for s in jax.tree_util.tree_leaves(shapes["params"]))
    assert ours == count == sum(p.numel() for p in build().parameters())


def test_alexnet_first_layer_is_64_filters_of_11x11x3():
    model = models.build("alexnet")
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    assert shapes["params"]["features.0"]["kernel"].shape == (11, 11, 3, 64)


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite_real_weights_classify_the_photos(name):
    model, variables = models.load(name)
    x = np.stack([jaxviz.io.image.sample(s, model.input_size) for s in ("chelsea", "coffee")])
    top = np.asarray(jnp.argmax(jax.jit(model.apply)(variables, jnp.asarray(x)), -1))
    assert top[0] in CAT_CLASSES and top[1] in COFFEE_CLASSES


def test_every_listed_layer_is_in_the_traced_forward_pass():
    """The registry's layer names (module paths, named scopes, aliases) resolve, in forward order, at 224 px."""
    for name in models.available():
        model = models.build(name)
        variables = jax.eval_shape(lambda m=model: m.init(jax.random.key(0)))
        size = model.input_size
        graph = model.trace(variables, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
        paths = [dict(model.aliases).get(n, n) for n in model.layers]
        assert [p for p in paths if p not in graph.layers] == [], name
        order = [list(graph.layers).index(p) for p in paths]
        assert order == sorted(order), name
