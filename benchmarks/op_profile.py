"""Where the time goes: a per-stage profile of one compiled jaxviz program and of PyTorch on the same work.

    python benchmarks/op_profile.py                                # ResNet-50, batch 8, forward and input grad
    python benchmarks/op_profile.py --batch 1 8 32 --work input_grad
    python benchmarks/op_profile.py --model efficientnet_lite0 --work input_grad

jaxviz: ``jax.profiler`` traces ``--calls`` calls of the compiled program; XLA:CPU's thunk executor records one
event per instruction it runs, named as in the optimized HLO (``compiled.as_text()``). Each event is looked up
there: the dots and convolutions it runs (itself, or inside its fusion; on this jaxlib most are YNNPACK fusions
of one convolution with its neighbours' elementwise work) give its FLOPs and, from their scope
(``ResNet/layer1.0/conv2``), its stage; an event that runs none (an elementwise or reduce fusion, max-pool's
scatter-adds, a copy) is "other". PyTorch: ``torch.profiler`` over the same number of calls of the reference
network with the same weights, each aten op's self time; convolutions (forward and backward) and the dense layer
go to the stage whose layer has their input and weight shapes, everything else (batch norm, ReLU, adds,
pooling) to "other". Both sides run the same images in the same process, one after the other.

Read the per-stage ratios, not the totals: the sums are of op times under a profiler (two threads may run two
XLA thunks at once; PyTorch's profiler adds a little per op), not wall times.
"""

from __future__ import annotations

import argparse
import collections
import glob
import re
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from jaxviz import models  # noqa: E402
from jaxviz.models import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

from harness import device_name  # noqa: E402

TARGET = 281
INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
COMPUTATION = re.compile(r"^\s*(?:ENTRY\s+)?%?([\w.\-]+)\s*\(.*\)\s*->.*\{\s*$")
STAGES = {"conv1": "stem", "fc": "head",  # ResNet-50 (layer1-4 are their own stages), both sides
          "conv_stem": "stem", "_conv_stem": "stem", "_blocks": "blocks", "conv_head": "head", "_conv_head": "head",
          "_fc": "head"}  # EfficientNet-Lite0, jaxviz and efficientnet_lite_pytorch
ORDER = ("stem", "layer1", "layer2", "layer3", "layer4", "blocks", "head", "other")


# ------------------------------------------------------------------------------------------------ the HLO side

def _split_shape(rest: str) -> tuple[str, str]:
    """``"f32[8,7,7]{...} convolution(...)..."`` -> (shape, text after it); tuple shapes are parenthesized."""
    if rest.startswith("("):
        depth = 0
        for i, ch in enumerate(rest):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                return rest[:i + 1], rest[i + 1:].strip()
    shape, _, after = rest.partition(" ")
    return shape, after.strip()


def _dims(shape: str) -> list[int]:
    m = re.match(r"\w+\[([\d,]*)\]", shape)
    return [int(d) for d in m.group(1).split(",") if d] if m else []


def parse_hlo(text: str) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """Every instruction of an optimized HLO module (names are unique in a module): ``{name: {"opcode",
    "shape", "operands", "attrs"}}``, and each computation's instruction names."""
    instructions, computations, current = {}, collections.defaultdict(list), None
    for line in text.splitlines():
        if m := COMPUTATION.match(line):
            current = m.group(1)
            continue
        if not (m := INSTRUCTION.match(line)):
            continue
        name, rest = m.groups()
        shape, after = _split_shape(rest)
        opcode, _, args = after.partition("(")
        operands = re.findall(r"%([\w.\-]+)", args.split(")", 1)[0])
        instructions[name] = {"opcode": opcode.strip(), "shape": shape, "operands": operands, "attrs": after}
        computations[current].append(name)
    return instructions, computations


def flops(inst: dict, instructions: dict[str, dict]) -> float:
    """2 x multiply-adds of one dot or convolution over its whole window (padding and a transposed convolution's
    dilated zeros included, so a little above XLA's cost analysis)."""
    out = float(np.prod(_dims(inst["shape"]))) if _dims(inst["shape"]) else 0.0
    lhs = _dims(instructions[inst["operands"][0]]["shape"]) if inst["operands"] else []
    if inst["opcode"] == "dot":
        m = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", inst["attrs"])
        k = np.prod([lhs[int(d)] for d in m.group(1).split(",") if d]) if m and lhs else 0
        return 2.0 * out * float(k)
    if inst["opcode"] == "convolution":
        window = [int(d) for d in re.search(r"size=([\dx]+)", inst["attrs"]).group(1).split("x")]
        labels = re.search(r"dim_labels=(\w+)_", inst["attrs"]).group(1)
        groups = re.search(r"feature_group_count=(\d+)", inst["attrs"])
        k = lhs[labels.index("f")] // (int(groups.group(1)) if groups else 1)
        return 2.0 * out * float(np.prod(window)) * k
    return 0.0


def stage_of(op_name: str) -> str:
    """``"jit(f)/ResNet/layer4.0/conv2/..."`` or ``".../transpose(jvp(ResNet))/layer4.0/..."`` -> ``"layer4"``."""
    parts = [p for p in op_name.split("/")  # less the transforms and the model's own scope (its class name)
             if not p.startswith(("jit(", "transpose(", "jvp(")) and not p[:1].isupper()]
    return _stage(parts[0] if parts else "?")


def _stage(layer: str) -> str:
    """A layer's name (``"layer4.0.conv2"``, ``"fc"``) -> its stage, on either side."""
    top = layer.split(".")[0]
    return STAGES.get(top, top)


def fusion_work(name: str, instructions: dict[str, dict], computations: dict[str, list[str]]) -> dict[str, float]:
    """``{stage: FLOPs}`` of the dots and convolutions an instruction runs (itself, or inside its fusion)."""
    inst = instructions[name]
    inner = [name]
    if inst["opcode"] == "fusion" and (called := re.search(r"calls=%?([\w.\-]+)", inst["attrs"])):
        inner = computations.get(called.group(1), [])
    work: dict[str, float] = collections.Counter()
    for n in inner:
        i = instructions[n]
        if i["opcode"] in ("dot", "convolution"):
            op_name = re.search(r'op_name="([^"]*)"', i["attrs"])
            work[stage_of(op_name.group(1) if op_name else "?")] += flops(i, instructions)
    return work


def profile_jax(fn, args: tuple, calls: int) -> dict[str, dict]:
    """``{stage: {"ms", "gflop"}}`` per call of the compiled ``fn(*args)``: each traced instruction's time goes
    to the stages of the dots and convolutions it runs, split by their FLOPs; an instruction that runs none
    (an elementwise or reduce fusion, a scatter, a copy) goes to "other"."""
    from jax._src.lib import _profile_data

    compiled = jax.jit(fn).lower(*args).compile()
    instructions, computations = parse_hlo(compiled.as_text())
    jax.block_until_ready(compiled(*args))  # warm-up
    with tempfile.TemporaryDirectory(prefix="jaxviz-profile-") as out:
        with jax.profiler.trace(out):
            for _ in range(calls):
                jax.block_until_ready(compiled(*args))
        trace = _profile_data.ProfileData.from_file(glob.glob(f"{out}/**/*.xplane.pb", recursive=True)[0])
    table: dict[str, dict] = collections.defaultdict(lambda: {"ms": 0.0, "gflop": 0.0})
    works: dict[str, dict[str, float]] = {}  # each instruction's work, looked up once for all its events
    for plane in trace.planes:
        for line in plane.lines:
            for event in line.events:
                if event.name not in instructions:
                    continue
                ms = event.duration_ns / 1e6 / calls
                if event.name not in works:
                    works[event.name] = fusion_work(event.name, instructions, computations)
                work = works[event.name]
                total = sum(work.values())
                if not total:
                    table["other"]["ms"] += ms
                for stage, f in work.items():
                    table[stage]["ms"] += ms * f / total
                    table[stage]["gflop"] += f / 1e9 / calls
    return dict(table)


# ------------------------------------------------------------------------------------------------ the PyTorch side

def torch_stages(net, tx) -> dict[tuple, str]:
    """``{(input shape, weight shape): stage}`` of every convolution and linear layer of ``net`` on ``tx``."""
    import torch

    stages, hooks = {}, []
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
            def hook(mod, inputs, name=name):
                stages[(tuple(inputs[0].shape), tuple(mod.weight.shape))] = _stage(name)
            hooks.append(module.register_forward_pre_hook(hook))
    with torch.no_grad():
        net(tx)
    for h in hooks:
        h.remove()
    return stages


def profile_torch(fn, stages: dict[tuple, str], calls: int) -> dict[str, dict]:
    """The same table for ``fn()`` under ``torch.profiler``: each aten op's self CPU time per call, convolutions
    (forward and backward) and dense layers by their stage (found from their input and weight shapes), the
    rest (batch norm, ReLU, adds, pooling, copies) in "other"."""
    from torch.profiler import ProfilerActivity, profile

    fn()  # warm-up
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        for _ in range(calls):
            fn()
    table: dict[str, dict] = collections.defaultdict(lambda: {"ms": 0.0, "gflop": 0.0})
    for ev in prof.key_averages(group_by_input_shape=True):
        if ev.self_cpu_time_total <= 0 or not ev.key.startswith("aten::"):
            continue
        shapes = [tuple(s) for s in ev.input_shapes if s]
        stage = "other"
        if "conv" in ev.key or "addmm" in ev.key or ev.key == "aten::mm":
            pairs = [(a, b) for a in shapes for b in shapes if (a, b) in stages]
            if not pairs and "addmm" in ev.key and len(shapes) >= 3:  # addmm(bias, x, weight.T)
                pairs = [(shapes[1], shapes[2][::-1])]
            stage = stages.get(pairs[0], "other") if pairs else "other"
        table[stage]["ms"] += ev.self_cpu_time_total / 1e3 / calls
        table[stage]["gflop"] += (ev.flops or 0) / 1e9 / calls
    return dict(table)


# ------------------------------------------------------------------------------------------------ report

def report(title: str, ours: dict[str, dict], peer: dict[str, dict] | None) -> str:
    order = [s for s in ORDER if s in ours or (peer and s in peer)]
    order += sorted((set(ours) | set(peer or {})) - set(order))
    ours = {**ours, "total": {k: sum(r[k] for r in ours.values()) for k in ("ms", "gflop")}}
    peer = peer and {**peer, "total": {"ms": sum(r["ms"] for r in peer.values())}}
    t_ours, t_peer = ours["total"]["ms"], (peer or {"total": {"ms": 0.0}})["total"]["ms"]
    lines = [f"### {title}", "",
             "| stage | jaxviz ms | share | GFLOP | GFLOP/s | PyTorch ms | share | jaxviz / PyTorch time |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in order + ["total"]:
        o = ours.get(s, {"ms": 0.0, "gflop": 0.0})
        q = (peer or {}).get(s, {"ms": 0.0})
        rate = f"{o['gflop'] / o['ms'] * 1e3:.0f}" if o["gflop"] and o["ms"] else "-"
        ratio = f"{o['ms'] / q['ms']:.2f}" if peer and q["ms"] else "-"
        lines.append(f"| {s} | {o['ms']:.1f} | {100 * o['ms'] / t_ours:.0f}% | {o['gflop']:.2f} | {rate} | "
                     + (f"{q['ms']:.1f} | {100 * q['ms'] / t_peer:.0f}% | {ratio} |" if peer else "- | - | - |"))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet50", choices=["resnet50", "efficientnet_lite0"])
    p.add_argument("--work", nargs="*", default=["forward", "input_grad"], choices=["forward", "input_grad"])
    p.add_argument("--batch", nargs="*", type=int, default=[8])
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--no-peer", action="store_true")
    args = p.parse_args(argv)
    import torch

    from peers import to_torch, torch_pair

    print(f"device: {device_name()}, jax {jax.__version__}, torch {torch.__version__}\n")
    model = models.build(args.model)
    net, variables = torch_pair(args.model)
    for batch in args.batch:
        x = jax.random.uniform(jax.random.key(1), (batch, model.input_size, model.input_size, 3))
        tx = to_torch((np.asarray(x) - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32))
        stages = torch_stages(net, tx)
        for work in args.work:
            if work == "forward":
                fn, fargs = (lambda x, v: model.apply(v, x)), (x, variables)

                def peer(tx=tx):
                    with torch.no_grad():
                        return net(tx)
            else:
                fn, fargs = jax.grad(lambda x, v: model.apply(v, x)[:, TARGET].sum()), (x, variables)

                def peer(tx=tx):
                    inp = tx.clone().requires_grad_(True)
                    return torch.autograd.grad(net(inp)[:, TARGET].sum(), inp)[0]
            title = f"{args.model} {work}, batch {batch}, ms per call (mean of {args.calls})"
            peer_table = None if args.no_peer else profile_torch(peer, stages, args.calls)
            print(report(title, profile_jax(fn, fargs, args.calls), peer_table), "\n", flush=True)


if __name__ == "__main__":
    main()
