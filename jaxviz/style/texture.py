"""Texture synthesis (Gatys, Ecker & Bethge, NeurIPS 2015).

A new image, of any size, whose Gram matrices at several layers match a source
texture's: start from uniform noise and minimize the style loss
(:func:`jaxviz.style.gram.style_loss`), with L-BFGS or Adam, through the loop style
transfer uses (:mod:`jaxviz.style`); by default also the source's colour
distribution (:func:`jaxviz.style.gram.colour_loss`) and the low frequencies of its
luminance spectrum (:mod:`jaxviz.style.spectrum`, Liu et al. 2016), which keeps
long-range order such as a wall's rows of bricks. Gram matrices are averages over positions,
so the result may be larger than the source: the texture, not the picture, is
what carries over. scikit-image's brick, grass and gravel are good sources
(``jaxviz.io.image.sample("brick")``).

Example:
    >>> r = synthesize(jax.random.key(0), model, variables, image.sample("gravel", 224), size=320)  # doctest: +SKIP
    >>> float(r.style_loss_end[0] / r.style_loss_start[0]) < 0.05                                    # doctest: +SKIP
    True
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import optax

from jaxviz.style import transfer

__all__ = ["synthesize", "DEFAULTS", "DEFAULT_STEPS", "DEFAULT_TV_WEIGHT", "DEFAULT_COLOUR_WEIGHT", "DEFAULT_LR",
           "DEFAULT_SPECTRUM_WEIGHT", "DEFAULT_SPECTRUM_MAX_FREQUENCY", "default_optimizer"]

DEFAULT_STEPS = 100
DEFAULT_TV_WEIGHT = 100.0  # without it Lite0 (stride-2 stem) leaves colourful pixel noise it cannot see
#: Adam's learning rate on [0, 1] pixels, decayed to 0 by a cosine over each scale's steps
#: (:func:`default_optimizer`): a constant 0.05 ends its 100 steps still jumping, and the bricks come out
#: speckled (Lite0, 160 px, seeds 0-2: brick style loss 0.36-0.40 constant against 0.08-0.09 decayed; grass
#: 0.07-0.08 against 0.05, gravel 0.09 against 0.06). ``optax.lbfgs()`` works too.
DEFAULT_LR = 0.05
#: weight of :func:`jaxviz.style.gram.colour_loss` (the source's RGB distribution). On Lite0 (100 steps, 160 px
#: from 128 px sources) the Gram matrices alone leave blue and yellow casts over the grey brick, grass and
#: gravel; at 1e3 the style loss ends lower on all four bundled textures (brick 0.38 against 0.47, grass 0.078
#: against 0.107, gravel 0.093 against 0.133, the slide 0.091 against 0.102); at 1e4 the slide turns into a
#: two-tone brown-and-white patchwork (0.54)
DEFAULT_COLOUR_WEIGHT = 1e3
#: weight of :func:`jaxviz.style.spectrum.spectrum_loss` (Liu et al.'s spectrum constraint on the luminance), at
#: frequencies up to :data:`DEFAULT_SPECTRUM_MAX_FREQUENCY` cycles per pixel: the long-range order (the bricks'
#: columns) the Gram matrices lose. Over the whole spectrum it also imposes the source's fine detail on the
#: image's own phases, which paints speckle; 3e4 and more does so at low frequencies too.
DEFAULT_SPECTRUM_WEIGHT = 1e4
DEFAULT_SPECTRUM_MAX_FREQUENCY = 0.125
#: a texture's settings: the style loss (weight 1), the colour distribution, the spectrum, total variation, from
#: noise.
DEFAULTS = transfer.Settings(style_weight=1.0, content_weight=0.0, tv_weight=DEFAULT_TV_WEIGHT, init="noise",
                             colour_weight=DEFAULT_COLOUR_WEIGHT, spectrum_weight=DEFAULT_SPECTRUM_WEIGHT,
                             spectrum_max_frequency=DEFAULT_SPECTRUM_MAX_FREQUENCY)


@functools.lru_cache(maxsize=8)
def default_optimizer(steps: int) -> optax.GradientTransformation:
    """Adam at :data:`DEFAULT_LR`, cosine-decayed to 0 over ``steps`` (one object per ``steps``, so repeated
    textures share their compiled step)."""
    return optax.adam(optax.cosine_decay_schedule(DEFAULT_LR, steps))


def synthesize(key: jax.Array, model, variables, source, settings: transfer.Settings | None = None, *,
               size: int | tuple[int, int] | None = None, num_images: int = 1, steps: int = DEFAULT_STEPS,
               optimizer: optax.GradientTransformation | None = None, progress: bool | None = None,
               **overrides) -> transfer.Result:
    """``num_images`` new (size x size) images with the texture of ``source`` ((H, W, 3) in [0, 1]).

    Args:
        key: PRNG key of the noise start (one image each).
        settings: :class:`~jaxviz.style.transfer.Settings` (default :data:`DEFAULTS`), or its fields as keyword
            ``overrides``: ``style_layers``, ``layer_weights``, ``tv_weight``, ``colour_weight``,
            ``spectrum_weight`` (0: Gram matrices alone), ``scales`` (coarse to fine, as in
            :func:`jaxviz.style.transfer.transfer`).
        size: output side, or (height, width); default the source's size.
        steps: optimizer steps per scale.
        optimizer: an optax optimizer (default :func:`default_optimizer` of ``steps``; ``optax.lbfgs()``).
    """
    settings = transfer.with_overrides(settings, overrides, DEFAULTS)
    source = transfer.check_images(source, "source")[:1]
    size = source.shape[1:3] if size is None else (size, size) if isinstance(size, int) else tuple(size)
    if min(size) < 16 or num_images < 1:
        raise ValueError(f"size must be at least 16 px and num_images at least 1, got size {size}, "
                         f"num_images {num_images}")
    if optimizer is None:  # a bad ``steps`` is refused by the loop, with its message
        whole = not isinstance(steps, bool) and isinstance(steps, (int, float, np.integer)) and int(steps) == steps
        optimizer = default_optimizer(int(steps) if whole and steps >= 1 else 1)
    return transfer.gram_optimize(key, model, variables, None, source, settings, size=size, num_images=num_images,
                                  steps=steps, optimizer=optimizer, progress=progress, desc="texture")
