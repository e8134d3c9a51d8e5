"""The explanation metrics against Quantus 0.6, Captum and pytorch-grad-cam, on identical weights, inputs, maps and
perturbations, in float64; known answers on a linear model; the sanity check's outcome on the embedded default.

The network is a small CNN written twice, in PyTorch and as a plain JAX function with the same weights (through
``models.wrap``: the metrics see it as any adapted model). Quantus ranks channel elements of maps copied to every
channel; jaxviz ranks pixels: they agree with ``features_in_step = 3 * pixels_per_step`` and tie-free maps, and
Quantus's random pixel subsets are replaced by ours, expanded to channel elements (the draws are the only
difference the tests remove).
"""

from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxviz
from jaxviz import metrics, models
from jaxviz.metrics import complexity, faithfulness, localization, randomization, road, robustness

from conftest import to_nchw

#: max |ours - reference| <= METRIC_RTOL x max |reference| (float64 on both sides).
METRIC_RTOL = 1e-4
#: pytorch-grad-cam's ROAD solves and scores in float32.
ROAD_RTOL = 1e-3
SIZE, CLASSES = 36, 10


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 16, 3, padding=1)
        self.fc = torch.nn.Linear(16, CLASSES)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        return self.fc(torch.relu(self.conv2(x)).mean(dim=(2, 3)))


def _jax_twin(net: TinyNet):
    params = {name: {"w": jnp.asarray(getattr(net, name).weight.detach().numpy()),
                     "b": jnp.asarray(getattr(net, name).bias.detach().numpy())} for name in ("conv1", "conv2", "fc")}

    def conv(p, x):
        w = jnp.transpose(p["w"], (2, 3, 1, 0))  # OIHW -> HWIO
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["b"]

    def fn(p, x):
        x = jax.nn.relu(conv(p["conv1"], x.astype(p["conv1"]["w"].dtype)))
        x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        x = jax.nn.relu(conv(p["conv2"], x)).mean(axis=(1, 2))
        return x @ p["fc"]["w"].T + p["fc"]["b"]

    return models.wrap(fn, params, input_size=SIZE, num_classes=CLASSES, preprocessing=models.Preprocessing.identity())


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    with jax.enable_x64(True):
        net = TinyNet().double().eval()
        model, variables = _jax_twin(net)
        rng = np.random.default_rng(0)
        x = rng.uniform(size=(3, SIZE, SIZE, 3))
        y = np.array([1, 4, 7])
        maps = rng.normal(size=(3, SIZE, SIZE))  # tie-free
    return dict(net=net, model=model, variables=variables, x=x, y=y, maps=maps)


@pytest.fixture(autouse=True)
def float64():
    torch.set_default_dtype(torch.float64)  # Quantus turns arrays into tensors of the default dtype
    with jax.enable_x64(True):
        yield
    torch.set_default_dtype(torch.float32)


def _quantus(metric, s, **kw):
    return metric(model=s["net"], x_batch=to_nchw(s["x"]).numpy(), y_batch=s["y"], a_batch=s["maps"][:, None],
                  device="cpu", channel_first=True, **kw)


def _close(ours, theirs, what, rtol=METRIC_RTOL):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, f"{what}: {ours.shape} != {theirs.shape}"
    err, scale = np.max(np.abs(ours - theirs)), np.max(np.abs(theirs))
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol} x {scale:.3g}"


def test_the_twins_agree(tiny):
    ours = tiny["model"].apply(tiny["variables"], jnp.asarray(tiny["x"]))
    _close(ours, tiny["net"](to_nchw(tiny["x"])).detach().numpy(), "logits", 1e-10)


def test_pixel_flipping_matches_quantus(tiny):
    import quantus

    ours = faithfulness.pixel_flipping(tiny["model"], tiny["variables"], tiny["x"], tiny["y"], tiny["maps"],
                                       pixels_per_step=36)
    theirs = _quantus(quantus.PixelFlipping(features_in_step=3 * 36, disable_warnings=True), tiny)
    _close(ours, theirs, "pixel flipping")


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_region_perturbation_matches_quantus_with_padding(tiny, order):
    import quantus

    ours = faithfulness.region_perturbation(tiny["model"], tiny["variables"], tiny["x"], tiny["y"], tiny["maps"],
                                            patch=8, order=order, regions=20)  # 36 px: padded to 40, 25 regions
    theirs = _quantus(quantus.RegionPerturbation(patch_size=8, order=order, regions_evaluation=20,
                                                 disable_warnings=True), tiny)
    _close(ours, np.stack(theirs), f"region perturbation {order}")


def _expanded_draws(subsets: np.ndarray):
    """Quantus's ``np.random.choice(D, k, replace=False)`` calls (run-major, then image), answered with our pixel
    subsets as the channel elements of those pixels."""
    queue = collections.deque()
    runs, b, h, w = subsets.shape
    for r in range(runs):
        for i in range(b):
            pixels = np.flatnonzero(subsets[r, i])
            queue.append(np.concatenate([c * h * w + pixels for c in range(3)]))
    return lambda *args, **kwargs: queue.popleft()


def test_faithfulness_correlation_matches_quantus_on_the_same_subsets(tiny, monkeypatch):
    import quantus

    subsets = faithfulness.random_subsets(jax.random.key(1), 3, SIZE, SIZE, runs=20, subset_size=64)
    ours = faithfulness.faithfulness_correlation(tiny["model"], tiny["variables"], tiny["x"], tiny["y"],
                                                 tiny["maps"], subsets=subsets)
    monkeypatch.setattr(np.random, "choice", _expanded_draws(np.asarray(subsets)))
    theirs = _quantus(quantus.FaithfulnessCorrelation(nr_runs=20, subset_size=3 * 64, return_aggregate=False,
                                                      disable_warnings=True), tiny)
    _close(ours, theirs, "faithfulness correlation")


def test_road_imputation_and_scores_match_pytorch_grad_cam(tiny):
    from pytorch_grad_cam.metrics.road import (
        NoisyLinearImputer,
        ROADLeastRelevantFirst,
        ROADMostRelevantFirst,
    )
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.set_default_dtype(torch.float32)  # its imputer writes a float32 solution into the image
    x = tiny["x"].astype(np.float32)
    net = TinyNet().float().eval()
    net.load_state_dict({k: v.float() for k, v in tiny["net"].state_dict().items()})
    cams = (tiny["maps"] - tiny["maps"].min()) / np.ptp(tiny["maps"])
    removed = cams[0] >= np.percentile(cams[0], 80)
    theirs = NoisyLinearImputer(noise=0.0)(torch.from_numpy(x[0].transpose(2, 0, 1).copy()),
                                           torch.from_numpy((~removed).astype(np.float32)))
    ours = road.impute(jnp.asarray(tiny["x"][0]), jnp.asarray(removed))
    _close(ours, theirs.numpy().transpose(1, 2, 0), "ROAD imputation", 1e-5)  # float32 solution there

    targets = [ClassifierOutputTarget(int(c)) for c in tiny["y"]]
    for order, percentile, cls in (("morf", 80, ROADMostRelevantFirst), ("lerf", 20, ROADLeastRelevantFirst)):
        metric = cls(percentile)
        metric.perturbation.imputer.noise = 0.0
        theirs = metric(to_nchw(x), cams.astype(np.float32), targets, net)
        ours = road.road(tiny["model"], tiny["variables"], tiny["x"], tiny["y"], cams, percentiles=percentile,
                         order=order, noise=0.0)
        _close(ours, theirs, f"ROAD {order}", ROAD_RTOL)


def _captum_saliency(net):
    from captum.attr import Saliency

    return lambda inputs, target: Saliency(net).attribute(inputs, target=target, abs=False)


def test_max_sensitivity_matches_captum_on_the_same_noise(tiny):
    from captum.metrics import sensitivity_max

    u = np.asarray(jax.random.uniform(jax.random.key(2), (6, *tiny["x"].shape), jnp.float64, -0.02, 0.02))
    ours = robustness.max_sensitivity(jaxviz.saliency, tiny["model"], tiny["variables"], tiny["x"], tiny["y"],
                                      noise=u, batch_size=6)
    interleaved = torch.from_numpy(np.transpose(u, (1, 0, 4, 2, 3)).reshape(-1, 3, SIZE, SIZE).copy())

    def same_noise(inputs, radius):  # Captum repeats each image n times in a row
        return inputs + interleaved

    theirs = sensitivity_max(_captum_saliency(tiny["net"]), to_nchw(tiny["x"]), perturb_func=same_noise,
                             n_perturb_samples=6, target=torch.from_numpy(tiny["y"]))
    _close(ours, theirs.detach().numpy(), "max sensitivity")


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_matches_captum_on_the_same_perturbations(tiny, normalize):
    from captum.metrics import infidelity

    p = np.asarray(0.1 * jax.random.normal(jax.random.key(3), (5, *tiny["x"].shape), jnp.float64))
    maps = np.asarray(jaxviz.saliency(tiny["model"], tiny["variables"], jnp.asarray(tiny["x"]), tiny["y"]))
    ours = robustness.infidelity(tiny["model"], tiny["variables"], tiny["x"], tiny["y"], maps, noise=p,
                                 normalize=normalize)
    interleaved = torch.from_numpy(np.transpose(p, (1, 0, 4, 2, 3)).reshape(-1, 3, SIZE, SIZE).copy())

    def same_perturbation(inputs):
        return interleaved, inputs - interleaved

    theirs = infidelity(tiny["net"], same_perturbation, to_nchw(tiny["x"]), to_nchw(maps),
                        target=torch.from_numpy(tiny["y"]), n_perturb_samples=5, normalize=normalize)
    _close(ours, theirs.detach().numpy(), f"infidelity normalize={normalize}")


def _quantus_saliency(model, inputs, targets, **kwargs):
    x = torch.from_numpy(np.asarray(inputs)).requires_grad_()
    model(x)[torch.arange(len(targets)), torch.from_numpy(np.asarray(targets))].sum().backward()
    return x.grad.numpy()


def test_local_lipschitz_matches_quantus_on_the_same_noise(tiny, monkeypatch):
    import quantus

    n = np.asarray(0.1 * jax.random.normal(jax.random.key(4), (4, *tiny["x"].shape), jnp.float64))
    ours = robustness.local_lipschitz(jaxviz.saliency, tiny["model"], tiny["variables"], tiny["x"], tiny["y"],
                                      noise=n)
    queue = collections.deque(np.transpose(n, (0, 1, 4, 2, 3)).reshape(4, 3, -1))
    monkeypatch.setattr(np.random, "normal", lambda *args, **kwargs: queue.popleft())
    a = _quantus_saliency(tiny["net"], to_nchw(tiny["x"]).numpy(), tiny["y"])
    theirs = quantus.LocalLipschitzEstimate(nr_samples=4, normalise=False, abs=False, disable_warnings=True)(
        model=tiny["net"], x_batch=to_nchw(tiny["x"]).numpy(), y_batch=tiny["y"], a_batch=a, device="cpu",
        channel_first=True, explain_func=_quantus_saliency)
    _close(ours, theirs, "local Lipschitz")


def _pixel_saliency(model, variables, images, target):
    return jnp.sum(jaxviz.saliency(model, variables, images, target), axis=-1)


def test_random_logit_matches_quantus_with_its_draw(tiny):
    import quantus

    np.random.seed(42)
    r = np.random.randint(0, CLASSES - 1, size=3)
    other = np.where(r < tiny["y"], r, r + 1)
    ours = randomization.random_logit(_pixel_saliency, tiny["model"], tiny["variables"], tiny["x"], tiny["y"],
                                      other=other, measure="spearman")

    def explain(model, inputs, targets, **kwargs):
        return _quantus_saliency(model, inputs, targets).sum(axis=1, keepdims=True)

    a = explain(tiny["net"], to_nchw(tiny["x"]).numpy(), tiny["y"])
    theirs = quantus.RandomLogit(num_classes=CLASSES, similarity_func=quantus.similarity_func.correlation_spearman,
                                 disable_warnings=True)(
        model=tiny["net"], x_batch=to_nchw(tiny["x"]).numpy(), y_batch=tiny["y"], a_batch=a, device="cpu",
        channel_first=True, explain_func=explain)
    _close(ours, theirs, "random logit")


def test_similarities_match_scipy_and_scikit_image(tiny):
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    a, b = tiny["maps"], tiny["maps"] + np.random.default_rng(1).normal(size=tiny["maps"].shape)
    a = np.where(a > 0.5, 0.5, a)  # ties, as ReLU'd maps have
    ours = randomization.similarity(a, b, "spearman")
    _close(ours, [spearmanr(x.ravel(), y.ravel())[0] for x, y in zip(a, b, strict=True)], "spearman")
    ours = randomization.similarity(a, b, "ssim")
    theirs = [structural_similarity(x, y, data_range=max(x.max(), y.max()) - min(x.min(), y.min()))
              for x, y in zip(a, b, strict=True)]
    _close(ours, theirs, "ssim")


def test_localization_and_complexity_match_quantus(tiny):
    import quantus

    masks = localization.box_masks((3, SIZE, SIZE), [[(0, 0, 12, 12)], [(10, 5, 30, 20)], [(20, 20, 36, 36)]])
    s = masks[:, None].astype(float)
    maps = tiny["maps"]
    for ours_fn, theirs_cls in ((localization.pointing_game, quantus.PointingGame),
                                (localization.relevance_mass, quantus.RelevanceMassAccuracy),
                                (localization.relevance_rank, quantus.RelevanceRankAccuracy)):
        theirs = _quantus(theirs_cls(disable_warnings=True), tiny, s_batch=s)
        _close(ours_fn(maps, masks), np.asarray(theirs, float), ours_fn.__name__)
    per_image = {"normalise_axes": (1, 2, 3)}
    for ours_fn, theirs_cls in ((complexity.sparseness, quantus.Sparseness), (complexity.complexity,
                                                                                quantus.Complexity)):
        theirs = _quantus(theirs_cls(normalise_func_kwargs=per_image, disable_warnings=True), tiny)
        _close(ours_fn(maps), theirs, ours_fn.__name__)


def _linear_two_class():
    """logits = (w . x, 0): the target's probability is sigmoid of a sum of per-pixel contributions."""
    w = np.random.default_rng(5).normal(size=(SIZE, SIZE, 3))

    def fn(p, x):
        z = jnp.sum(x.astype(p.dtype) * p, axis=(1, 2, 3))
        return jnp.stack([z, jnp.zeros_like(z)], axis=1)

    return models.wrap(fn, jnp.asarray(w), input_size=SIZE, num_classes=2,
                       preprocessing=models.Preprocessing.identity()), w


def test_the_true_contributions_score_best_on_deletion_and_insertion(tiny):
    (model, variables), w = _linear_two_class()
    x = tiny["x"][:1]
    truth = np.sum(w * x[0], axis=-1)  # pixel p's contribution to the logit, zeros as the baseline
    random_maps = np.random.default_rng(6).normal(size=(12, SIZE, SIZE))
    images = np.repeat(x, 13, axis=0)
    maps = np.concatenate([truth[None], random_maps])
    kw = dict(pixels_per_step=36, baseline="zeros")
    dele = np.asarray(faithfulness.deletion(model, variables, images, 0, maps, **kw))
    ins = np.asarray(faithfulness.insertion(model, variables, images, 0, maps, **kw))
    assert dele[0] < dele[1:].min() and ins[0] > ins[1:].max(), (dele, ins)
    # a random order removes the contributions evenly: its curves stay near the straight line between the ends
    ends = np.asarray(faithfulness.deletion(model, variables, images[:1], 0, truth[None], curve=True, **kw))[0]
    assert abs(np.median(dele[1:]) - np.median(ins[1:])) < 0.1 and dele[0] < 0.5 * ends[0]


def test_sanity_check_guided_backprop_survives_randomization_gradients_do_not(lite0):
    """Adebayo et al.'s finding on the embedded default: randomizing Lite0's top groups barely changes guided
    backprop's map, while the gradient's rank correlation with its original falls."""
    model, variables = lite0
    x = jnp.asarray(jaxviz.io.image.sample("chelsea", 64)[None])
    groups = list(reversed(randomization.parameter_groups(model, variables, x)))
    assert groups[:3] == ["fc", "bn1", "conv_head"] and groups[-1] == "conv_stem", groups
    kw = dict(key=jax.random.key(0), groups=groups[:6], measure="abs_spearman")
    gradient = randomization.model_parameter_randomization(
        lambda *a: jaxviz.reduce_channels(jaxviz.saliency(*a)), model, variables, x, 285, **kw)
    guided = randomization.model_parameter_randomization(
        lambda *a: jaxviz.reduce_channels(jaxviz.guided_backprop(*a)), model, variables, x, 285, **kw)
    last = groups[5]
    assert float(guided[last][0]) > 0.5 and float(gradient[last][0]) < float(guided[last][0]) - 0.2, (gradient, guided)


def test_bad_input_is_refused(tiny):
    m, v, x, y = tiny["model"], tiny["variables"], tiny["x"], tiny["y"]
    with pytest.raises(ValueError, match=r"maps must be \(B, H, W\)"):
        faithfulness.deletion(m, v, x, y, tiny["maps"][:, :10])
    with pytest.raises(ValueError, match="NaN"):
        faithfulness.deletion(m, v, x, y, np.full_like(tiny["maps"], np.nan))
    with pytest.raises(ValueError, match="pixels_per_step"):
        faithfulness.deletion(m, v, x, y, tiny["maps"], pixels_per_step=0)
    with pytest.raises(ValueError, match="unknown baseline"):
        faithfulness.deletion(m, v, x, y, tiny["maps"], baseline="grey")
    with pytest.raises(ValueError, match="pass key="):
        faithfulness.faithfulness_correlation(m, v, x, y, tiny["maps"])
    with pytest.raises(ValueError, match="unknown similarity"):
        randomization.similarity(tiny["maps"], tiny["maps"], "hog")
    with pytest.raises(ValueError, match="unknown parameter group"):
        randomization.randomize(jax.random.key(0), v, ["conv9"])
    assert set(metrics.METRICS) >= {"deletion", "insertion", "road", "infidelity", "max_sensitivity"}


def test_metrics_compose_with_jit(tiny):
    f = jax.jit(functools.partial(faithfulness.deletion, tiny["model"], pixels_per_step=72))
    direct = faithfulness.deletion(tiny["model"], tiny["variables"], tiny["x"], tiny["y"], tiny["maps"],
                                   pixels_per_step=72)
    _close(f(tiny["variables"], tiny["x"], tiny["y"], tiny["maps"]), direct, "jit", 1e-12)
