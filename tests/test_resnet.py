"""ResNet-50 against torchvision, on random weights with non-trivial BN statistics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torchvision

from jaxviz import models
from jaxviz.models import IMAGENET_MEAN, IMAGENET_STD

from conftest import PARITY_RTOL, assert_close_to_max, randomize_batchnorm, to_nchw, to_nhwc, torch_state_dict_numpy

STAGE_OUTPUTS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool")
SIZE = 128  # ResNet is fully convolutional up to the global pool; small inputs keep the test fast


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    net = torchvision.models.resnet50()
    randomize_batchnorm(net, seed=2)
    return net, models.convert_state_dict("resnet50", torch_state_dict_numpy(net))


def _torch_forward(net, x, names):
    outputs = {}
    hooks = [net.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o.clone()))
             for n in names]
    mean, std = np.array(IMAGENET_MEAN, np.float32), np.array(IMAGENET_STD, np.float32)
    with torch.no_grad():
        logits = net(to_nchw((x - mean) / std))
    for h in hooks:
        h.remove()
    return logits.numpy(), {n: to_nhwc(o) for n, o in outputs.items()}


def test_logits_and_every_stage_match_torchvision(pair):
    net, variables = pair
    model = models.build("resnet50")
    x = np.random.default_rng(0).uniform(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    names = STAGE_OUTPUTS + tuple(f"layer{i}.{j}" for i, n in enumerate((3, 4, 6, 3), 1) for j in range(n))
    expected_logits, expected = _torch_forward(net, x, names)
    logits, acts = jax.jit(lambda v, x: model.apply(v, x, capture=names))(variables, jnp.asarray(x))
    for name in names:
        want = expected[name].reshape(acts[name].shape) if name == "avgpool" else expected[name]
        assert_close_to_max(acts[name], want, PARITY_RTOL, name)
    assert_close_to_max(logits, expected_logits, PARITY_RTOL, "logits")


def test_every_nonlinearity_goes_through_act(pair):
    net, variables = pair
    x = np.random.default_rng(1).uniform(size=(1, 64, 64, 3)).astype(np.float32)
    relu_calls = []
    hooks = [m.register_forward_hook(lambda *a: relu_calls.append(1))
             for m in net.modules() if isinstance(m, torch.nn.ReLU)]
    _torch_forward(net, x, ())
    for h in hooks:
        h.remove()
    our_calls = []
    linear = models.build("resnet50").with_act(lambda z: (our_calls.append(1), z)[1])
    linear_logits = linear.apply(variables, jnp.asarray(x))
    assert len(our_calls) == len(relu_calls) == 49

    saved = {n: m for n, m in net.named_modules() if isinstance(m, torch.nn.ReLU)}
    for name in saved:
        parent, _, attr = name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, attr, torch.nn.Identity())
    try:
        expected, _ = _torch_forward(net, x, ())
    finally:
        for name, m in saved.items():
            parent, _, attr = name.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, attr, m)
    assert_close_to_max(linear_logits, expected, PARITY_RTOL, "logits without nonlinearity")


def test_loads_torchvision_checkpoints_from_disk(pair, tmp_path):
    """A torchvision-style .pth (zip), a legacy .pth and a .safetensors all convert the same."""
    from safetensors.torch import save_file

    net, variables = pair
    torch.save(net.state_dict(), tmp_path / "zip.pth")
    torch.save(net.state_dict(), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors"))
    for name in ("zip.pth", "legacy.pth", "w.safetensors"):
        _, loaded = models.load("resnet50", weights=tmp_path / name)
        chex_equal = jax.tree_util.tree_map(lambda a, b: bool(np.array_equal(a, b)), loaded, variables)
        assert all(jax.tree_util.tree_leaves(chex_equal)), name


def test_parameter_count_matches_torchvision():
    model = models.build("resnet50")
    shapes = jax.eval_shape(model.module.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    count = sum(int(np.prod(s.shape)) for s in jax.tree_util.tree_leaves(shapes["params"]))
    assert count == 25_557_032 == sum(p.numel() for p in torchvision.models.resnet50().parameters())


def test_default_weights_offline_fail_in_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXVIZ_CACHE", str(tmp_path))
    manifest = models.hub.manifest()
    entry = dict(manifest["resnet50"], url="http://127.0.0.1:9/resnet50-0676ba61.pth")
    monkeypatch.setattr(models.hub, "manifest", lambda: {**manifest, "resnet50": entry})
    with pytest.raises(models.WeightsNotFoundError) as err:
        models.load("resnet50")
    message = str(err.value)
    assert "\n" not in message
    assert entry["url"] in message
    assert str(tmp_path / "downloads" / "resnet50-0676ba61.pth") in message
