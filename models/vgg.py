"""VGG16 / VGG19 and AlexNet in torchvision's layout.

Module and layer names are torchvision's (``features.0`` ... ``features.30``,
``avgpool``, ``classifier.0`` ... ``classifier.6``; dropout is the identity at
inference and has no layer). The classifier flattens in PyTorch's (C, H, W)
order after torchvision's adaptive average pooling, so ``classifier.0`` converts
exactly.

References:
    Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale
    Image Recognition", ICLR 2015. Krizhevsky et al., "ImageNet Classification
    with Deep Convolutional Neural Networks", NeurIPS 2012 (torchvision's
    single-tower variant).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from .layers import adaptive_avg_pool, conv, flatten_nchw, max_pool

# Each entry of ``features``: ("conv", out, kernel, stride, padding) | ("pool", kernel, stride).
VGG_STAGES = {
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
ALEXNET_FEATURES = (("conv", 64, 11, 4, 2), ("pool", 3, 2), ("conv", 192, 5, 1, 2), ("pool", 3, 2),
                    ("conv", 384, 3, 1, 1), ("conv", 256, 3, 1, 1), ("conv", 256, 3, 1, 1), ("pool", 3, 2))


def vgg_features(name: str) -> tuple:
    spec = []
    for convs, width in zip(VGG_STAGES[name], (64, 128, 256, 512, 512), strict=True):
        spec += [("conv", width, 3, 1, 1)] * convs + [("pool", 2, 2)]
    return tuple(spec)


def _feature_names(features: tuple) -> list[str]:
    """torchvision's Sequential indices: a conv is followed by its ReLU."""
    names, i = [], 0
    for layer in features:
        if layer[0] == "conv":
            names += [f"features.{i}", f"features.{i + 1}"]
            i += 2
        else:
            names.append(f"features.{i}")
            i += 1
    return names


def _classifier_indices(alexnet: bool) -> tuple[int, int, int]:
    """Where torchvision's Linear layers sit in ``classifier`` (AlexNet starts with a dropout)."""
    return (1, 4, 6) if alexnet else (0, 3, 6)


def layer_names(features: tuple, alexnet: bool = False) -> tuple[str, ...]:
    fc1, fc2, fc3 = _classifier_indices(alexnet)
    classifier = [fc1, fc1 + 1, fc2, fc2 + 1, fc3]
    return (*_feature_names(features), "avgpool", *(f"classifier.{i}" for i in classifier))


class ConvNet(nn.Module):
    """A plain conv/pool stack with a three-layer classifier (VGG, AlexNet)."""

    features: tuple
    pool_size: int = 7  # the adaptive pooling's output side
    alexnet: bool = False  # classifier indices differ (dropout first)
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x):
        i = 0
        for layer in self.features:
            if layer[0] == "conv":
                _, width, k, s, p = layer
                x = conv(width, k, s, p, bias=True, name=f"features.{i}")(x)
                with jax.named_scope(f"features.{i + 1}"):
                    x = nn.relu(x)
                i += 2
            else:
                with jax.named_scope(f"features.{i}"):
                    x = max_pool(x, layer[1], layer[2])
                i += 1
        with jax.named_scope("avgpool"):
            x = adaptive_avg_pool(x, self.pool_size, self.pool_size)
        x = flatten_nchw(x)
        fc = _classifier_indices(self.alexnet)
        for k in fc[:2]:
            x = nn.Dense(4096, name=f"classifier.{k}")(x)
            with jax.named_scope(f"classifier.{k + 1}"):
                x = nn.relu(x)
        return nn.Dense(self.num_classes, name=f"classifier.{fc[2]}")(x)
