"""What the network looks at: attribution maps, each ``f(model, variables, images, target, **options)``.

* :mod:`.gradients`: saliency, Gradient x Input, SmoothGrad (VarGrad, SmoothGrad-Squared), integrated gradients,
  channel reductions;
* :mod:`.gradient_shap`: GradientSHAP (expected gradients over a baseline set, with noise);
* :mod:`.guided`: guided backprop and deconvnet (``custom_vjp`` ReLU rules);
* :mod:`.deeplift`: DeepLIFT's Rescale rule (multipliers through ReLUs and max-pools, Captum's definition);
* :mod:`.lrp`: layer-wise relevance propagation (Zennit's rules and composites, BatchNorm merged from the jaxpr);
* :mod:`.occlusion`: the score drop under a sliding patch;
* :mod:`.cam`: CAM and Grad-CAM;
* :mod:`.cam_family`: Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM, Eigen-CAM, EigenGrad-CAM;
* :mod:`.cam_perturbation`: Score-CAM and Ablation-CAM (channel weights from perturbed forward passes);
* :mod:`.cam_compose`: any CAM on several layers at once, and with test-time augmentation (``aug_smooth``);
* :mod:`.guided_ig`: Guided IG (a path that moves the least important pixels first, PAIR's definition);
* :mod:`.xrai`: XRAI (integrated gradients summed over Felzenszwalb regions, ranked greedily; PAIR's definition);
* :mod:`.blur_ig`: Blur IG (integrated gradients along a path of Gaussian blurs, PAIR's definition);
* :mod:`.rise`: RISE (the expected score under random masks, keys explicit);
* :mod:`.guided_grad_cam`: Guided Grad-CAM (guided backprop times the upsampled Grad-CAM);
* :mod:`.mask`: a saliency map turned into a segmentation (GrabCut).
"""

from jaxviz._lazy import lazy

__getattr__, __dir__ = lazy(__name__, (
    "gradients", "gradient_shap", "guided", "deeplift", "lrp", "occlusion", "cam", "cam_family", "cam_perturbation",
    "cam_compose", "blur_ig", "guided_ig", "xrai", "rise", "guided_grad_cam", "mask",
))
