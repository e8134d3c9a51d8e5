"""LRP vs Zennit 0.5.1 on torchvision VGG16 and ResNet-50, identical random weights and inputs, float64.

Zennit's input is the normalized tensor, jaxviz's relevance is on the network's input after its preprocessing:
the same tensor. Zennit's output relevance is given as the one-hot target times the logits, jaxviz's default.

ResNet-50 runs with Zennit's ``ResNetCanonizer`` (BatchNorm merged into the convolutions, the residual ``+`` a
``Sum`` module with the ``Norm`` rule); jaxviz reads the same merged layers from the jaxpr. Zennit's merge leaves
each BatchNorm computing ``x / sqrt(1 + eps)`` (it sets the variance to 1 and keeps ``eps``), so its canonized
network is not the original one (logits move by 7e-5 relative here); the reference network is therefore written
with ``eps`` folded into its running variance (``var + eps`` and ``eps = 0``: the same function), which Zennit's
merge leaves exact. A third of the BatchNorm scales are negative, so the sign-dependent rules (z+, alpha-beta,
gamma) see merged weights whose signs flipped.
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torchvision
import zennit.composites as zc
import zennit.rules as zr
import zennit.torchvision as zt
import zennit.types as ztypes
from zennit.attribution import Gradient

import jaxviz
from jaxviz import models
from jaxviz.attribution import lrp

from conftest import assert_close_to_max, randomize_batchnorm, to_nchw, torch_state_dict_numpy

#: float64 on both sides. Measured: 1e-15 to 3e-13, except 3e-8 for EpsilonGammaBox on ResNet-50 with negative
#: BatchNorm scales (rounding of ``s * conv(x, W)`` vs Zennit's ``conv(x, s W)``, divided by near-zero stabilized
#: denominators). A wrong rule anywhere is off by far more.
LRP_RTOL = 1e-6
SIZE = 64  # VGG16's features end 2 x 2: the adaptive pooling to 7 x 7 averages overlapping cells
TARGETS = (281, 285)


def _zennit_eps_folded(net):
    folded = copy.deepcopy(net)
    for m in folded.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.data += m.eps
            m.eps = 0.0
    return folded


@pytest.fixture(scope="module", params=["vgg16", "resnet50"])
def setup(request):
    arch = request.param
    torch.manual_seed(0)
    net = getattr(torchvision.models, arch)()
    if arch == "resnet50":
        randomize_batchnorm(net, seed=3)
        with torch.no_grad():
            for k, m in enumerate(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
                if k % 3 == 1:
                    m.weight.neg_()
    net = net.double().eval()
    with jax.enable_x64(True):
        model = models.build(arch)
        variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64),
                                           models.convert_state_dict(arch, torch_state_dict_numpy(net)))
        photos = jnp.asarray(np.stack([jaxviz.io.image.sample(n, SIZE) for n in ("chelsea", "coffee")]), jnp.float64)
        x = np.asarray(model.preprocessing(photos))
    return dict(arch=arch, torch=_zennit_eps_folded(net), model=model, variables=variables, photos=photos, x=x,
                canonizers=[zt.ResNetCanonizer()] if arch == "resnet50" else [])


def _zennit(s, comp):
    xt = to_nchw(s["x"]).requires_grad_()
    with Gradient(model=s["torch"], composite=comp) as attributor:
        out = s["torch"](xt).detach()
        onehot = torch.zeros_like(out)
        onehot[range(len(TARGETS)), list(TARGETS)] = 1
        _, rel = attributor(xt, onehot * out)
    return rel.detach().numpy().transpose(0, 2, 3, 1)


def _bounds(s):
    lo = np.asarray(s["model"].preprocessing(jnp.zeros((1, 1, 1, 3), jnp.float64)))[0, 0, 0]
    hi = np.asarray(s["model"].preprocessing(jnp.ones((1, 1, 1, 3), jnp.float64)))[0, 0, 0]
    return torch.tensor(lo).view(1, 3, 1, 1), torch.tensor(hi).view(1, 3, 1, 1)


def _theirs(name, s):
    canon = s["canonizers"]
    if name == "epsilon":
        return zc.LayerMapComposite(zc.layer_map_base() + [(ztypes.Convolution, zr.Epsilon()),
                                                           (torch.nn.Linear, zr.Epsilon())], canonizers=canon)
    if name == "wsquare_first":
        return zc.SpecialFirstLayerMapComposite(
            zc.layer_map_base() + [(ztypes.Convolution, zr.ZPlus()), (torch.nn.Linear, zr.Epsilon())],
            [(ztypes.Linear, zr.WSquare())], canonizers=canon)
    if name == "epsilon_gamma_box":
        lo, hi = _bounds(s)
        return zc.EpsilonGammaBox(low=lo, high=hi, canonizers=canon)
    return {"epsilon_plus_flat": zc.EpsilonPlusFlat, "epsilon_alpha2_beta1": zc.EpsilonAlpha2Beta1,
            "epsilon_alpha2_beta1_flat": zc.EpsilonAlpha2Beta1Flat}[name](canonizers=canon)


def _ours(name):
    if name == "wsquare_first":
        return lrp.Composite(lrp.ZPlus(), lrp.Epsilon(), first=lrp.WSquare())
    return name


#: every rule at least once per network: Epsilon (dense layers everywhere), Norm (pooling; ResNet's sums),
#: ZPlus, AlphaBeta, Flat, WSquare, Gamma and ZBox
CASES = {"vgg16": ("epsilon", "epsilon_alpha2_beta1_flat", "wsquare_first"),
         "resnet50": ("epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1")}


@pytest.mark.parametrize("which", range(3))
def test_lrp_composites_match_zennit(setup, which):
    name = CASES[setup["arch"]][which]
    with jax.enable_x64(True):
        ours = jax.jit(lambda v, im: lrp.lrp(setup["model"], v, im, jnp.asarray(TARGETS), composite=_ours(name)))(
            setup["variables"], setup["photos"])
        theirs = _zennit(setup, _theirs(name, setup))  # ZBox's bounds in float64 too
    assert_close_to_max(ours, theirs, LRP_RTOL, f"{setup['arch']} {name}")
