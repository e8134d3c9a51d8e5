"""Attribution methods: jaxviz vs Captum (pytorch-grad-cam for Grad-CAM), images/s.

    python benchmarks/attribution.py                         # both models, batch 16, 224 px
    python benchmarks/attribution.py --model efficientnet_lite0 --method saliency ig

Both sides explain the same [0, 1] images with the same weights (the PyTorch
network normalizes inside, as the ports do), one target class per image.
Sampled methods use the same settings on both sides (``--samples``, ``--steps``,
occlusion ``--patch``/``--stride``) and the same number of images per forward pass.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import jaxviz  # noqa: E402
from jaxviz import models  # noqa: E402

from harness import Row, device_name, markdown, save, time_calls, time_jax, time_peer  # noqa: E402
from peers import (  # noqa: E402
    relu6_visible_to_captum,
    relus_used_once,
    sync,
    to_torch,
    torch_pair,
    zennit_lrp,
    zeroing_ablation_layer,
)

METHODS = ("saliency", "guided_backprop", "deconvnet", "smoothgrad", "integrated_gradients", "occlusion",
           "grad_cam", "cam", "gradient_x_input", "guided_grad_cam", "gradient_shap", "grad_cam_plus_plus",
           "layer_cam", "score_cam", "ablation_cam", "rise", "deeplift", "lrp", "blur_ig",
           "guided_ig", "xrai")
#: run partly on the host (XRAI's segmentation and greedy ranking): timed as calls, its compile in the first one.
HOST_SIDE = ("xrai",)
#: pytorch-grad-cam's class for each CAM-family method.
GRAD_CAM_CLASSES = {"grad_cam": "GradCAM", "grad_cam_plus_plus": "GradCAMPlusPlus", "layer_cam": "LayerCAM",
                    "score_cam": "ScoreCAM", "ablation_cam": "AblationCAM"}
#: images per forward pass of the gradient-free CAMs, on both sides (AblationCAM's default; ScoreCAM's is 16).
CAM_PER_PASS = 32


def _baselines(x):
    """GradientSHAP's reference set: 4 images of uniform noise, the same on both sides."""
    return np.random.default_rng(1).uniform(size=(4, *x.shape[1:])).astype(np.float32)
LAYERS = {"resnet50": "layer4", "efficientnet_lite0": "blocks.15"}


def jax_method(name, args, batch):
    per_pass = batch * args.per_pass
    return {
        "saliency": jaxviz.saliency,
        "guided_backprop": jaxviz.guided_backprop,
        "deconvnet": jaxviz.deconvnet,
        "smoothgrad": functools.partial(jaxviz.smoothgrad, jax.random.key(0), samples=args.samples,
                                        stdev=0.15, batch_size=per_pass),
        "integrated_gradients": functools.partial(jaxviz.integrated_gradients, steps=args.steps,
                                                  batch_size=per_pass),
        "occlusion": functools.partial(jaxviz.occlusion, patch=args.patch, stride=args.stride, fill=0.5,
                                       batch_size=per_pass),
        "grad_cam": functools.partial(jaxviz.grad_cam, layer=args.layer),
        "cam": jaxviz.cam,
        "gradient_x_input": jaxviz.gradient_x_input,
        "guided_grad_cam": functools.partial(jaxviz.guided_grad_cam, layer=args.layer),
        "gradient_shap": functools.partial(jaxviz.gradient_shap, jax.random.key(0), baselines=args.baselines,
                                           samples=args.samples, batch_size=per_pass),
        "grad_cam_plus_plus": functools.partial(jaxviz.grad_cam_plus_plus, layer=args.layer),
        "layer_cam": functools.partial(jaxviz.layer_cam, layer=args.layer),
        "score_cam": functools.partial(jaxviz.score_cam, layer=args.layer, batch_size=CAM_PER_PASS),
        "ablation_cam": functools.partial(jaxviz.ablation_cam, layer=args.layer, batch_size=CAM_PER_PASS),
        "rise": functools.partial(jaxviz.rise, jax.random.key(0), masks=args.masks, batch_size=per_pass),
        "deeplift": jaxviz.deeplift,
        "lrp": jaxviz.lrp,
        "blur_ig": functools.partial(jaxviz.blur_integrated_gradients, steps=args.steps, batch_size=per_pass),
        "guided_ig": functools.partial(jaxviz.guided_integrated_gradients, steps=args.steps),
        "xrai": functools.partial(jaxviz.xrai, steps=args.steps, batch_size=per_pass),
    }[name]


def peer_method(name, args, model_name, net, x, targets):
    """A zero-argument callable running the peer, and the peer's name (None: no peer)."""
    import captum.attr as ca
    import torch

    tx = to_torch(x).to(next(net.parameters()).dtype)
    tlist = [int(t) for t in targets]
    batch = x.shape[0]

    def attribute(explainer, **kw):
        return lambda: explainer.attribute(tx.clone().requires_grad_(), target=tlist, **kw)

    if name == "saliency":
        return attribute(ca.Saliency(net), abs=False), "Captum Saliency"
    if name in ("guided_backprop", "deconvnet"):
        if model_name == "efficientnet_lite0":
            relu6_visible_to_captum(net)
        cls = ca.GuidedBackprop if name == "guided_backprop" else ca.Deconvolution
        return attribute(cls(net)), f"Captum {cls.__name__}"
    if name == "smoothgrad":
        nt = ca.NoiseTunnel(ca.Saliency(net))
        return attribute(nt, nt_type="smoothgrad", nt_samples=args.samples, stdevs=0.15, abs=False,
                         nt_samples_batch_size=args.per_pass), "Captum NoiseTunnel(Saliency)"
    if name == "integrated_gradients":
        return attribute(ca.IntegratedGradients(net), n_steps=args.steps, baselines=0.0,
                         internal_batch_size=batch * args.per_pass), "Captum IntegratedGradients"
    if name == "occlusion":
        return attribute(ca.Occlusion(net), sliding_window_shapes=(3, args.patch, args.patch),
                         strides=(3, args.stride, args.stride), baselines=0.5,
                         perturbations_per_eval=args.per_pass), "Captum Occlusion"
    layer = net.net.layer4 if model_name == "resnet50" else net.net._blocks[-1]
    if name == "gradient_x_input":
        return attribute(ca.InputXGradient(net)), "Captum InputXGradient"
    if name == "guided_grad_cam":
        if model_name == "efficientnet_lite0":
            relu6_visible_to_captum(net)
        return attribute(ca.GuidedGradCam(net, layer)), "Captum GuidedGradCam"
    if name == "gradient_shap":
        return attribute(ca.GradientShap(net), baselines=to_torch(_baselines(x)), n_samples=args.samples,
                         stdevs=0.0), "Captum GradientShap"
    if name == "deeplift":
        if model_name != "resnet50":
            return None, "-"  # Captum needs Lite0's activations split per use and registered (tests do it)
        relus_used_once(net)
        return attribute(ca.DeepLift(net), baselines=0.0), "Captum DeepLift"
    if name == "lrp":
        return zennit_lrp(model_name, net, tx, tlist), "Zennit EpsilonPlusFlat"
    if name in ("blur_ig", "guided_ig", "xrai"):
        return pair_method(name, args, net, x, tlist), f"PAIR saliency {PAIR_CLASSES[name]}"
    if name in GRAD_CAM_CLASSES:
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        for param in net.parameters():  # it calls loss.backward(): weight gradients too, as its users run it
            param.requires_grad_(True)
        extra = {"ablation_layer": zeroing_ablation_layer()} if name == "ablation_cam" else {}
        cam = getattr(pytorch_grad_cam, GRAD_CAM_CLASSES[name])(model=net, target_layers=[layer], **extra)
        if name in ("score_cam", "ablation_cam"):
            cam.batch_size = CAM_PER_PASS
        outputs = [ClassifierOutputTarget(t) for t in tlist]
        return (lambda: cam(input_tensor=tx, targets=outputs)), f"pytorch-grad-cam {GRAD_CAM_CLASSES[name]}"
    del torch
    return None, "-"


PAIR_CLASSES = {"blur_ig": "BlurIG", "guided_ig": "GuidedIG", "xrai": "XRAI"}


def pair_method(name, args, net, x, targets):
    """PAIR's method, one image at a time as its API takes them, gradients from the PyTorch twin."""
    import saliency.core as pair
    import torch

    def call_model_function(batch, call_model_args=None, expected_keys=None):
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(batch, np.float32).transpose(0, 3, 1, 2)))
        t.requires_grad_()
        net(t)[:, call_model_args].sum().backward()
        return {pair.INPUT_OUTPUT_GRADIENTS: t.grad.numpy().transpose(0, 2, 3, 1)}

    if name == "guided_ig":  # PAIR 0.2.1 spells NumPy's quantile ``method=`` as ``interpolation=`` (gone in NumPy 2)
        quantile = np.quantile
        np.quantile = lambda a, q, *rest, interpolation=None, **kw: quantile(
            a, q, *rest, **({"method": interpolation} if interpolation else {}), **kw)
    per_pass = args.per_pass
    method = getattr(pair, PAIR_CLASSES[name])()
    if name == "blur_ig":
        one = lambda img, t: method.GetMask(img, call_model_function, t, steps=args.steps,  # noqa: E731
                                            batch_size=per_pass)
    elif name == "guided_ig":
        one = lambda img, t: method.GetMask(img, call_model_function, t, x_steps=args.steps,  # noqa: E731
                                            x_baseline=np.zeros_like(img), max_dist=0.02, fraction=0.25)
    else:
        params = pair.XRAIParameters(steps=args.steps)
        one = lambda img, t: method.GetMask(img, call_model_function, t, batch_size=per_pass,  # noqa: E731
                                            extra_parameters=params)
    return lambda: [one(img, t) for img, t in zip(x, targets, strict=True)]


def bench(model_name: str, methods, args) -> list[Row]:
    model = models.build(model_name)
    net, variables = torch_pair(model_name, normalized=True) if not args.no_peer else (
        None, models.load(model_name, weights=None)[1])
    dtype = getattr(args, "dtype", "float32")
    variables = jax.tree.map(lambda a: a.astype(dtype), variables)
    if net is not None and dtype == "bfloat16":
        import torch

        net = net.to(torch.bfloat16)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(args.batch, model.input_size, model.input_size, 3)).astype(np.float32)
    targets = rng.integers(0, 1000, args.batch)
    args.layer, args.baselines = LAYERS[model_name], jnp.asarray(_baselines(x), dtype)
    xj, tj = jnp.asarray(x, dtype), jnp.asarray(targets)
    rows = []
    for name in methods:
        fn = jax_method(name, args, args.batch)
        if name in HOST_SIDE:
            ours = time_calls(lambda fn=fn: fn(model, variables, xj, tj), jax.block_until_ready, args.repeats)
        else:
            jitted = jax.jit(lambda v, x, t, fn=fn: fn(model, v, x, t))
            ours = time_jax(jitted, (variables, xj, tj), args.repeats)
        theirs, peer_name = (None, "-") if args.no_peer else time_peer(
            lambda name=name: peer_method(name, args, model_name, net, x, targets), sync, args.repeats)
        note = {"smoothgrad": f"{args.samples} samples", "integrated_gradients": f"{args.steps} steps",
                "occlusion": f"patch {args.patch}, stride {args.stride}",
                "grad_cam": f"layer {args.layer}; peer also computes weight grads, normalizes, resizes (OpenCV)",
                "grad_cam_plus_plus": f"layer {args.layer}; peer as for grad_cam",
                "layer_cam": f"layer {args.layer}; peer as for grad_cam",
                "guided_grad_cam": f"layer {args.layer}",
                "gradient_shap": f"{args.samples} samples, 4 baselines",
                "score_cam": f"layer {args.layer}: one masked image per channel, {CAM_PER_PASS} per pass",
                "ablation_cam": f"layer {args.layer}: one ablated channel per pass image, {CAM_PER_PASS} per pass",
                "rise": f"{args.masks} masks of 7 x 7 cells; no peer (Captum has no RISE)",
                "cam": "no Captum/pytorch-grad-cam CAM",
                "deeplift": "black baseline; image and baseline in one batch on both sides",
                "blur_ig": f"{args.steps} steps; PAIR one image per call",
                "guided_ig": f"{args.steps} steps, fraction 0.25, max_dist 0.02; PAIR one image per call",
                "xrai": f"{args.steps} IG steps, 2 baselines; host-side segmentation on both sides; first call "
                        "includes jaxviz's compile",
                "lrp": "EpsilonPlusFlat, BN merged" + (
                    ", ResNetCanonizer" if model_name == "resnet50" else
                    "; Lite0's residual adds plain in Zennit (no canonizer)")}.get(name, "")
        rows.append(Row("attribution", name, model_name, args.batch, dtype, ours, theirs, peer_name, note))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    return rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="*", default=["efficientnet_lite0", "resnet50"])
    p.add_argument("--method", nargs="*", default=list(METHODS), choices=METHODS)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--samples", type=int, default=4, help="smoothgrad samples")
    p.add_argument("--steps", type=int, default=4, help="IG steps")
    p.add_argument("--patch", type=int, default=56)
    p.add_argument("--stride", type=int, default=56)
    p.add_argument("--masks", type=int, default=256, help="RISE masks")
    p.add_argument("--per-pass", type=int, default=4, help="copies of the batch per forward pass (sampled methods)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--no-peer", action="store_true")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    print(f"device: {device_name()}")
    rows = []
    for name in args.model:
        rows += bench(name, args.method, args)
    print()
    print(markdown(rows))
    print(f"\nsaved {save(rows, 'attribution')}")


if __name__ == "__main__":
    main()
