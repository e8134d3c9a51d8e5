"""What is in the representation: filters, activations, data-set features and what they show.

* :mod:`.filters`: first-layer filters; :mod:`.activations`: activation maps;
* :mod:`.features`: features of a data set (folders, tensorflow-datasets), cached on disk;
* :mod:`.neighbors`: k nearest neighbours; :mod:`.embedding`: PCA / t-SNE thumbnails;
* :mod:`.patches`: maximally activating data-set patches.
"""

from jaxviz._lazy import lazy

__getattr__, __dir__ = lazy(__name__, (
    "filters", "activations", "features", "neighbors", "embedding", "patches",
))
