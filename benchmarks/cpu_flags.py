"""XLA:CPU flags A/B, interleaved: ResNet-50 saliency (forward + input gradient) under each flag set and PyTorch.

    python benchmarks/cpu_flags.py                          # batch 8, 3 rounds
    python benchmarks/cpu_flags.py --batch 1 8 --rounds 5

XLA reads its flags once, when the process starts, so each flag set runs in its own subprocess; a round runs
every flag set and the PyTorch peer once, in turn, so a machine that slows down mid-run slows all alike. Each
subprocess compiles (timed apart) and reports the median of ``--calls`` calls; the table gives the median over
rounds and the ratio to PyTorch in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

FLAG_SETS = {
    "default": "",
    "onednn": "--xla_cpu_use_onednn=true",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
    "onednn+xnnpack": "--xla_cpu_use_onednn=true --xla_cpu_use_xnnpack=true",
}

_JAX = """
import json, statistics, sys, time
import jax, jax.numpy as jnp
from jaxviz import models
import jaxviz
batch, calls = int(sys.argv[1]), int(sys.argv[2])
model, variables = models.load("resnet50", weights=None)
x = jax.random.uniform(jax.random.key(1), (batch, 224, 224, 3))
f = jax.jit(lambda v, x: jaxviz.saliency(model, v, x, 281))
t0 = time.perf_counter(); c = f.lower(variables, x).compile(); compile_s = time.perf_counter() - t0
jax.block_until_ready(c(variables, x))
runs = []
for _ in range(calls):
    t0 = time.perf_counter(); jax.block_until_ready(c(variables, x)); runs.append(time.perf_counter() - t0)
print(json.dumps({"median_s": statistics.median(runs), "compile_s": compile_s}))
"""

_TORCH = """
import json, statistics, sys, time
import torch, torchvision
batch, calls = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
net = torchvision.models.resnet50().eval()
for p in net.parameters():
    p.requires_grad_(False)
x = torch.rand(batch, 3, 224, 224)
def grad():
    inp = x.clone().requires_grad_(True)
    return torch.autograd.grad(net(inp)[:, 281].sum(), inp)[0]
grad()
runs = []
for _ in range(calls):
    t0 = time.perf_counter(); grad(); runs.append(time.perf_counter() - t0)
print(json.dumps({"median_s": statistics.median(runs), "compile_s": 0.0}))
"""


def _one(code: str, batch: int, calls: int, flags: str | None) -> dict:
    env = dict(os.environ)
    if flags is not None:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flags}".strip()
    out = subprocess.run([sys.executable, "-c", code, str(batch), str(calls)], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[8])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--flags", nargs="+", default=list(FLAG_SETS), choices=list(FLAG_SETS))
    args = p.parse_args(argv)
    results = {}
    for batch in args.batch:
        times = {name: [] for name in [*args.flags, "pytorch"]}
        compiles = {name: [] for name in args.flags}
        for r in range(args.rounds):
            for name in args.flags:
                res = _one(_JAX, batch, args.calls, FLAG_SETS[name])
                times[name].append(res["median_s"])
                compiles[name].append(res["compile_s"])
            times["pytorch"].append(_one(_TORCH, batch, args.calls, None)["median_s"])
            print(f"batch {batch}, round {r + 1}: " + ", ".join(f"{k} {batch / v[-1]:.2f} img/s"
                                                            for k, v in times.items()), flush=True)
        results[batch] = {"times": times, "compiles": compiles}
        torch_s = statistics.median(times["pytorch"])
        print("\n| flags | batch | jaxviz saliency img/s | PyTorch img/s | ratio | compile s |\n"
              "|---|---:|---:|---:|---:|---:|")
        for name in args.flags:
            med = statistics.median(times[name])
            print(f"| `{FLAG_SETS[name] or '(none)'}` | {batch} | {batch / med:.2f} | {batch / torch_s:.2f} | "
                  f"{torch_s / med:.2f}x | {statistics.median(compiles[name]):.1f} |")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "cpu_flags.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
