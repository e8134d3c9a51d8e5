"""Bring your own model: what the model protocol costs, images/s.

    python benchmarks/adapters.py                        # ResNet-50 and Lite0, batch 8, 224 px
    python benchmarks/adapters.py --model resnet50 --batch 1 8

Three ways to run the same network with the same weights, in one process:

* **adapted**: the port's linen module handed to ``models.from_linen`` as a user's module (layers discovered by
  tracing; guided backprop rewrites the ReLUs through the jaxpr interpreter);
* **port**: ``models.load`` (the same protocol; layers listed by the registry);
* **hand-written**: no interpreter at all: ``jax.grad`` of ``module.apply`` with ``flax.linen.relu`` (and
  ``jax.nn.relu6``) patched to the guided ``custom_vjp`` while the program is traced.

The ratio column is adapted / hand-written (and port / hand-written): 1.00 means the interpreter adds nothing to
the compiled program.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import jaxviz  # noqa: E402
from jaxviz import models  # noqa: E402
from jaxviz.attribution.guided import guided  # noqa: E402

from harness import Row, report, time_jax_interleaved  # noqa: E402


@contextlib.contextmanager
def hand_guided():
    """Puts guided ReLUs where the ports call ``nn.relu`` and ``jax.nn.relu6`` (only while tracing)."""
    relu, relu6 = nn.relu, jax.nn.relu6
    nn.relu, jax.nn.relu6 = guided(relu), guided(relu6)
    try:
        yield
    finally:
        nn.relu, jax.nn.relu6 = relu, relu6


def programs(port, variables):
    """{task: {kind: jitted fn(variables, images, targets)}}."""
    module = port.module
    adapted, _ = models.from_linen(module, variables, input_size=port.input_size, preprocessing=port.preprocessing)

    def hand(v, x, t):
        score = lambda x: jnp.sum(jnp.take_along_axis(module.apply(v, port.preprocessing(x)), t[:, None], 1))
        return jax.grad(score)(x)

    out = {}
    for task, method in (("saliency", jaxviz.saliency), ("guided_backprop", jaxviz.guided_backprop)):
        out[task] = {name: jax.jit(lambda v, x, t, m=m, f=method: f(m, v, x, t)) for name, m in
                     (("adapted", adapted), ("port", port))}
        # A new function per task: jit caches by function, and the guided one must be traced anew.
        out[task]["hand-written"] = jax.jit(lambda v, x, t: hand(v, x, t))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["resnet50", "efficientnet_lite0"])
    parser.add_argument("--batch", nargs="+", type=int, default=[8])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    rows = []
    for name in args.model:
        port, variables = models.load(name, weights=None)
        for batch in args.batch:
            x = jax.random.uniform(jax.random.key(0), (batch, port.input_size, port.input_size, 3))
            t = jnp.arange(batch, dtype=jnp.int32)
            for task, fns in programs(port, variables).items():
                args_ = (variables, x, t)
                hand = hand_guided if task == "guided_backprop" else contextlib.nullcontext
                timings = time_jax_interleaved({k: (f, args_) for k, f in fns.items()}, args.repeats,
                                               tracing={"hand-written": hand})
                with hand():
                    expected = fns["hand-written"](*args_)
                for kind in ("adapted", "port"):  # the same maps, or the timing compares different work
                    np.testing.assert_allclose(fns[kind](*args_), expected, rtol=1e-4, atol=1e-6)
                    rows.append(Row("adapters", f"{task} ({kind})", name, batch, "float32", timings[kind],
                                    timings["hand-written"], "hand-written jax.grad", "interleaved"))
    report(rows, "adapters", "img/s")


if __name__ == "__main__":
    main()
