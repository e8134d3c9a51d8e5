"""Images from the network alone: DeepInversion, and what is learned from its images.

* :mod:`.deepinversion`: BatchNorm-statistic inversion (and Adaptive DeepInversion);
* :mod:`.generator`: generator-based synthesis with a meta-learned initialization (Fast-DFKD);
* :mod:`.distill`: data-free knowledge distillation;
* :mod:`.incremental`: data-free class-incremental learning (Always Be Dreaming);
* :mod:`.training`: training a jaxviz model with optax (on labels or from a teacher).
"""

from jaxviz._lazy import lazy

__getattr__, __dir__ = lazy(__name__, (
    "deepinversion", "distill", "generator", "incremental", "training",
))
