"""Gram losses: texture synthesis and style transfer.

* :mod:`.gram`: Gram matrices, covariance pooling, style/content losses, default layers per network;
* :mod:`.transfer`: Gatys style transfer; :mod:`.texture`: texture synthesis;
* :mod:`.spectrum`: the spectrum constraint (Liu et al.), the long-range order textures keep;
* :mod:`.fast`: fast (feed-forward, Johnson) style transfer.
"""

from jaxviz._lazy import lazy

__getattr__, __dir__ = lazy(__name__, (
    "gram", "transfer", "texture", "spectrum", "fast",
))
