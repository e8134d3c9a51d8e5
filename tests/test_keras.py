"""Keras Applications .h5 weights: VGG16, VGG19 and ResNet50 against Keras 3 (JAX backend), random weights."""

from __future__ import annotations

import h5py
import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

from jaxviz import models

from conftest import PARITY_RTOL, assert_close_to_max

# port: (Keras constructor, caffe preprocess_input, {Keras layer: our layer})
CASES = {
    "vgg16_keras": (keras.applications.VGG16, keras.applications.vgg16.preprocess_input,
                    {"block1_conv1": "features.1", "block3_pool": "features.16", "block5_pool": "features.30",
                     "fc1": "classifier.1", "fc2": "classifier.4"}),
    "vgg19_keras": (keras.applications.VGG19, keras.applications.vgg19.preprocess_input,
                    {"block2_conv2": "features.8", "block5_conv4": "features.35", "fc2": "classifier.4"}),
    "resnet50_keras": (keras.applications.ResNet50, keras.applications.resnet50.preprocess_input,
                       {"conv1_relu": "relu", "conv2_block3_out": "layer1.2", "conv3_block4_out": "layer2.3",
                        "conv4_block6_out": "layer3.5", "conv5_block3_out": "layer4.2", "avg_pool": "avgpool"}),
}


def _randomize_batchnorm(net, seed=0):
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.uniform(-0.5, 0.5, n),
                               rng.uniform(-0.5, 0.5, n), rng.uniform(0.5, 2.0, n)])


@pytest.mark.parametrize("name", list(CASES))
def test_h5_weights_match_keras_layer_by_layer(name, tmp_path):
    build, preprocess, layers = CASES[name]
    keras.utils.set_random_seed(0)
    net = build(weights=None)
    _randomize_batchnorm(net)
    path = tmp_path / f"{name}.h5"
    with h5py.File(path, "w") as f:  # the legacy layout Keras Applications' downloads use
        legacy_h5_format.save_weights_to_hdf5_group(f, net)
    model, variables = models.load(name, weights=path)

    x = np.random.default_rng(1).uniform(size=(2, 224, 224, 3)).astype(np.float32)
    probe = keras.Model(net.input, [net.get_layer(k).output for k in layers] + [net.output])
    *expected, probs = [np.asarray(o) for o in probe(preprocess(x * 255.0))]
    logits, acts = jax.jit(lambda v, x: model.apply(v, x, capture=list(layers.values())))(variables, jnp.asarray(x))
    for (k, ours), want in zip(layers.items(), expected, strict=True):
        assert_close_to_max(acts[ours], want.reshape(acts[ours].shape), PARITY_RTOL, f"{k} -> {ours}")
    assert_close_to_max(jax.nn.softmax(logits), probs, PARITY_RTOL, "predictions")


def test_keras_weights_need_a_keras_port(tmp_path):
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"block1_conv1"]
    with pytest.raises(ValueError, match="load into"):
        models.load("resnet50", weights=path)
    with pytest.raises(ValueError, match="no counterpart"):
        models.keras_h5.keras_state_dict("vgg16_keras", {"mystery": {"kernel": np.zeros(1)}})
