"""Images in and pictures out: loading and saving images, colour maps and panels, class labels."""

from jaxviz._lazy import lazy

__getattr__, __dir__ = lazy(__name__, (
    "image", "plot", "labels",
))
