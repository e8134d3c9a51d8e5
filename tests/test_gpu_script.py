"""benchmarks/gpu.sh and gpu.py: a CPU fallback fails loudly; FLOPs, bytes and the roofline are computed right.

Timings are never asserted here (benchmarks/ measures speed); these tests check the failure path a CPU can
reach and the arithmetic every benchmark row's roofline columns rest on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

BENCH = Path(__file__).parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402


def _cpu_env(**extra):
    return {**os.environ, "JAX_PLATFORMS": "cpu", **extra}


def test_gpu_sh_fails_loudly_on_a_cpu(tmp_path):
    """The prepared script, run where JAX sees no GPU: exit 3, one line naming the CPU and the way out."""
    proc = subprocess.run(["bash", str(BENCH / "gpu.sh")], capture_output=True, text=True, timeout=300,
                          env=_cpu_env(JAXVIZ_SITE=str(tmp_path / "site"), OUT=str(tmp_path / "out"),
                                       PYTHON=sys.executable))
    assert proc.returncode == 3, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gpu.py:")]
    assert len(lines) == 1 and "CPU" in lines[0] and "--allow-cpu" in lines[0], proc.stderr[-2000:]
    assert not (tmp_path / "out").exists()  # nothing measured, nothing written


def test_gpu_py_dry_run_on_a_cpu_saves_the_peak(tmp_path):
    """``--allow-cpu``: the run goes on, and the results JSON says it was the CPU, with the measured peak."""
    proc = subprocess.run([sys.executable, str(BENCH / "gpu.py"), "--allow-cpu", "--quick", "--sections", "peak",
                           "--dtype", "float32", "--no-peer", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=_cpu_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    (result,) = tmp_path.glob("gpu-*.json")
    payload = json.loads(result.read_text())
    assert payload["backend"] == "cpu" and payload["mode"] == "quick" and payload["errors"] == []
    assert payload["peaks"]["float32"] > 1e8  # FLOP/s: any CPU does more than 0.1 GFLOP/s on a 2048^3 product


def test_cost_counts_a_matrix_product():
    """XLA's cost analysis as harness.cost reads it: 2 n^3 FLOPs (lowered) and the three n x n arrays' bytes
    (compiled)."""
    n = 256
    a = jnp.ones((n, n), jnp.float32)
    lowered = jax.jit(lambda a, b: a @ b).lower(a, a)
    assert harness.cost(lowered) == (pytest.approx(2 * n**3, rel=0.01), None)
    flops, accessed = harness.cost(lowered, lowered.compile())
    assert flops == pytest.approx(2 * n**3, rel=0.01)
    assert accessed == pytest.approx(3 * n * n * 4, rel=0.01)


def test_loop_cost_is_the_step_times_the_steps():
    """harness.LoopCost: the first loop.run's step, costed once and multiplied by the steps of a timed run."""
    from jaxviz.core import loop

    n, steps = 128, 5

    def step(x, i, data):
        return x @ data, jnp.sum(x)

    x, w, original = jnp.ones((n, n)), jnp.eye(n) * 0.5, loop.run
    with harness.LoopCost() as recorded:
        loop.run(step, x, w, steps=steps, progress=False)
    timing = recorded.apply(harness.Timing(1.0, 1.0), steps)
    assert timing.flops == pytest.approx(steps * 2 * n**3, rel=0.02)  # the product; the sum adds n^2 per step
    assert loop.run is original  # the spy is gone


def test_roofline_estimate_is_the_slower_of_compute_and_memory():
    """One row with known FLOPs and bytes: the share of the measured peak and each datasheet estimate."""
    t = harness.Timing(0.0, 2.0, [2.0], flops=4e12, bytes=1e9)
    row = harness.Row("s", "task", "m", 8, "bfloat16", t, None, "-")
    table = harness.roofline([row], {"bfloat16": 4e12})
    cells = [c.strip() for c in table.splitlines()[-1].strip("|").split("|")]
    assert cells[4:10] == ["4000.0", "1.00", "4000.0", "2.000", "50%", "4.00"]
    for chip, cell in zip(harness.DATASHEETS, cells[10:], strict=True):
        sheet = harness.DATASHEETS[chip]
        assert float(cell) == pytest.approx(8 / max(4e12 / sheet["bfloat16"], 1e9 / sheet["hbm"]), abs=0.5)


def test_op_profile_counts_flops_and_stages_of_a_traced_program():
    """benchmarks/op_profile.py: every dot and convolution of a compiled program is found in its trace, its FLOPs
    (2 x multiply-adds over the whole window, padding included) go to the stage named in its scope, and the
    stage's time is positive; a change to XLA's HLO text or trace names that broke the attribution fails here."""
    import flax.linen as nn
    import op_profile

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Conv(8, (3, 3), name="conv1")(x))        # stem: 3x3, 3 -> 8
            x = nn.relu(nn.Conv(16, (3, 3), name="layer1.0")(x))    # layer1: 3x3, 8 -> 16
            return nn.Dense(10, name="fc")(x.mean((1, 2)))          # head: 16 -> 10

    net = Net()
    x = jnp.ones((2, 16, 16, 3))
    variables = net.init(jax.random.key(0), x)
    table = op_profile.profile_jax(lambda x, v: net.apply(v, x), (x, variables), calls=2)
    expected = {"stem": 2 * 2 * 16 * 16 * 8 * 9 * 3, "layer1": 2 * 2 * 16 * 16 * 16 * 9 * 8, "head": 2 * 2 * 16 * 10}
    for stage, flop in expected.items():
        assert table[stage]["gflop"] * 1e9 == pytest.approx(flop, rel=1e-6), (stage, table)
        assert table[stage]["ms"] > 0
