"""jaxviz: CNN visualization and inversion as pure JAX transforms.

The families, each a subpackage (docs/architecture.md is the map):

* :mod:`jaxviz.attribution`: what the network looks at (saliency, guided backprop, CAM, ...);
* :mod:`jaxviz.synthesis`: make an image (render, DeepDream, class models, fooling, inversion);
* :mod:`jaxviz.style`: Gram losses, textures, style transfer;
* :mod:`jaxviz.datafree`: images from the network alone (DeepInversion, distillation);
* :mod:`jaxviz.representation`: filters, activations, features, neighbours, patches;
* :mod:`jaxviz.run`: a method (and metrics) over a whole data set, sharded over devices and hosts, resumable;
* :mod:`jaxviz.io`: images, plots, labels; :mod:`jaxviz.core`: objectives, the loop, batching;
* :mod:`jaxviz.models`: the ports and the adapters for any JAX model; :mod:`jaxviz.experiments`: the digits
  experiments and the demo gallery.

The main functions are also here, flat (``jaxviz.saliency``, ``jaxviz.render``, ``jaxviz.deepinversion``).
Everything loads on first use: ``import jaxviz`` imports no JAX.

Example:
    >>> import jaxviz
    >>> model, variables = jaxviz.models.load("efficientnet_lite0")   # doctest: +SKIP
    >>> x = jaxviz.io.image.sample("chelsea", size=model.input_size)[None]  # doctest: +SKIP
    >>> jaxviz.top_k(model, model.apply(variables, x))[0][0]["label"]  # doctest: +SKIP
    'Egyptian cat'
    >>> maps = jaxviz.guided_backprop(model, variables, x, 285)  # doctest: +SKIP
"""

from jaxviz._lazy import lazy

__version__ = "0.1.0"

FAMILIES = ("attribution", "metrics", "synthesis", "style", "datafree", "representation", "run", "io", "core",
            "models", "experiments", "cli")

#: the flat API: name -> "family.module:attribute"
API = {
    # attribution
    "saliency": "attribution.gradients", "smoothgrad": "attribution.gradients",
    "gradient_x_input": "attribution.gradients", "vargrad": "attribution.gradients",
    "squaregrad": "attribution.gradients", "gradient_shap": "attribution.gradient_shap",
    "gradient_shap_draws": "attribution.gradient_shap",
    "smoothgrad_noise": "attribution.gradients", "integrated_gradients": "attribution.gradients",
    "reduce_channels": "attribution.gradients", "guided_backprop": "attribution.guided",
    "deconvnet": "attribution.guided", "occlusion": "attribution.occlusion", "cam": "attribution.cam",
    "grad_cam": "attribution.cam", "normalize": "attribution.cam", "guided_grad_cam": "attribution.guided_grad_cam",
    "cam_map": "attribution.cam_family", "grad_cam_plus_plus": "attribution.cam_family",
    "xgrad_cam": "attribution.cam_family", "hires_cam": "attribution.cam_family",
    "layer_cam": "attribution.cam_family", "eigen_cam": "attribution.cam_family",
    "eigen_grad_cam": "attribution.cam_family", "score_cam": "attribution.cam_perturbation",
    "ablation_cam": "attribution.cam_perturbation", "rise": "attribution.rise", "rise_masks": "attribution.rise",
    "blur_integrated_gradients": "attribution.blur_ig", "deeplift": "attribution.deeplift",
    "lrp": "attribution.lrp",
    "guided_integrated_gradients": "attribution.guided_ig", "xrai": "attribution.xrai",
    # what is scored
    "Neuron": "core.objectives", "Channel": "core.objectives", "Objective": "core.objectives",
    # synthesis
    "render": "synthesis.render", "render_many": "synthesis.render", "dream": "synthesis.dream",
    "class_visualization": "synthesis.classviz", "fgsm": "synthesis.adversarial", "pgd": "synthesis.adversarial",
    "fool": "synthesis.adversarial", "invert": "synthesis.inversion", "accentuate": "synthesis.accentuation",
    "caricature": "synthesis.accentuation",
    # style
    "style_transfer": "style.transfer:transfer", "texture": "style.texture:synthesize",
    "train_stylizer": "style.fast:train", "stylize": "style.fast",
    # data-free
    "deepinversion": "datafree.deepinversion", "distill": "datafree.distill",
    # representation
    "activation_grid": "representation.activations", "filter_grid": "representation.filters",
    "top_patches": "representation.patches", "knn": "representation.neighbors",
    # io
    "imagenet_labels": "io.labels", "top_k": "io.labels",
}

__getattr__, __dir__ = lazy(__name__, FAMILIES, API)
__all__ = sorted((*FAMILIES, *API))
