"""jaxviz: CNN visualization and inversion as pure JAX transforms.

The ports live in :mod:`jaxviz.models`; image I/O in :mod:`jaxviz.image`.
Attribution methods share the signature ``f(model, variables, images, target, **options)``.

Example:
    >>> import jaxviz
    >>> model, variables = jaxviz.models.load("efficientnet_lite0")   # doctest: +SKIP
    >>> x = jaxviz.image.sample("chelsea", size=model.input_size)[None]  # doctest: +SKIP
    >>> jaxviz.top_k(model, model.apply(variables, x))[0][0]["label"]  # doctest: +SKIP
    'Egyptian cat'
    >>> maps = jaxviz.guided_backprop(model, variables, x, 285)  # doctest: +SKIP
"""

from jaxviz import image, models
from jaxviz.attribution import integrated_gradients, reduce_channels, saliency, smoothgrad, smoothgrad_noise
from jaxviz.cam import cam, grad_cam, normalize
from jaxviz.guided import deconvnet, guided_backprop
from jaxviz.labels import imagenet_labels, top_k
from jaxviz.occlusion import occlusion
from jaxviz.targets import Channel, Neuron

__all__ = [
    "models", "image", "imagenet_labels", "top_k",
    "saliency", "guided_backprop", "deconvnet", "smoothgrad", "smoothgrad_noise", "integrated_gradients",
    "occlusion", "cam", "grad_cam", "normalize", "reduce_channels", "Neuron", "Channel",
]
__version__ = "0.1.0"
