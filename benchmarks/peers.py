"""The PyTorch side of the benchmarks: reference networks with jaxviz's weights."""

from __future__ import annotations

import contextlib

import numpy as np

from jaxviz import models
from jaxviz.models import IMAGENET_MEAN, IMAGENET_STD


def device() -> str:
    """Where the PyTorch side runs: ``"cuda"`` when PyTorch sees a GPU, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def sync(out):
    """The peer's ``sync`` for the timers: waits for queued CUDA work (a no-op on the CPU); returns ``out``."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out


def torch_pair(name: str, normalized: bool = False):
    """The PyTorch reference network and the same weights as jaxviz variables.

    With ``normalized``, the network takes [0, 1] images and applies ImageNet
    normalization itself, as the jaxviz ports do, so attributions are with
    respect to the same inputs on both sides.
    """
    import torch

    torch.manual_seed(0)
    if name in ("resnet50", "vgg19"):
        import torchvision

        net = getattr(torchvision.models, name)()
    else:
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0")
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    variables = models.convert_state_dict(name, {k: v.numpy() for k, v in net.state_dict().items()})
    if normalized:
        net = Normalized(net).eval()
    return net.to(device()), variables


def to_torch(images) -> torch.Tensor:  # noqa: F821
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.asarray(images, np.float32).transpose(0, 3, 1, 2))).to(device())


def _normalized_cls():
    import torch

    class _Normalized(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

        def forward(self, x):
            return self.net((x - self.mean) / self.std)

    return _Normalized


def Normalized(net):  # noqa: N802 - reads like the class it builds
    return _normalized_cls()(net)


@contextlib.contextmanager
def bn_statistic_terms(net):
    """Within the block, every forward of ``net`` appends, per BatchNorm2d in call order,
    ``||batch mean - running_mean||_2 + ||biased batch var - running_var||_2`` of its input
    (DeepInversion's r_feature, as the reference code computes it with forward hooks) to the yielded list."""
    import torch

    terms = []

    def hook(module, inputs, _):
        x = inputs[0]
        mean = x.mean(dim=(0, 2, 3))
        var = x.permute(1, 0, 2, 3).reshape(x.shape[1], -1).var(dim=1, unbiased=False)
        terms.append(torch.norm(mean - module.running_mean, 2) + torch.norm(var - module.running_var, 2))

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    try:
        yield terms
    finally:
        for h in handles:
            h.remove()


def relu6_visible_to_captum(net) -> None:
    """Captum's GuidedBackprop/Deconvolution hook ``nn.ReLU`` only: make Lite0's ReLU6 one."""
    import torch

    class ReLU6AsReLU(torch.nn.ReLU):
        def forward(self, x):
            return torch.clamp(x, 0, 6)

    for module in net.modules():
        if hasattr(module, "_swish"):
            module._swish = ReLU6AsReLU()


def zeroing_ablation_layer():
    """pytorch-grad-cam's ablation layer, ablating to 0 on every layer and accepting a block's keyword arguments.

    Its own ``AblationLayer`` writes ``min - 1e7`` where a layer's minimum is not 0 (Lite0's linear ``blocks.15``;
    jaxviz always zeroes, the paper's ablation: attribution/cam_perturbation.py), and fails on Lite0, whose blocks
    are called with ``drop_connect_rate=``. Passed through AblationCAM's ``ablation_layer=`` argument, the hook it
    offers for this.
    """
    from pytorch_grad_cam.ablation_layer import AblationLayer

    class Zeroing(AblationLayer):
        def __call__(self, x, **_):
            out = self.activations
            for i in range(out.size(0)):
                out[i, self.indices[i], :] = 0
            return out

    return Zeroing()


def relus_used_once(net) -> None:
    """Captum's DeepLift hooks a module once: give each of torchvision's Bottleneck ReLU uses its own module."""
    import functools

    import torch
    import torchvision

    def forward(block, x):
        out = block.relu1(block.bn1(block.conv1(x)))
        out = block.relu2(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
        return block.relu3(out + (x if block.downsample is None else block.downsample(x)))

    for module in net.modules():
        if isinstance(module, torchvision.models.resnet.Bottleneck):
            module.relu1, module.relu2, module.relu3 = (torch.nn.ReLU() for _ in range(3))
            module.forward = functools.partial(forward, module)


def zennit_lrp(model_name: str, net, tx, targets):
    """A zero-argument callable: Zennit's EpsilonPlusFlat relevance on the normalized input (its convention)."""
    import torch
    import zennit.canonizers as zcan
    import zennit.composites as zc
    import zennit.torchvision as zt
    from zennit.attribution import Gradient

    canon = [zt.ResNetCanonizer()] if model_name == "resnet50" else [zcan.SequentialMergeBatchNorm()]
    inner = net.net
    x = ((tx - net.mean) / net.std).requires_grad_()
    onehot = torch.zeros(len(targets), 1000, device=tx.device)
    onehot[range(len(targets)), list(targets)] = 1
    attributor = Gradient(model=inner, composite=zc.EpsilonPlusFlat(canonizers=canon))
    attributor.__enter__()  # the rules are registered once, as a user keeps the context open over a data set
    return lambda: attributor(x, lambda out: onehot * out)[1]
