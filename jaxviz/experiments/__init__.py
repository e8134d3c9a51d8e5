"""Experiments apart from the library: the digits CNN and its experiments, and the demo gallery.

* :mod:`.digits`: scikit-learn's digits and a CNN trained on them in seconds;
* :mod:`.digits_distill`: data-free distillation on the digits; :mod:`.digits_neighbors`: feature
  vs pixel space nearest neighbours;
* :mod:`.demo`: ``jaxviz demo``, every technique on the embedded default as an HTML gallery.
"""

from jaxviz._lazy import lazy

__getattr__, __dir__ = lazy(__name__, (
    "digits", "digits_distill", "digits_neighbors", "demo",
))
