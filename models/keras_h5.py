"""Keras Applications ``.h5`` weight files (VGG16, VGG19, ResNet50) onto the ports.

Reads the legacy HDF5 weight layout that ``keras.applications`` downloads
(``layer_names`` attribute, one group per layer, ``weight_names`` inside; a
full-model file nests them under ``model_weights``). Keras layer names are
mapped onto the ports' module names and the arrays laid out as in a PyTorch
state_dict, so the shared converter checks every key and shape.

Keras kernels are HWIO and dense kernels (in, out); VGG's ``fc1`` rows are in
Keras's (H, W, C) flatten order and are permuted to the port's (C, H, W).
"""

from __future__ import annotations

import os
import re

import numpy as np

__all__ = ["read_keras_h5", "keras_state_dict", "KERAS_NAMES"]

# Keras variable -> PyTorch state_dict leaf.
_VARS = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
         "moving_mean": "running_mean", "moving_variance": "running_var"}


def read_keras_h5(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """``{keras_layer: {variable: array}}`` from a Keras (legacy HDF5) weights file."""
    try:
        import h5py
    except ImportError:
        raise ImportError("reading Keras .h5 weights needs h5py: pip install 'jaxviz[keras]'") from None
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise ValueError(f"{path}: not a Keras weights file (no layer_names attribute)")
        out = {}
        for raw in root.attrs["layer_names"]:
            layer = raw.decode() if isinstance(raw, bytes) else str(raw)
            group = root[layer]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
            if names:
                out[layer] = {re.sub(r":\d+$", "", n).split("/")[-1]: np.asarray(group[n]) for n in names}
    return out


def _vgg_names(convs_per_block: tuple[int, ...]) -> dict[str, str]:
    names, i = {}, 0
    for b, n in enumerate(convs_per_block, start=1):
        for c in range(1, n + 1):
            names[f"block{b}_conv{c}"] = f"features.{i}"
            i += 2  # conv, ReLU
        i += 1  # pool
    return names | {"fc1": "classifier.0", "fc2": "classifier.3", "predictions": "classifier.6"}


def _resnet50_names() -> dict[str, str]:
    names = {"conv1_conv": "conv1", "conv1_bn": "bn1", "predictions": "fc"}
    for stage, blocks in zip((2, 3, 4, 5), (3, 4, 6, 3), strict=True):
        for b in range(1, blocks + 1):
            ours = f"layer{stage - 1}.{b - 1}"
            for k in (1, 2, 3):
                names[f"conv{stage}_block{b}_{k}_conv"] = f"{ours}.conv{k}"
                names[f"conv{stage}_block{b}_{k}_bn"] = f"{ours}.bn{k}"
            names[f"conv{stage}_block{b}_0_conv"] = f"{ours}.downsample.0"
            names[f"conv{stage}_block{b}_0_bn"] = f"{ours}.downsample.1"
    return names


KERAS_NAMES = {
    "vgg16_keras": _vgg_names((2, 2, 3, 3, 3)),
    "vgg19_keras": _vgg_names((2, 2, 4, 4, 4)),
    "resnet50_keras": _resnet50_names(),
}


def _torch_layout(var: str, value: np.ndarray) -> np.ndarray:
    if var == "kernel" and value.ndim == 4:
        return np.transpose(value, (3, 2, 0, 1))  # HWIO -> OIHW
    if var == "kernel" and value.ndim == 2:
        return value.T  # (in, out) -> (out, in)
    return value


def keras_state_dict(name: str, layers: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A PyTorch-layout state_dict for the port ``name`` from :func:`read_keras_h5`'s layers.

    Raises:
        ValueError: a Keras layer has no counterpart in the port.
    """
    mapping = KERAS_NAMES[name]
    state = {}
    for layer, variables in layers.items():
        if layer not in mapping:
            raise ValueError(f"Keras layer {layer!r} has no counterpart in {name}; expected layers like "
                             f"{', '.join(list(mapping)[:4])}, ...")
        for var, value in variables.items():
            if var not in _VARS:
                raise ValueError(f"unexpected Keras variable {layer}/{var}")
            if layer == "fc1" and var == "kernel":  # (H*W*C, out) in Keras order -> (C*H*W, out)
                side = int(round((value.shape[0] // 512) ** 0.5))
                value = value.reshape(side, side, 512, -1).transpose(2, 0, 1, 3).reshape(value.shape[0], -1)
            state[f"{mapping[layer]}.{_VARS[var]}"] = _torch_layout(var, value)
    return state
