"""EfficientNet-Lite0 against the efficientnet-lite-pytorch reference."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from efficientnet_lite_pytorch import EfficientNet

from jaxviz import models
from jaxviz.core import forward
from jaxviz.models import IMAGENET_MEAN, IMAGENET_STD, hub

from conftest import (
    CAT_CLASSES,
    COFFEE_CLASSES,
    PARITY_RTOL,
    SOFTMAX_ATOL,
    assert_close_to_max,
    randomize_batchnorm,
    to_nchw,
    to_nhwc,
    torch_state_dict_numpy,
)


def _reference(weights: str | None):
    net = EfficientNet.from_name("efficientnet-lite0")
    if weights:
        state = {k: torch.from_numpy(v) for k, v in models.read_pth(weights).items()}
        net.load_state_dict(state)
    net.eval()
    return net


def _normalize(x):
    return (np.asarray(x) - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)


def test_real_weights_classify_the_photos(lite0, photos):
    model, variables = lite0
    top = np.asarray(jnp.argmax(forward.logits(model, variables, jnp.asarray(photos)), -1))  # compiled, shared
    assert top[0] in CAT_CLASSES
    assert top[1] in COFFEE_CLASSES


def test_real_weights_softmax_matches_reference(lite0, photos):
    model, variables = lite0
    ours = np.asarray(jax.nn.softmax(forward.logits(model, variables, jnp.asarray(photos)), -1))
    net = _reference(str(hub.fetch("efficientnet_lite0")))
    with torch.no_grad():
        theirs = torch.softmax(net(to_nchw(_normalize(photos))), -1).numpy()
    assert np.abs(ours - theirs).max() <= SOFTMAX_ATOL
    assert np.argmax(theirs, -1).tolist() == np.argmax(ours, -1).tolist()


def _random_pair():
    torch.manual_seed(0)
    net = _reference(None)
    randomize_batchnorm(net, seed=1)
    return net, models.convert_state_dict("efficientnet_lite0", torch_state_dict_numpy(net))


def test_every_block_matches_reference_on_random_weights():
    net, variables = _random_pair()
    model = models.build("efficientnet_lite0")
    x = np.random.default_rng(0).uniform(size=(2, 224, 224, 3)).astype(np.float32)
    outputs = {}
    hooks = [b.register_forward_hook(lambda m, i, o, k=k: outputs.__setitem__(f"blocks.{k}", o))
             for k, b in enumerate(net._blocks)]
    hooks.append(net._bn1.register_forward_hook(lambda m, i, o: outputs.__setitem__("head", torch.clamp(o, 0, 6))))
    with torch.no_grad():
        outputs["fc"] = net(to_nchw(_normalize(x)))
    for h in hooks:
        h.remove()
    names = [n for n in model.layers if n in outputs]
    assert len(names) == len(net._blocks) + 2
    logits, acts = jax.jit(lambda v, x: model.apply(v, x, capture=names))(variables, jnp.asarray(x))
    for name in names:
        assert_close_to_max(acts[name], to_nhwc(outputs[name]), PARITY_RTOL, name)
    assert_close_to_max(logits, outputs["fc"].numpy(), PARITY_RTOL, "logits")


def test_every_nonlinearity_goes_through_act():
    """With act = identity we must equal the reference with every ReLU6 removed."""
    net, variables = _random_pair()
    calls = []
    net.apply(lambda m: isinstance(m, torch.nn.ReLU6) and m.register_forward_hook(lambda *a: calls.append(1)))
    x = np.random.default_rng(1).uniform(size=(1, 224, 224, 3)).astype(np.float32)
    with torch.no_grad():
        net(to_nchw(_normalize(x)))
    ours = []
    model = models.build("efficientnet_lite0").with_act(lambda z: (ours.append(1), z)[1])
    linear_logits = jax.jit(model.apply)(variables, jnp.asarray(x))  # act runs (and counts) once, when traced
    assert len(ours) == len(calls) > 0

    for m in net.modules():
        if hasattr(m, "_swish"):
            m._swish = torch.nn.Identity()
    with torch.no_grad():
        expected = net(to_nchw(_normalize(x))).numpy()
    assert_close_to_max(linear_logits, expected, PARITY_RTOL, "logits without nonlinearity")


def test_runs_with_torch_not_importable(tmp_path):
    """The embedded default needs no PyTorch: block the import and classify."""
    script = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import jax.numpy as jnp
        from jaxviz import models
        from jaxviz.io import image
        model, variables = models.load("efficientnet_lite0")
        x = jnp.asarray(image.sample("chelsea", 224))[None]
        print(int(jnp.argmax(model.apply(variables, x))))
    """)
    env = {"JAXVIZ_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert int(out.stdout.strip()) in CAT_CLASSES
    assert (tmp_path / "converted").is_dir()  # converted once, cached


@pytest.mark.parametrize("size", [160, 300])
def test_other_resolutions_run(lite0, size):
    model, variables = lite0
    x = jnp.zeros((1, size, size, 3))
    assert forward.logits(model, variables, x).shape == (1, 1000)
