"""InceptionV1 (Lucid's inception5h) against Lucent's InceptionV1 definition, on random weights.

The reference is torch-lucent's ``lucent.modelzoo.inceptionv1.InceptionV1``
(with plain ReLUs), which hard-codes the TensorFlow SAME paddings of a 224 px
input; the comparison runs at 224 px.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from lucent.modelzoo.inceptionv1.InceptionV1 import InceptionV1

from jaxviz import models
from jaxviz.models.inception_v1 import local_response_norm

from conftest import PARITY_RTOL, assert_close_to_max, to_nchw, to_nhwc, torch_state_dict_numpy


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    net = InceptionV1(pretrained=False, redirected_ReLU=False).eval()
    return net, models.convert_state_dict("inception_v1", torch_state_dict_numpy(net))


def test_every_layer_matches_lucent(pair):
    net, variables = pair
    model = models.build("inception_v1")
    x = np.random.default_rng(0).uniform(size=(2, 224, 224, 3)).astype(np.float32)
    outputs = {}
    names = [n for n in model.layers if hasattr(net, n) and n not in ("avgpool0",)]
    hooks = [getattr(net, n).register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o.detach().clone()))
             for n in names]
    with torch.no_grad():
        probs = net(to_nchw(x * 255 - 117)).numpy()
    for h in hooks:
        h.remove()
    assert {"conv2d0", "mixed3a", "mixed4e", "mixed5b"} <= set(outputs)
    logits, acts = jax.jit(lambda v, x: model.apply(v, x, capture=list(outputs)))(variables, jnp.asarray(x))
    for n, o in outputs.items():
        assert_close_to_max(acts[n], to_nhwc(o), PARITY_RTOL, n)
    assert_close_to_max(jax.nn.softmax(logits), probs, PARITY_RTOL, "softmax2")


def test_parameter_count_matches_lucent(pair):
    net, variables = pair
    ours = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(variables["params"]))
    assert ours == sum(p.numel() for p in net.parameters()) == 7_066_380


def test_local_response_norm_matches_torch():
    x = np.random.default_rng(1).normal(size=(2, 5, 5, 13)).astype(np.float32) * 10
    ours = local_response_norm(jnp.asarray(x), size=9, alpha=1e-4, beta=0.5, k=1.0)
    theirs = torch.nn.functional.local_response_norm(to_nchw(x), size=9, alpha=1e-4, beta=0.5, k=1.0)
    assert_close_to_max(ours, to_nhwc(theirs), 1e-6, "lrn")


def test_default_weights_are_not_downloaded_unverified():
    with pytest.raises(models.WeightsNotFoundError, match="weights=PATH"):
        models.load("inception_v1")
