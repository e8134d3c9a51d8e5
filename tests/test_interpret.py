"""The jaxpr reader and rewriter behind the model protocol (jaxviz.models.interpret), on the JAX that pyproject pins."""

from __future__ import annotations

import re
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxviz.models import interpret
from jaxviz.models.core import Replace

X = jnp.linspace(-8.0, 8.0, 64).reshape(1, 4, 4, 4)


def _graph(f):
    return interpret.trace(lambda p, x: f(x), ({}, X))


@pytest.mark.parametrize("spelling, upper", [
    (jax.nn.relu, None), (nn.relu, None), (jax.nn.relu6, 6.0), (lambda x: jnp.maximum(x, 0), None),
    (lambda x: jnp.maximum(0.0, x), None), (lambda x: jnp.clip(x, 0, 6), 6.0),
    (lambda x: jax.lax.clamp(0.0, x, 3.0), 3.0), (lambda x: jnp.minimum(jnp.maximum(x, 0.0), 6.0), 6.0),
    (jax.jit(jax.nn.relu), None),
])
def test_every_relu_spelling_is_one_site(spelling, upper):
    graph = _graph(lambda x: spelling(x) * 2.0)
    assert len(graph.relus) == 1 and not graph.unreachable
    calls = []

    def rule(act):
        def f(z):
            calls.append(1)
            np.testing.assert_array_equal(act(z), spelling(z))  # the site's own computation is handed over
            return -z

        return f

    out, _ = interpret.run(graph, ({}, X), rule=rule)
    np.testing.assert_array_equal(out, -2.0 * X)
    assert calls == [1]
    assert upper is None or float(spelling(jnp.asarray(100.0))) == upper


@pytest.mark.parametrize("not_a_relu", [
    lambda x: jnp.maximum(x, 1.0), lambda x: jnp.maximum(x, x[::-1]), lambda x: jnp.clip(x, -1, 6), jnp.abs,
    jax.nn.gelu, lambda x: jnp.minimum(x, 0.0)])
def test_other_operations_are_left_alone(not_a_relu):
    graph = _graph(not_a_relu)
    assert graph.relus == () and not graph.unreachable
    out, _ = interpret.run(graph, ({}, X), rule=Replace(lambda z: z * 0))
    np.testing.assert_array_equal(out, not_a_relu(X))


def test_rules_reach_inside_scan_while_and_cond():
    def f(x):
        x = jax.lax.scan(lambda c, r: (c, jax.nn.relu(r)), 0.0, x)[1]
        x = jax.lax.fori_loop(0, 2, lambda i, y: jnp.maximum(y - 1.0, 0.0), x)
        return jax.lax.cond(x.sum() > -1, lambda y: jnp.clip(y, 0, 6), lambda y: y, x)

    graph = _graph(f)
    out, _ = interpret.run(graph, ({}, X), rule=Replace(lambda z: z))
    np.testing.assert_allclose(out, X - 2.0)  # every ReLU is now the identity


def test_relu_inside_a_custom_vjp_is_reported_not_skipped_silently():
    @jax.custom_vjp
    def opaque(x):
        return jax.nn.relu(x)

    opaque.defvjp(lambda x: (opaque(x), x), lambda x, g: (g,))
    graph = _graph(lambda x: opaque(x) + jax.nn.relu(x))
    assert len(graph.relus) == 1 and graph.unreachable and "custom_vjp" in graph.unreachable[0]
    with pytest.warns(UserWarning, match="keep their plain gradient"):
        interpret.run(graph, ({}, X), rule=Replace(lambda z: z))


class Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.relu(nn.Conv(4, (3, 3), name="conv")(x))


class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(4, (3, 3), name="stem")(x)
        x = nn.remat(Block)(name="block")(x)
        x = jax.lax.scan(lambda c, r: (c, jnp.maximum(r, 0.0)), 0.0, x)[1]
        with jax.named_scope("pool"):
            x = x.mean(axis=(1, 2))
        return nn.Dense(3, name="fc")(x)


@pytest.fixture(scope="module")
def net():
    module = Net()
    variables = module.init(jax.random.key(0), X)
    graph = interpret.trace(module.apply, (variables, X), naming=interpret.Naming(strip_root=True))
    return module, variables, graph


def test_layers_are_module_paths_and_scopes_in_forward_order(net):
    _, _, graph = net
    assert list(graph.layers) == ["stem", "block.conv", "block", "pool", "fc"]
    assert graph.shapes["block"] == (1, 4, 4, 4) and graph.shapes["pool"] == (1, 4)
    assert graph.root == "Net" and graph.scope_inputs["block.conv"] == graph.layers["stem"]


def test_capture_and_perturb_inside_remat(net):
    module, variables, graph = net
    captured_value = graph.layers["block.conv"]
    out, seen = interpret.run(graph, (variables, X), capture=[captured_value])
    stem = nn.Conv(4, (3, 3)).apply({"params": variables["params"]["stem"]}, X)
    conv = nn.Conv(4, (3, 3)).apply({"params": variables["params"]["block"]["conv"]}, stem)
    np.testing.assert_allclose(seen[captured_value], conv, rtol=1e-6)
    np.testing.assert_allclose(out, module.apply(variables, X), rtol=1e-6)
    delta = jnp.full(conv.shape, -100.0)  # pushes every unit below zero: the ReLU then gives zeros
    out, _ = interpret.run(graph, (variables, X), perturb={captured_value: delta})
    bias = variables["params"]["fc"]["bias"]
    np.testing.assert_allclose(out, jnp.broadcast_to(bias, out.shape), atol=1e-6)
    grad = jax.grad(lambda d: interpret.run(graph, (variables, X), perturb={captured_value: d})[0].sum())(
        jnp.zeros(conv.shape))
    assert grad.shape == conv.shape and float(jnp.abs(grad).max()) > 0


def _normalized_hlo(fn, *args):
    text = jax.jit(fn).lower(*args).compile().as_text()
    text = re.sub(r", metadata=\{[^}]*\}", "", text)
    return sorted(re.findall(r"= \S+ (\w[\w-]*)\(", text))  # the multiset of instructions


def test_the_compiled_program_is_the_direct_one(net):
    module, variables, graph = net
    direct = _normalized_hlo(module.apply, variables, X)
    interpreted = _normalized_hlo(lambda v, x: interpret.run(graph, (v, x))[0], variables, X)
    captured = _normalized_hlo(lambda v, x: interpret.run(graph, (v, x), capture=[graph.layers["stem"]])[0],
                               variables, X)
    assert direct == interpreted == captured and len(direct) > 10


def test_traces_are_cached_per_shape_and_context(net):
    module, variables, graph = net
    naming = interpret.Naming(strip_root=True)
    assert interpret.trace(module.apply, (variables, X), naming=naming) is graph
    other = interpret.trace(module.apply, (variables, jnp.ones((2, 4, 4, 4))), naming=naming)
    assert other is not graph and other.shapes["fc"] == (2, 3)
    from jaxviz.models.layers import POOL_MODE

    token = POOL_MODE.set("window_mean")
    try:
        assert interpret.trace(module.apply, (variables, X), naming=naming) is not graph
    finally:
        POOL_MODE.reset(token)


def test_only_the_interpret_package_reads_jax_internals():
    """JAX's private modules are read in models/interpret/ alone (what the pinned JAX range is tested for)."""
    root = Path(__file__).resolve().parents[1]
    users = sorted(str(p.relative_to(root)) for folder in ("jaxviz", "models") for p in (root / folder).rglob("*.py")
                   if "jax._src" in p.read_text() or "jax.interpreters" in p.read_text())
    assert users and all(u.startswith("models/interpret/") for u in users), users
