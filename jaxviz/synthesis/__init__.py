"""Make an image: gradient ascent on the input with the network frozen, all through :mod:`.render`.

* :mod:`.param`, :mod:`.transforms`: how the image is parameterized and jittered;
* :mod:`.render`: the render loop (any objective, vmapped over many);
* :mod:`.dream`: DeepDream; :mod:`.classviz`: class-model visualization;
* :mod:`.adversarial`: FGSM, PGD and fooling images; :mod:`.inversion`: feature inversion.
"""

from jaxviz._lazy import lazy

__getattr__, __dir__ = lazy(__name__, (
    "param", "transforms", "render", "dream", "classviz", "adversarial", "inversion",
))
