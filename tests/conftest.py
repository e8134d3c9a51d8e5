"""Shared fixtures. Tolerances are named constants, passed explicitly."""

from __future__ import annotations

import os
import tempfile

import jax
import numpy as np
import pytest

jax.config.update("jax_default_matmul_precision", "highest")
# Keep converted weights out of the user's cache; one directory per test session.
os.environ.setdefault("JAXVIZ_CACHE", tempfile.mkdtemp(prefix="jaxviz-test-cache-"))
os.environ.setdefault("KERAS_BACKEND", "jax")  # Keras 3 is a test-only reference, on JAX

#: max |a - b| relative to the largest magnitude of the reference (ports on random weights).
PARITY_RTOL = 1e-4
#: max |softmax difference| against the PyTorch reference on real weights.
SOFTMAX_ATOL = 1e-4

CAT_CLASSES = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
COFFEE_CLASSES = {967, 968}  # espresso, cup


def assert_close_to_max(actual, expected, rtol: float, what: str = "") -> None:
    """max |actual - expected| <= rtol * max |expected|."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = np.abs(expected).max()
    err = np.abs(actual - expected).max()
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol} x {scale:.3g}"


def randomize_batchnorm(torch_model, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters, so conversion errors show."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in torch_model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    torch_model.eval()


def torch_state_dict_numpy(torch_model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}


def to_nchw(x) -> torch.Tensor:  # noqa: F821
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(x), (0, 3, 1, 2))))


def to_nhwc(t) -> np.ndarray:
    t = t.detach().cpu().numpy()
    return np.transpose(t, (0, 2, 3, 1)) if t.ndim == 4 else t


@pytest.fixture(scope="session")
def lite0():
    from jaxviz import models

    return models.load("efficientnet_lite0")


@pytest.fixture(scope="session")
def photos():
    """chelsea and coffee at 224 px (short side resized, center-cropped)."""
    from jaxviz import image

    return np.stack([image.sample("chelsea", 224), image.sample("coffee", 224)])
