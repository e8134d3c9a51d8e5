"""GradientSHAP: expected gradients times the input-baseline difference, with baselines drawn from a set.

For each of ``samples`` draws per image (Captum's ``GradientShap``): add Gaussian noise of ``stdev`` to the image,
pick a baseline at random from ``baselines`` and a point ``alpha ~ U(0, 1)`` on the straight path from it, and
take ``(noisy - baseline) * grad(baseline + alpha * (noisy - baseline))``; the attribution is the mean over the
draws. It approximates SHAP values when the baselines are a sample of the data (Lundberg and Lee 2017) and is
integrated gradients averaged over baselines (Erion et al.'s expected gradients) when ``stdev=0``.

Every draw is explicit: :func:`gradient_shap_draws` gives draw ``i``'s noise, baseline indices and alphas from
``fold_in(key, i)``, so the result is reproducible and can be fed to another implementation.

References:
    Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
    Erion et al., "Improving performance of deep learning models with axiomatic attribution priors and
    expected gradients", Nature Machine Intelligence 2021.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxviz.attribution.gradients import saliency
from jaxviz.core.batching import chunked_sum, per_pass, tile_target
from jaxviz.core.objectives import Target

__all__ = ["gradient_shap", "gradient_shap_draws"]


def gradient_shap_draws(key: jax.Array, index, shape, num_baselines: int, stdev: float):
    """Draw ``index``: (noise of ``shape`` (B, H, W, C), (B,) baseline indices, (B,) alphas in [0, 1))."""
    k_noise, k_base, k_alpha = jax.random.split(jax.random.fold_in(key, index), 3)
    noise = stdev * jax.random.normal(k_noise, shape)
    chosen = jax.random.randint(k_base, shape[:1], 0, num_baselines)
    alphas = jax.random.uniform(k_alpha, shape[:1])
    return noise, chosen, alphas


def gradient_shap(key: jax.Array, model, variables, images: jax.Array, target: Target, *, baselines,
                  samples: int = 5, stdev: float = 0.0, batch_size: int | None = None) -> jax.Array:
    """GradientSHAP maps (B, H, W, 3) of ``images`` against ``baselines`` (N, H, W, 3), e.g. a few data images.

    Args:
        key: a PRNG key; draw ``i`` uses :func:`gradient_shap_draws` ``(key, i, ...)``.
        baselines: (N, H, W, 3) reference images (or one (H, W, 3)); each draw picks one per image at random.
        samples: draws per image (Captum's ``n_samples``).
        stdev: standard deviation of the noise added to the images, in [0, 1] pixel units (Captum's ``stdevs``).
        batch_size: images per forward pass.
    """
    baselines = jnp.asarray(baselines, images.dtype)
    if baselines.ndim == 3:
        baselines = baselines[None]
    if baselines.shape[1:] != images.shape[1:]:
        raise ValueError(f"baselines must be (N, {', '.join(map(str, images.shape[1:]))}), got {baselines.shape}")
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    b = images.shape[0]

    def chunk(idx):
        noise, chosen, alphas = jax.vmap(
            lambda i: gradient_shap_draws(key, i, images.shape, baselines.shape[0], stdev))(idx)
        noisy = images[None] + noise  # (chunk, B, H, W, C)
        ref = baselines[chosen]
        diff = noisy - ref
        scaled = ref + alphas[..., None, None, None] * diff
        grads = saliency(model, variables, scaled.reshape((-1,) + images.shape[1:]),
                         tile_target(target, idx.shape[0], b))
        return diff * grads.reshape(diff.shape)

    return chunked_sum(chunk, samples, per_pass(batch_size, b), images.shape, images.dtype) / samples
