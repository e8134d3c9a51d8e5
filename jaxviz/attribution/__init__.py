"""What the network looks at: attribution maps, each ``f(model, variables, images, target, **options)``.

* :mod:`.gradients`: saliency, SmoothGrad, integrated gradients, channel reductions;
* :mod:`.guided`: guided backprop and deconvnet (``custom_vjp`` ReLU rules);
* :mod:`.occlusion`: the score drop under a sliding patch;
* :mod:`.cam`: CAM and Grad-CAM;
* :mod:`.mask`: a saliency map turned into a segmentation (GrabCut).
"""

from jaxviz._lazy import lazy

__getattr__, __dir__ = lazy(__name__, (
    "gradients", "guided", "occlusion", "cam", "mask",
))
