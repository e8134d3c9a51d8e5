"""The model contract, checked the same way on every port."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxviz import models

from conftest import assert_close_to_max

BATCH_RTOL = 1e-5  # per-image vs batched forward, relative to the largest logit
PORTS = {
    "efficientnet_lite0": dict(params=4_652_008, bn_layers=49, acts=33, first_bn="bn0", last_bn="bn1"),
    "resnet50": dict(params=25_557_032, bn_layers=53, acts=49, first_bn="bn1", last_bn="layer4.2.bn3"),
}


@pytest.fixture(scope="module", params=list(PORTS))
def port(request):
    model, variables = models.load(request.param, weights=None, key=jax.random.key(0))
    return request.param, model, variables


def _count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def test_record(port):
    name, model, variables = port
    assert model.name == name and model.input_size == 224 and model.num_classes == 1000
    assert _count(variables["params"]) == PORTS[name]["params"]
    assert hash(model) == hash(models.build(name))  # hashable: usable as a static jit argument


def test_layers_are_capturable_in_forward_order(port):
    _, model, variables = port
    x = jnp.zeros((2, 64, 64, 3))
    logits, acts = model.apply(variables, x, capture=model.layers)
    assert list(acts) == [n for n in model.layers]  # recorded in forward order, every one reachable
    sides = [a.shape[1] for a in acts.values() if a.ndim == 4]
    assert sides == sorted(sides, reverse=True)  # resolution only shrinks along the list
    assert model.layers[-2:] == ("avgpool", "fc")
    chex.assert_shape(acts["avgpool"], (2, None))
    np.testing.assert_array_equal(acts["fc"], logits)


def test_unknown_layer_lists_the_valid_names(port):
    _, model, variables = port
    with pytest.raises(ValueError, match="unknown layer 'nope'.*" + model.layers[3].replace(".", r"\.")):
        model.apply(variables, jnp.zeros((1, 32, 32, 3)), capture=["nope"])


def test_random_init_follows_the_key(port):
    name, _, variables = port
    _, same = models.load(name, weights=None, key=jax.random.key(0))
    _, other = models.load(name, weights=None, key=jax.random.key(1))
    chex.assert_trees_all_equal(same["params"], variables["params"])
    assert not np.array_equal(other["params"]["fc"]["kernel"], variables["params"]["fc"]["kernel"])


def test_act_is_injected_everywhere(port):
    name, model, variables = port
    calls = []
    model.with_act(lambda z: (calls.append(z.shape), jax.nn.relu(z))[1]).apply(variables, jnp.zeros((1, 32, 32, 3)))
    assert len(calls) == PORTS[name]["acts"]
    assert model.with_act(jax.nn.relu).act is jax.nn.relu
    assert model.act is not jax.nn.relu or name == "resnet50"


def test_batch_independence(port):
    _, model, variables = port
    x = jax.random.uniform(jax.random.key(3), (3, 64, 64, 3))
    batched = model.apply(variables, x)
    for i in range(3):
        assert_close_to_max(model.apply(variables, x[i:i + 1])[0], batched[i], BATCH_RTOL, f"image {i}")


def test_no_recompile_for_new_values(port):
    _, model, variables = port
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def forward(v, x):
        return model.apply(v, x, capture=["avgpool"])

    forward(variables, jnp.zeros((2, 64, 64, 3)))
    forward(variables, jnp.ones((2, 64, 64, 3)))  # same shapes, new values: no retrace


def test_batchnorm_inputs_are_reachable(port):
    name, model, variables = port
    x = jax.random.uniform(jax.random.key(4), (2, 64, 64, 3))
    logits, seen = models.bn_inputs(model, variables, x)
    bn_paths = {".".join(k[:-1]) for k in traverse_util.flatten_dict(variables["batch_stats"])}
    assert set(seen) == bn_paths and len(seen) == PORTS[name]["bn_layers"]
    # in forward order (DeepInversion weights the first layer's term)
    assert (list(seen)[0], list(seen)[-1]) == (PORTS[name]["first_bn"], PORTS[name]["last_bn"]), list(seen)
    for path, inp in seen.items():
        assert inp.shape[-1] == _bn_channels(variables, path)
    np.testing.assert_allclose(logits, model.apply(variables, x), rtol=1e-6)


def _bn_channels(variables, path):
    flat = traverse_util.flatten_dict(variables["batch_stats"], sep="/")
    matches = [v for k, v in flat.items() if k.replace("/", ".") == f"{path}.mean"]
    assert len(matches) == 1, path
    return matches[0].shape[0]


@pytest.mark.parametrize("bad, error", [
    (np.zeros((2, 32, 32, 1), np.float32), ValueError),
    (np.zeros((32, 32, 3), np.float32), ValueError),
    (np.zeros((1, 32, 32, 3), np.uint8), TypeError),
])
def test_bad_images_are_clear_errors(port, bad, error):
    _, model, variables = port
    with pytest.raises(error, match="images must"):
        model.apply(variables, bad)


def test_unknown_model_lists_available():
    with pytest.raises(ValueError, match="available models: .*resnet50"):
        models.load("vgg99")
