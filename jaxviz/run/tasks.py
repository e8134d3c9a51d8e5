"""What a data-set run computes per batch: a :class:`Task`, one pure function of (weights, images, labels, key).

* :func:`attribution`: a map per image (any method of :data:`MAP_METHODS`, or your own), its target and
  score, and any metrics of :data:`METRICS` on that map, in one compiled program;
* :func:`features`: a layer's activations per image (spatially averaged);
* :func:`render`: a render sweep (channels of a layer times seeds), each item one feature visualization;
* or any ``Task(name, fn, config)`` whose ``fn(variables, images, labels, key)`` returns ``{output: (B, ...)}``.

``MAP_METHODS`` and ``METRICS`` are also what ``jaxviz evaluate`` runs, with the same defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Task", "attribution", "features", "render", "MAP_METHODS", "METRICS"]


class Task(NamedTuple):
    """``fn(variables, images, labels, key) -> {name: (B, ...)}``, jitted by the runner. ``config`` names
    everything that changes the numbers besides the weights and the data (a resumed run must match it);
    ``needs_labels``: the data set must label every item."""

    name: str
    fn: Callable
    config: str = ""
    needs_labels: bool = False


def _pixels(fn):  # a gradient's three channels -> one map (Simonyan et al.'s max |.|)
    def method(*args):
        import jaxviz

        return jaxviz.reduce_channels(fn(*args))
    return method


def _api(name: str, *leading, **options):  # jaxviz.<name>(*leading, model, variables, images, target, **options)
    def method(*args):
        import jaxviz

        return getattr(jaxviz, name)(*leading, *args, **options)
    return method


def _occlusion(model, variables, images, target):
    import jaxviz

    side = images.shape[1]
    maps = jaxviz.occlusion(model, variables, images, target, patch=max(4, side // 8), stride=max(2, side // 16))
    return maps[..., 0]


#: ``name -> builder(model, layer) -> method(model, variables, images, target) -> (B, H, W)``; ``layer`` is the
#: CAM methods' layer.
MAP_METHODS: dict[str, Callable] = {
    "saliency": lambda model, layer: _pixels(_api("saliency")),
    "gradxinput": lambda model, layer: _pixels(_api("gradient_x_input")),
    "guided": lambda model, layer: _pixels(_api("guided_backprop")),
    "smoothgrad": lambda model, layer: _pixels(_api("smoothgrad", jax.random.key(0), samples=16)),
    "ig": lambda model, layer: _pixels(_api("integrated_gradients", steps=16)),
    "gradcam": lambda model, layer: _api("grad_cam", layer=layer),
    "gradcam++": lambda model, layer: _api("grad_cam_plus_plus", layer=layer),
    "layercam": lambda model, layer: _api("layer_cam", layer=layer),
    "scorecam": lambda model, layer: _api("score_cam", layer=layer),
    "ablationcam": lambda model, layer: _api("ablation_cam", layer=layer),
    "occlusion": lambda model, layer: _occlusion,
}


def _metric(module: str, name: str, then: Callable = lambda s: s, maps_only: bool = False, **options):
    """``jaxviz.metrics.<module>.<name>(model, variables, images, target, maps, **options)``, or of ``maps``
    alone, with ``then`` applied to the scores."""
    def metric(model, variables, images, target, maps):
        import importlib

        fn = getattr(importlib.import_module(f"jaxviz.metrics.{module}"), name)
        return then(fn(maps, **options) if maps_only else fn(model, variables, images, target, maps, **options))
    return metric


def _per_step(size: int, step: int | None) -> int:
    return step or max(1, size * size // 50)


#: ``name -> builder(size, key, pixels_per_step) -> metric(model, variables, images, target, maps) -> (B,)``;
#: ``pixels_per_step`` None is 1/50 of the image.
METRICS: dict[str, Callable] = {
    "deletion": lambda size, key, step: _metric("faithfulness", "deletion", pixels_per_step=_per_step(size, step)),
    "insertion": lambda size, key, step: _metric("faithfulness", "insertion",
                                                 pixels_per_step=_per_step(size, step)),
    "pixel_flipping": lambda size, key, step: _metric("faithfulness", "pixel_flipping", auc=True,
                                                      pixels_per_step=_per_step(size, step)),
    "region_perturbation": lambda size, key, step: _metric("faithfulness", "region_perturbation",
                                                           lambda s: s.mean(axis=1), patch=max(2, size // 14),
                                                           regions=50),
    "faithfulness_correlation": lambda size, key, step: _metric(
        "faithfulness", "faithfulness_correlation", key=key, runs=50, subset_size=max(1, size * size // 200)),
    "mu_fidelity": lambda size, key, step: _metric("faithfulness", "mu_fidelity", key=key, runs=50),
    "road": lambda size, key, step: _metric("road", "road", percentiles=(20, 50, 80), key=key),
    "infidelity": lambda size, key, step: _metric("robustness", "infidelity", key=key),
    "sparseness": lambda size, key, step: _metric("complexity", "sparseness", maps_only=True),
    "complexity": lambda size, key, step: _metric("complexity", "complexity", maps_only=True),
}


def _choose(names: Sequence[str], valid: dict, what: str) -> tuple[str, ...]:
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))}; choose from {', '.join(valid)}")
    return tuple(names)


def attribution(model, method: str | Callable = "saliency", *, metrics: Sequence[str] = (),
                target: str | int = "predicted", layer: str | None = None,
                pixels_per_step: int | None = None) -> Task:
    """A map per image, with its ``target`` class, the target's logit and each of ``metrics`` on the map.

    Args:
        method: a name of :data:`MAP_METHODS`, or ``method(model, variables, images, target) -> (B, H, W)``.
        metrics: names of :data:`METRICS`; metrics that draw random numbers get the run's key, folded with
            the batch's first index (the same numbers however the run is split over devices and processes).
        target: ``"predicted"`` (each image's top class), ``"label"`` (the data set's label) or a class index.
        layer: the CAM methods' layer (default: the model's ``cam_layer``).
    """
    if not (target in ("predicted", "label") or (isinstance(target, int) and target >= 0)):
        raise ValueError(f"target must be 'predicted', 'label' or a class index, got {target!r}")
    if isinstance(method, str):
        name = _choose([method], MAP_METHODS, "method")[0]
        layer = layer or getattr(model, "cam_layer", None)
        explain = MAP_METHODS[name](model, layer)
    else:
        name, explain = getattr(method, "__name__", "method"), method
    metric_names = _choose(list(dict.fromkeys(metrics)), METRICS, "metric")

    def fn(variables, images, labels, key):
        logits = model.apply(variables, images)
        if target == "predicted":
            t = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        elif target == "label":
            t = labels.astype(jnp.int32)
        else:
            t = jnp.full(images.shape[:1], target, jnp.int32)
        maps = explain(model, variables, images, t)
        out = {"map": maps.astype(jnp.float32), "target": t,
               "score": jnp.take_along_axis(logits, t[:, None], axis=-1)[:, 0].astype(jnp.float32)}
        for i, m in enumerate(metric_names):
            score = METRICS[m](images.shape[1], jax.random.fold_in(key, i), pixels_per_step)
            out[m] = score(model, variables, images, t, maps).astype(jnp.float32)
        return out

    config = f"{getattr(model, 'name', type(model).__name__)}:{name}:{metric_names}:{target}:{layer}:{pixels_per_step}"
    return Task(f"attribution {name}", fn, config, needs_labels=target == "label")


def features(model, layer: str, *, pool: bool = True) -> Task:
    """The activations of ``layer`` per image, flattened (spatial maps averaged first when ``pool``)."""
    from jaxviz.models import check_names

    check_names(layer, model.layers)

    from jaxviz.representation.features import layer_features

    def fn(variables, images, labels, key):
        return {"features": layer_features(model, variables, images, layer, pool)}

    return Task(f"features {layer}", fn, f"{getattr(model, 'name', '')}:{layer}:{pool}")


def render(model, layer: str, channels: Sequence[int], *, seeds: int = 1, steps: int = 256,
           size: int | None = None, seed: int = 0):
    """A render sweep: item ``j`` is the feature visualization of channel ``channels[j // seeds]`` of ``layer``
    (Lucid's default: Fourier parameterization, standard transforms, Adam 0.05), from key
    ``fold_in(key(seed), j)``; the same image however the sweep is split over devices, processes and resumes.

    Returns ``(task, items)``: the task, and the data source of the sweep's ``len(channels) * seeds`` items to
    run it over (:func:`jaxviz.run.engine.dataset`). Outputs per item: ``image`` (size, size, 3) in [0, 1],
    ``channel``, and ``score`` (the channel's mean activation on the final image).
    """
    import numpy as np

    from jaxviz.core import objectives as objs
    from jaxviz.io import datasets
    from jaxviz.synthesis.render import render_pure

    channels = tuple(int(c) for c in channels)
    if not channels or seeds < 1 or steps < 1:
        raise ValueError(f"a render sweep needs channels, seeds >= 1 and steps >= 1; got {len(channels)} "
                         f"channel(s), seeds={seeds}, steps={steps}")
    size = size or model.input_size
    table = jnp.asarray(channels, jnp.int32)

    def fn(variables, images, labels, key):
        del images, key  # each item is labels[i], its index in the sweep, from which its key comes
        chosen = table[labels // seeds]

        def one(c, j):
            objective = objs.channel(layer, c)
            img = render_pure(jax.random.fold_in(jax.random.key(seed), j), model, variables, objective,
                              size=size, steps=steps)
            return img[0], objs.evaluate(objective, model, variables, img)[0]

        rendered, scores = jax.vmap(one)(chosen, labels)
        return {"image": rendered, "channel": chosen, "score": scores.astype(jnp.float32)}

    n = len(channels) * seeds
    items = datasets.Arrays(np.zeros((n, 1, 1, 3), np.float32), np.arange(n, dtype=np.int32))
    config = f"{getattr(model, 'name', type(model).__name__)}:render:{layer}:{channels}:{seeds}:{steps}:{size}:{seed}"
    return Task(f"render {layer}", fn, config), items
