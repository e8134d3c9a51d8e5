"""Images in and pictures out: loading and saving images, data sources (folders, tfds, arrays), colour maps and
panels, class labels."""

from jaxviz._lazy import lazy

__getattr__, __dir__ = lazy(__name__, (
    "image", "datasets", "plot", "labels",
))
