"""DeepInversion's pieces: the BN-statistic loss against a PyTorch-hook reference, JS divergence, sharding.

The full method's acceptance checks (digits distillation, ImageNet-scale recognizability, benchmarks) are
issue 7's remaining work; what is here is tested on its own.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxviz.core import loop
from jaxviz.datafree import deepinversion as di
from jaxviz.io import image
from jaxviz.synthesis import quality

from conftest import to_nchw, torch_bn_terms, torch_lite0

#: relative agreement of the BN loss with the PyTorch-hook computation (float32 sums over 49 layers).
BN_LOSS_RTOL = 1e-4
#: max |8-device images - 1-device images|.
SHARDING_ATOL = 1e-5


def _torch_bn_loss(net, x, first_bn_weight):
    """||mean - running_mean|| + ||var - running_var|| at every BatchNorm2d input, via forward hooks."""
    with torch_bn_terms(net) as terms, torch.no_grad():
        net(x)
    return float(first_bn_weight * terms[0] + sum(terms[1:]))


def test_bn_statistics_loss_matches_pytorch_hooks_and_prefers_photos(lite0):
    model, variables = lite0
    # jitted: run op by op, Lite0's first call compiles every operation on its own (26 s against 5 s)
    loss = jax.jit(functools.partial(di.bn_statistics_loss, model, first_bn_weight=10.0))
    photos = np.stack([image.sample(n, 128) for n in ("chelsea", "coffee", "astronaut")])
    ours, logits = loss(variables, jnp.asarray(photos))
    theirs = _torch_bn_loss(torch_lite0(128), to_nchw(photos), 10.0)
    np.testing.assert_allclose(float(ours), theirs, rtol=BN_LOSS_RTOL)
    assert logits.shape == (3, 1000)
    noise = jnp.clip(0.5 + 0.2 * jax.random.normal(jax.random.key(0), (3, 224, 224, 3)), 0, 1)
    real = jnp.asarray(np.stack([image.sample(n, 224) for n in ("chelsea", "coffee", "astronaut")]))
    plain = jax.jit(functools.partial(di.bn_statistics_loss, model))  # the first layer weighted 1
    assert float(plain(variables, real)[0]) < float(plain(variables, noise)[0])


def test_js_divergence_bounds():
    a = jnp.array([[10.0, -10.0], [0.0, 0.0]])
    b = jnp.array([[-10.0, 10.0], [0.0, 0.0]])
    js = np.asarray(di.js_divergence(a, b))
    np.testing.assert_allclose(js, [np.log(2), 0.0], atol=1e-4)


def test_learning_rate_warms_up_then_decays():
    s = di.Settings(lr=0.2, warmup=10)
    lrs = np.asarray([float(di.learning_rate(i, 100, s)) for i in range(100)])
    assert np.argmax(lrs) == 9 and abs(lrs.max() - 0.2) < 1e-6
    assert np.all(np.diff(lrs[10:]) <= 1e-9) and lrs[-1] < 0.01


SHARDING_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from jaxviz.core import sharding
    from jaxviz.datafree import deepinversion as di
    from jaxviz.models import digits_cnn as digits
    assert jax.device_count() == 8, jax.devices()
    model = digits.build()  # small and BN-rich: the sharded BN statistics are what is under test
    variables = jax.tree.map(lambda a: a.astype(np.float64), model.init(jax.random.key(1), 32))
    out = {}
    for n in (1, 8):
        mesh = sharding.batch_mesh(n)
        r = di.deepinversion(jax.random.key(0), model, variables, list(range(8)), size=32, steps=4, chunk=2,
                             mesh=mesh, progress=False)
        assert r.images.dtype == np.float64
        out[n] = np.asarray(r.images)
        assert len(r.images.sharding.device_set) == n
    print(json.dumps({"max_diff": float(np.abs(out[1] - out[8]).max()), "moved": float(np.abs(out[1] - 0.5).mean())}))
""")


def test_eight_simulated_devices_give_the_images_of_one():
    """In float64: Adam divides by the gradient's own magnitude, so in float32 a gradient entry that is a
    near-cancellation (|g| ~ 1e-9) moves by its rounding difference between reduction orders (8 partial sums
    vs 1) and the images part by ~5e-3 within 3 steps; in float64 that rounding is 1e-16 relative."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu",
           "JAX_ENABLE_X64": "1"}
    proc = subprocess.run([sys.executable, "-c", SHARDING_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["max_diff"] <= SHARDING_ATOL, result
    assert result["moved"] > 0.01  # the run did change the images


def _digits_random():
    from jaxviz.models import digits_cnn as digits_model

    model = digits_model.build()
    return model, model.init(jax.random.key(3), 32)


@pytest.mark.parametrize("param", [None, "maco"])
def test_interrupted_run_resumes_from_its_checkpoint_with_the_same_images(tmp_path, param):
    from jaxviz.synthesis.param import Maco

    model, variables = _digits_random()
    settings = di.Settings(lr=0.05, warmup=2, jitter=2, flip=False, low_res_fraction=0.5,
                           param=Maco() if param == "maco" else None)
    run = dict(size=32, steps=8, settings=settings, chunk=2, progress=False)
    whole = di.deepinversion(jax.random.key(0), model, variables, [1, 2, 3, 4], **run)
    ckpt = tmp_path / "run"

    def dies_at_six(step, loss):  # an interruption in the third chunk
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        di.deepinversion(jax.random.key(0), model, variables, [1, 2, 3, 4], checkpoint=ckpt, callback=dies_at_six,
                         **run)
    assert loop.checkpoint_step(ckpt) == 4  # the last complete chunk
    resumed = di.deepinversion(jax.random.key(0), model, variables, [1, 2, 3, 4], checkpoint=ckpt, **run)
    np.testing.assert_allclose(np.asarray(resumed.images), np.asarray(whole.images), atol=1e-6)
    with pytest.raises(ValueError, match="different run"):
        di.deepinversion(jax.random.key(1), model, variables, [1, 2, 3, 4], checkpoint=ckpt, **run)
    for f in ckpt.rglob("*"):  # a damaged checkpoint: every file truncated
        if f.is_file():
            f.write_bytes(b"truncated")
    with pytest.raises(ValueError, match="unreadable"):
        di.deepinversion(jax.random.key(0), model, variables, [1, 2, 3, 4], checkpoint=ckpt, **run)


def test_bad_input_is_refused():
    model, variables = _digits_random()
    with pytest.raises(ValueError, match=r"class indices in \[0, 10\)"):
        di.deepinversion(jax.random.key(0), model, variables, [3, 10], steps=1)
    with pytest.raises(ValueError, match="needs a student"):
        di.deepinversion(jax.random.key(0), model, variables, [3], steps=1, settings=di.Settings(adi=1.0))
    with pytest.raises(ValueError, match="no BatchNorm"):
        di.deepinversion(jax.random.key(0), model, {"params": variables["params"]}, [3], steps=1)


#: the ten classes of the class-visualization test; Lite1 must have at least this many first and in its top 5
IMAGENET_CLASSES = quality.TEN_CLASSES
MIN_TOP1, MIN_TOP5 = 6, 9
#: the pictures' noise statistics may exceed the bundled photos' by at most this factor
MAX_NOISE_RATIO = 1.5


def test_ten_inverted_classes_are_recognized_by_an_independent_network_and_look_natural(lite0):
    """The CLI's defaults (300 steps, 224 px, the recommended settings: MACO at lr 0.25 on Lite0); Lite1 judges."""
    from jaxviz import cli, models

    model, variables = lite0
    images = di.deepinversion(jax.random.key(0), model, variables, IMAGENET_CLASSES, steps=cli.DEEPINVERSION_STEPS,
                              settings=di.recommended(model), progress=False).images
    judge, judge_vars = models.load("efficientnet_lite1")
    seen = quality.recognition(judge, judge_vars, images, IMAGENET_CLASSES)
    assert seen.top1.sum() >= MIN_TOP1 and seen.top5.sum() >= MIN_TOP5, f"Lite1 ranks: {seen.rank.tolist()}"
    ratios = quality.noise_ratios(images, model.input_size)
    assert max(ratios) <= MAX_NOISE_RATIO, ratios
