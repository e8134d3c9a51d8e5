"""Texture synthesis (Gatys, Ecker & Bethge, NeurIPS 2015).

A new image, of any size, whose Gram matrices at several layers match a source
texture's: start from uniform noise and minimize the style loss alone
(:func:`jaxviz.gram.style_loss`), with L-BFGS or Adam, through the loop style
transfer uses (:mod:`jaxviz.style`). Gram matrices are averages over positions,
so the result may be larger than the source: the texture, not the picture, is
what carries over. scikit-image's brick, grass and gravel are good sources
(``jaxviz.image.sample("brick")``).

Example:
    >>> r = synthesize(jax.random.key(0), model, variables, image.sample("gravel", 224), size=320)  # doctest: +SKIP
    >>> float(r.style_loss_end[0] / r.style_loss_start[0]) < 0.05                                    # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import jax

from jaxviz import style as style_mod

__all__ = ["synthesize", "DEFAULT_STEPS", "DEFAULT_TV_WEIGHT"]

DEFAULT_STEPS = 100
DEFAULT_TV_WEIGHT = 100.0  # without it Lite0 (stride-2 stem) leaves colourful pixel noise it cannot see


def synthesize(key: jax.Array, model, variables, source, *, size: int | tuple[int, int] | None = None,
               batch: int = 1, steps: int = DEFAULT_STEPS, layers: Sequence[str] | None = None,
               layer_weights: dict[str, float] | None = None, tv_weight: float = DEFAULT_TV_WEIGHT,
               optimizer_name: str = "adam", learning_rate: float | None = 0.05, scales: Sequence[float] = (1.0,),
               progress: bool | None = None) -> style_mod.Result:
    """``batch`` new (size x size) images with the texture of ``source`` ((H, W, 3) in [0, 1]).

    Args:
        key: PRNG key of the noise start (one image per batch entry).
        size: output side, or (height, width); default the source's size.
        steps: optimizer steps per scale; ``scales`` as in :func:`jaxviz.style.transfer`.
        layers: style layers (default :func:`jaxviz.gram.default_layers`).
        tv_weight: total-variation weight; the style loss is weighted 1.
        optimizer_name, learning_rate: ``"adam"`` (0.05) or ``"lbfgs"`` (None).
    """
    source = style_mod.check_images(source, "source")[:1]
    size = source.shape[1:3] if size is None else (size, size) if isinstance(size, int) else tuple(size)
    if min(size) < 16 or batch < 1:
        raise ValueError(f"size must be at least 16 px and batch at least 1, got size {size}, batch {batch}")
    return style_mod.gram_optimize(key, model, variables, None, source, size=size, batch=batch, style_weight=1.0,
                          content_weight=0.0, tv_weight=tv_weight, style_scale=1.0, scales=scales, steps=steps,
                          optimizer_name=optimizer_name, learning_rate=learning_rate, init="noise",
                          style_layers=layers, content_layer=None, layer_weights=layer_weights,
                          preserve_colors=False, progress=progress, desc="texture")
