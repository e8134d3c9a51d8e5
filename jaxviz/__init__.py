"""jaxviz: CNN visualization and inversion as pure JAX transforms.

The ports live in :mod:`jaxviz.models`; image I/O in :mod:`jaxviz.image`.

Example:
    >>> import jaxviz
    >>> model, variables = jaxviz.models.load("efficientnet_lite0")   # doctest: +SKIP
    >>> x = jaxviz.image.sample("chelsea", size=model.input_size)[None]  # doctest: +SKIP
    >>> jaxviz.top_k(model, model.apply(variables, x))[0][0]["label"]  # doctest: +SKIP
    'Egyptian cat'
"""

from jaxviz import image, models
from jaxviz.labels import imagenet_labels, top_k

__all__ = ["models", "image", "imagenet_labels", "top_k"]
__version__ = "0.1.0"
