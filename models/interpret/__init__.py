"""A model's forward pass read and rewritten as a jaxpr: named layers, ReLU-like sites, BatchNorm inputs.

This is the one package of jaxviz that reads JAX's internals (jaxpr equations, their name stacks, how call
primitives bind); everything else goes through :func:`trace` and :func:`run`. It is tested against the JAX range
that pyproject.toml pins (tests/test_interpret.py).

:func:`trace` turns ``fn(*args)`` into a closed jaxpr (once per input shape) and walks it, looking through
``jit`` and ``checkpoint`` calls, into a flat list of operations, each with the *scope* it ran in: the module
path that Flax linen and Haiku push onto JAX's name stack, the ``jax.named_scope`` names a user wrote, or the
paths jaxviz's NNX and Equinox adapters push while tracing. From that list it reads

* **layers**: each scope's output (the last value it made that is used outside it), in forward order, and op
  tags (``conv0``, ``dense1``, ``relu3``, ``maxpool0``) for operations outside every scope;
* **scope inputs**: the first value a scope read from outside it (what a BatchNorm layer normalized);
* **ReLU-like sites**: ``jax.nn.relu``, ``jax.nn.relu6``, ``jnp.maximum(x, 0)``, ``jnp.clip(x, 0, c)``,
  ``lax.clamp(0, x, c)`` and ``min(max(x, 0), c)``, however nested in ``jit``, ``checkpoint``, ``scan``,
  ``while`` or ``cond``.

:func:`run` evaluates the jaxpr equation by equation, capturing values, adding perturbations and replacing each
ReLU-like site by ``rule(act)`` where ``act`` is the site's own computation; every other equation is bound
exactly as traced (unless an op rule is given for its tag, ``conv``, ``dense`` or ``maxpool``: DeepLIFT and
LRP change those operations' backward passes this way), so under ``jit`` XLA compiles the direct program. A site
inside a ``custom_jvp`` or ``custom_vjp`` function cannot be rewritten without discarding that function's own
derivative: it is listed in :attr:`Graph.unreachable` and :func:`run` warns once when a rule is applied.
For LRP, :func:`run` also hands every *affine layer* (a convolution, dense layer or pooling together with the
bias and BatchNorm after it, read as one ``scale * linear(x, kernel) + shift``: :class:`Affine`) and every sum
of two data-dependent values to the caller's rules.
"""

from __future__ import annotations

from . import _affine as weights  # the weight changes an LRP rule applies to an Affine layer's merged weight
from ._affine import Affine
from ._graph import TRACE_CONTEXT, Graph, Naming, ValueId, clear_cache, trace
from ._order import first_uses
from ._run import OP_TAGS, AffineRule, OpRule, Rule, SumRule, run
from ._sites import Site

__all__ = ["Graph", "Naming", "Site", "trace", "run", "clear_cache", "TRACE_CONTEXT", "ValueId", "Rule", "OpRule",
           "OP_TAGS", "first_uses", "Affine", "AffineRule", "SumRule", "weights"]
