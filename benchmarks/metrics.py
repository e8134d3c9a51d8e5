"""Explanation metrics: jaxviz vs Quantus 0.6 (pytorch-grad-cam for ROAD, Captum for infidelity), images/s.

    python benchmarks/metrics.py                                   # Lite0, batch 8, 224 px
    python benchmarks/metrics.py --metric pixel_flipping road --batch 4

Both sides score the same [0, 1] images, the same maps (random, tie-free) and the same number of perturbations
with the same weights (the PyTorch network normalizes inside, as the ports do). Quantus runs its metric on a
batch-sized chunk (``batch_size`` = the batch); jaxviz evaluates ``--per-pass`` perturbed copies of the batch per
forward pass. Timing: median of ``--repeats`` calls after one warm-up; jaxviz's compile time apart.
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
from jaxviz import models  # noqa: E402
from jaxviz.metrics import complexity, faithfulness, road, robustness  # noqa: E402

from harness import Row, markdown, report, time_jax, time_peer  # noqa: E402
from peers import sync, to_torch, torch_pair  # noqa: E402

METRICS = ("pixel_flipping", "region_perturbation", "faithfulness_correlation", "road", "infidelity", "sparseness")


def jax_metric(name, args, per_pass):
    kw = dict(batch_size=per_pass)
    return {
        "pixel_flipping": functools.partial(faithfulness.pixel_flipping, pixels_per_step=args.pixels_per_step, **kw),
        "region_perturbation": functools.partial(faithfulness.region_perturbation, patch=args.patch,
                                                 regions=args.regions, **kw),
        "faithfulness_correlation": functools.partial(faithfulness.faithfulness_correlation, runs=args.runs,
                                                      subset_size=args.subset, key=jax.random.key(0), **kw),
        "road": functools.partial(road.road, percentiles=tuple(args.percentiles), noise=0.01, key=jax.random.key(0),
                                  **kw),
        "infidelity": functools.partial(robustness.infidelity, samples=args.runs, key=jax.random.key(0), **kw),
        "sparseness": lambda model, v, x, t, maps: complexity.sparseness(maps),
    }[name]


def peer_metric(name, args, net, x, targets, maps):
    """A zero-argument callable running the peer on the same inputs, and the peer's name."""
    import torch

    nchw = np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))
    a = maps[:, None]
    common = dict(model=net, x_batch=nchw, y_batch=targets, a_batch=a, device="cpu", channel_first=True,
                  batch_size=len(x))
    if name in ("pixel_flipping", "region_perturbation", "faithfulness_correlation", "sparseness"):
        import quantus

        metric = {
            "pixel_flipping": lambda: quantus.PixelFlipping(features_in_step=args.quantus_features_in_step,
                                                            disable_warnings=True),
            "region_perturbation": lambda: quantus.RegionPerturbation(patch_size=args.patch,
                                                                      regions_evaluation=args.regions,
                                                                      disable_warnings=True),
            "faithfulness_correlation": lambda: quantus.FaithfulnessCorrelation(
                nr_runs=args.runs, subset_size=3 * args.subset, disable_warnings=True),
            "sparseness": lambda: quantus.Sparseness(disable_warnings=True),
        }[name]()
        return (lambda: metric(**common)), f"Quantus {type(metric).__name__}"
    if name == "road":
        from pytorch_grad_cam.metrics.road import ROADMostRelevantFirstAverage
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        metric = ROADMostRelevantFirstAverage(percentiles=list(args.percentiles))
        outputs = [ClassifierOutputTarget(int(t)) for t in targets]
        tx = to_torch(x)

        def run():
            with torch.no_grad():
                return metric(tx, maps.astype(np.float32), outputs, net)

        return run, "pytorch-grad-cam ROADMostRelevantFirstAverage"
    if name == "infidelity":
        from captum.metrics import infidelity

        tx, ta = to_torch(x), to_torch(np.repeat(maps[..., None], 3, axis=-1))

        def perturb(inputs):
            noise = 0.1 * torch.randn_like(inputs)
            return noise, inputs - noise

        target = torch.from_numpy(targets).to(tx.device)
        return (lambda: infidelity(net, perturb, tx, ta, target=target, n_perturb_samples=args.runs,
                                   max_examples_per_batch=len(x) * args.per_pass)), "Captum infidelity"
    return None, "-"


def bench(model_name: str, names, args, with_peer: bool = True) -> list[Row]:
    model = models.build(model_name)
    net, variables = torch_pair(model_name, normalized=True) if with_peer else (
        None, models.load(model_name, weights=None)[1])
    rng = np.random.default_rng(0)
    size = model.input_size
    x = rng.uniform(size=(args.batch, size, size, 3)).astype(np.float32)
    targets = rng.integers(0, 1000, args.batch)
    maps = rng.uniform(size=(args.batch, size, size)).astype(np.float32)  # tie-free, in [0, 1] (ROAD's CAMs)
    rows = []
    for name in names:
        # Quantus needs H*W % features_in_step == 0 (so 3 x pixels_per_step is impossible at 224 px) and perturbs
        # channel elements: the same number of steps, 3 H W / features_in_step, is the same work.
        quantus_steps = 3 * size * size // args.quantus_features_in_step
        args.pixels_per_step = -(-size * size // quantus_steps)
        fn = jax_metric(name, args, args.batch * args.per_pass)
        jitted = jax.jit(lambda v, x, t, m, fn=fn: fn(model, v, x, t, m))
        ours = time_jax(jitted, (variables, jnp.asarray(x), jnp.asarray(targets), jnp.asarray(maps)), args.repeats)
        theirs, peer_name = time_peer(lambda name=name: peer_metric(name, args, net, x, targets, maps), sync,
                                      args.repeats) if with_peer else (None, "-")
        note = {"pixel_flipping": f"{-(-size * size // args.pixels_per_step)} steps",
                "region_perturbation": f"{args.regions} regions of {args.patch} px",
                "faithfulness_correlation": f"{args.runs} runs of {args.subset} px",
                "road": f"MoRF, percentiles {','.join(map(str, args.percentiles))}",
                "infidelity": f"{args.runs} Gaussian perturbations"}.get(name, "")
        rows.append(Row("metrics", name, model_name, args.batch, "float32", ours, theirs, peer_name, note))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    return rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="*", default=["efficientnet_lite0"])
    p.add_argument("--metric", nargs="*", default=list(METRICS), choices=METRICS)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--quantus-features-in-step", type=int, default=224 * 14,
                   help="pixel flipping: Quantus's channel elements per step (jaxviz takes the same number of steps)")
    p.add_argument("--patch", type=int, default=28)
    p.add_argument("--regions", type=int, default=16)
    p.add_argument("--runs", type=int, default=16, help="faithfulness correlation runs, infidelity samples")
    p.add_argument("--subset", type=int, default=224, help="faithfulness correlation: pixels per subset")
    p.add_argument("--percentiles", type=int, nargs="*", default=[20, 50, 80])
    p.add_argument("--per-pass", type=int, default=4, help="perturbed copies of the batch per forward pass")
    p.add_argument("--repeats", type=int, default=3)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    report([row for name in args.model for row in bench(name, args.metric, args)], "metrics", "img/s")


if __name__ == "__main__":
    main()
