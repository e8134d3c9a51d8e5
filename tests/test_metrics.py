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
#: our conjugate-gradient ROAD imputation (tol 1e-7) against a direct sparse solve.
IMPUTE_RTOL = 1e-5
#: scikit-image's HOG sums each cell in C float (single precision), whatever the input's precision.
HOG_RTOL = 1e-6
SIZE, CLASSES = 36, 10


class TinyNet(torch.nn.Module):
    def __init__(self, channels: int = 3):
        super().__init__()
        self.conv1, self.conv2 = torch.nn.Conv2d(channels, 8, 3, padding=1), torch.nn.Conv2d(8, 16, 3, padding=1)
        self.fc = torch.nn.Linear(16, CLASSES)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        return self.fc(torch.relu(self.conv2(x)).mean(dim=(2, 3)))


def _twin_params(state: dict) -> dict:
    return {name: {"w": jnp.asarray(state[f"{name}.weight"].detach().numpy()),
                   "b": jnp.asarray(state[f"{name}.bias"].detach().numpy())} for name in ("conv1", "conv2", "fc")}


def _jax_twin(net: TinyNet):
    """The twin reads the first ``net.conv1.in_channels`` channels: a grayscale net sees one of three equal ones."""
    params = _twin_params(net.state_dict())

    def conv(p, x):
        w = jnp.transpose(p["w"], (2, 3, 1, 0))  # OIHW -> HWIO
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["b"]

    def fn(p, x):
        x = x[..., :p["conv1"]["w"].shape[1]].astype(p["conv1"]["w"].dtype)
        x = jax.nn.relu(conv(p["conv1"], x))
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


def _runner_up_overtakes(net: TinyNet, gray: np.ndarray, maps: np.ndarray, percentage: float) -> np.ndarray:
    """Shifts ``net``'s fc bias of one class so that it overtakes the top class when ``percentage`` % of the pixels
    (the most relevant first) are imputed, and returns the top class: an accuracy curve that falls (a random
    tiny net's prediction does not depend on its input enough to change by itself)."""
    removed, k = np.zeros((len(maps), SIZE * SIZE), bool), int(SIZE * SIZE * percentage / 100)
    np.put_along_axis(removed, np.argsort(-maps.reshape(len(maps), -1), axis=1)[:, :k], True, axis=1)
    imputed = jax.jit(jax.vmap(road.impute))(jnp.asarray(gray), jnp.asarray(removed.reshape(-1, SIZE, SIZE)))
    with torch.no_grad():
        clean, far = net(to_nchw(gray)).numpy(), net(to_nchw(np.array(imputed))).numpy()
        top = int(clean[0].argmax())
        gain = (far - clean) - (far - clean)[:, [top]]
        gain[:, top] = -np.inf
        other = int(np.argmax(gain.min(axis=0)))
        lo, hi = np.max(far[:, top] - far[:, other]), np.min(clean[:, top] - clean[:, other])
        assert lo < hi and np.all(clean.argmax(axis=1) == top), (lo, hi)
        net.fc.bias[other] += (lo + hi) / 2
    return np.full(len(maps), top)


def test_road_matches_quantus_on_grayscale_images(tiny):
    """Quantus 0.6's ROAD fails on RGB (it indexes pixels by positions in the map broadcast to 3 channels), so the
    comparison runs a one-channel net, whose twin reads one of three equal channels: our imputation solves each
    channel alike. Quantus's perturbed images are recorded and scored, so the curves' logits are compared too."""
    import quantus
    from quantus.functions.perturb_func import noisy_linear_imputation

    rgb_removed = np.zeros(SIZE * SIZE, bool)
    rgb_removed[np.argsort(-tiny["maps"][0].ravel())[:300]] = True
    rgb_removed = rgb_removed.reshape(SIZE, SIZE)
    theirs = noisy_linear_imputation(to_nchw(tiny["x"][:1]).numpy()[0], np.flatnonzero(rgb_removed), noise=0.0)
    ours = road.impute(jnp.asarray(tiny["x"][0]), jnp.asarray(rgb_removed))
    _close(ours, theirs.transpose(1, 2, 0), "Quantus's ROAD imputation", IMPUTE_RTOL)

    torch.manual_seed(1)
    net = TinyNet(channels=1).double().eval()
    gray = tiny["x"].mean(axis=-1, keepdims=True)
    rgb = np.repeat(gray, 3, axis=-1)
    y, percentages = _runner_up_overtakes(net, gray, tiny["maps"], 60), [2, 10, 20, 30, 45, 60, 90]
    model, variables = _jax_twin(net)
    metric = quantus.ROAD(percentages=percentages, noise=0.0, disable_warnings=True)
    imputed, perturb = [], metric.perturb_func

    def recording(**kwargs):
        imputed.append(perturb(**kwargs))
        return imputed[-1]

    metric.perturb_func = recording
    theirs = metric(model=net, x_batch=to_nchw(gray).numpy(), y_batch=y, a_batch=tiny["maps"][:, None], device="cpu",
                    channel_first=True)
    kw = dict(percentages=percentages, noise=0.0, curve=True)
    accuracy = road.road(model, variables, rgb, y, tiny["maps"], output="accuracy", **kw)
    assert list(theirs) == percentages, theirs
    _close(np.mean(accuracy, axis=0), list(theirs.values()), "ROAD accuracy curve vs Quantus")
    assert accuracy[:, 0].min() == 1 and accuracy[:, -1].max() == 0, accuracy  # the curve falls
    their_logits = net(torch.from_numpy(np.stack(imputed))).detach().numpy()  # Quantus loops over p, then images
    their_logits = their_logits[np.arange(len(imputed)), np.tile(y, len(percentages))].reshape(len(percentages), -1).T
    before = np.asarray(model.apply(variables, jnp.asarray(rgb)))[np.arange(3), y]
    ours = road.road(model, variables, rgb, y, tiny["maps"], output="logit", **kw) + before[:, None]
    _close(ours, their_logits, "ROAD logits on Quantus's imputed images", IMPUTE_RTOL)


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


@pytest.mark.parametrize("cascading", [True, False])
def test_mprt_matches_quantus_on_its_redrawn_weights(tiny, monkeypatch, cascading):
    """Quantus re-initializes each torch layer (``reset_parameters``, its own seed); its weights, recorded as it
    yields each randomized model, are what our redraw hands back, so both explain the same networks."""
    import quantus
    from quantus.helpers.model.pytorch_model import PyTorchModel

    drawn, generator = {}, PyTorchModel.get_random_layer_generator

    def recording(self, *args, **kwargs):
        for name, randomized in generator(self, *args, **kwargs):
            drawn[name] = _twin_params(randomized.state_dict())
            yield name, randomized

    monkeypatch.setattr(PyTorchModel, "get_random_layer_generator", recording)
    original = tiny["variables"]

    def redraw(key, variables, chosen):
        params = drawn[chosen[-1]]  # Quantus's model at the step that re-drew the last chosen layer
        for name in params:
            same = all(bool(jnp.all(params[name][k] == original[name][k])) for k in ("w", "b"))
            assert same == (name not in chosen), (name, chosen)
        return params

    def explain(model, inputs, targets, **kwargs):
        return _quantus_saliency(model, inputs, targets).sum(axis=1, keepdims=True)

    x = to_nchw(tiny["x"]).numpy()
    a = explain(tiny["net"], x, tiny["y"])
    for absolute in (True, False):
        theirs = quantus.MPRT(layer_order="top_down" if cascading else "independent", abs=absolute,
                              disable_warnings=True)(model=tiny["net"], x_batch=x, y_batch=tiny["y"], a_batch=a,
                                                     device="cpu", channel_first=True, explain_func=explain)
        ours = randomization.model_parameter_randomization(
            _pixel_saliency, tiny["model"], original, tiny["x"], tiny["y"], key=jax.random.key(0),
            cascading=cascading, measure="abs_spearman" if absolute else "spearman", redraw=redraw)
        layers = ["fc", "conv2", "conv1"] if cascading else ["conv1", "conv2", "fc"]  # independent: bottom up
        assert list(theirs) == ["original", *layers] and set(ours) == set(layers), list(theirs)
        for name, scores in ours.items():
            _close(scores, theirs[name], f"MPRT {name} cascading={cascading} abs={absolute}")


def test_layer_groups_are_paths_in_forward_order():
    params = {"fc": {"w": jnp.ones((4, 2))}, "body": {"b_conv": {"w": jnp.full((3, 4), 0.5)},
                                                      "a_norm": {"scale": jnp.arange(1.0, 5.0), "bias": jnp.zeros(4)}}}

    def fn(p, x):
        h = x.reshape(x.shape[0], -1)[:, :3] @ p["body"]["b_conv"]["w"]
        return (h * p["body"]["a_norm"]["scale"] + p["body"]["a_norm"]["bias"]) @ p["fc"]["w"]

    model, variables = models.wrap(fn, params, input_size=4, num_classes=2,
                                   preprocessing=models.Preprocessing.identity())
    x = jnp.ones((1, 4, 4, 3))
    assert randomization.parameter_groups(model, variables, x) == ["body", "fc"]
    layers = randomization.parameter_groups(model, variables, x, layers=True)
    assert layers == ["body/b_conv", "body/a_norm", "fc"], layers
    changed = randomization.randomize(jax.random.key(0), variables, ["body/a_norm"])
    assert bool(jnp.all(changed["body"]["b_conv"]["w"] == 0.5)) and bool(jnp.all(changed["fc"]["w"] == 1))
    assert not bool(jnp.all(changed["body"]["a_norm"]["scale"] == variables["body"]["a_norm"]["scale"]))
    scores = randomization.model_parameter_randomization(
        lambda m, v, i, t: jnp.sum(jaxviz.saliency(m, v, i, t), axis=-1), model, variables, x, 0,
        key=jax.random.key(1), layers=True)
    assert list(scores) == ["fc", "body/a_norm", "body/b_conv"]


@pytest.mark.parametrize("options", [{}, dict(pixels_per_cell=(5, 7), cells_per_block=(2, 1), orientations=7,
                                              block_norm="L1"),
                                     dict(pixels_per_cell=8, cells_per_block=2, block_norm="L2"),
                                     dict(pixels_per_cell=(6, 9), orientations=12, block_norm="L1-sqrt")])
def test_hog_descriptors_match_scikit_image(options):
    from skimage.feature import hog

    maps = np.random.default_rng(7).normal(size=(3, 64, 80))
    maps[0, :20] = 0.25  # flat regions: zero gradients, empty bins
    ours = jax.jit(functools.partial(randomization.hog_descriptors, **options))(maps)
    sk = {k: (v, v) if isinstance(v, int) and k != "orientations" else v for k, v in options.items()}
    theirs = np.stack([hog(m, **{"pixels_per_cell": (16, 16), **sk}) for m in maps])
    _close(ours, theirs, f"HOG {options}", HOG_RTOL)
    _close(randomization.hog_descriptors(maps[1:2], **options), theirs[1:2], "HOG of one map", HOG_RTOL)


def test_similarities_match_scipy_and_scikit_image(tiny):
    from scipy.stats import pearsonr, spearmanr
    from skimage.feature import hog
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    a, b = tiny["maps"], tiny["maps"] + rng.normal(size=tiny["maps"].shape)
    a = np.where(a > 0.5, 0.5, a)  # ties, as ReLU'd maps have
    ours = randomization.similarity(a, b, "spearman")
    _close(ours, [spearmanr(x.ravel(), y.ravel())[0] for x, y in zip(a, b, strict=True)], "spearman")
    ours = randomization.similarity(a, b, "ssim")
    theirs = [structural_similarity(x, y, data_range=max(x.max(), y.max()) - min(x.min(), y.min()))
              for x, y in zip(a, b, strict=True)]
    _close(ours, theirs, "ssim")
    big = rng.normal(size=(3, 64, 64))  # Adebayo et al.'s 16-px cells (the default) need 48 x 48
    cases = ((a, b, 8, {"hog": {"pixels_per_cell": 8}}), (big, big + rng.normal(size=big.shape), 16, {}))
    for first, second, cell, options in cases:
        unit = [(m - m.min(axis=(1, 2), keepdims=True)) / np.ptp(m, axis=(1, 2), keepdims=True)
                for m in (first, second)]
        hogs = [[hog(x, pixels_per_cell=(cell, cell)) for x in m] for m in unit]  # as Adebayo et al. call it
        for how, reference in (("hog", pearsonr), ("hog_spearman", spearmanr)):
            ours = randomization.similarity(first, second, how, **options)
            _close(ours, [reference(x, y)[0] for x, y in zip(*hogs, strict=True)], f"{how}, {cell}-px cells",
                   HOG_RTOL)


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
        randomization.similarity(tiny["maps"], tiny["maps"], "kendall")
    with pytest.raises(ValueError, match="too small for HOG blocks"):
        randomization.similarity(tiny["maps"], tiny["maps"], "hog")  # 36 px: 2 x 2 cells of 16 px
    with pytest.raises(ValueError, match="not both"):
        road.road(m, v, x, y, tiny["maps"], percentiles=80, percentages=20, noise=0.0)
    with pytest.raises(ValueError, match="unknown parameter group"):
        randomization.randomize(jax.random.key(0), v, ["conv9"])
    assert set(metrics.METRICS) >= {"deletion", "insertion", "road", "infidelity", "max_sensitivity"}


def test_metrics_compose_with_jit(tiny):
    f = jax.jit(functools.partial(faithfulness.deletion, tiny["model"], pixels_per_step=72))
    direct = faithfulness.deletion(tiny["model"], tiny["variables"], tiny["x"], tiny["y"], tiny["maps"],
                                   pixels_per_step=72)
    _close(f(tiny["variables"], tiny["x"], tiny["y"], tiny["maps"]), direct, "jit", 1e-12)
