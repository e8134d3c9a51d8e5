"""Every suite's accelerator rows in one run, float32 and bfloat16, with the roofline beside each row.

    bash benchmarks/gpu.sh                           # an NVIDIA GPU, no network: wheels from .whl/, then this
    python benchmarks/gpu.py --budget 300            # the same rows where jaxviz is installed already
    python benchmarks/gpu.py --allow-cpu --quick     # a dry run on a CPU at tiny sizes (what the tests run)

Fails loudly (exit 3, one line on stderr) when JAX runs on the CPU, unless ``--allow-cpu``: an accelerator
figure measured on a silent CPU fallback is worse than none. The PyTorch peers run on the GPU too (same
weights, same dtype); where PyTorch sees no GPU, they are left out rather than timed on the CPU.

The sections run in order (the matmul peak, models, DeepInversion at batch 64, attribution, Gatys style,
synthesis loops, metrics) and each starts only while ``--budget`` seconds are left, so a lease that is
running out still ends with the sections done so far saved. After each section the results JSON is
rewritten atomically (``--out``/gpu-<host>.json): the device, jax's version, the measured matmul peaks, every
row (with XLA's FLOPs and bytes per timed call) and every error. The last lines printed are the whole table
and the roofline table: achieved FLOP/s against the peak measured in the same run, and the H100/H200
datasheet estimate of the same program (labelled as an estimate).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

SECTIONS = ("peak", "models", "deepinversion", "attribution", "style", "synthesis", "metrics")
DTYPES = ("float32", "bfloat16")

#: Sizes per mode: ``full`` is the accelerator run (sized for an 8-minute lease on an H200), ``cpu`` the same
#: rows at the CPU suites' sizes (``--sizes cpu --allow-cpu``), ``quick`` the dry run the tests make.
SIZES = {
    "full": {"models": (("efficientnet_lite0", "resnet50"), (32,)), "attribution_batch": 32,
             "attribution_methods": ("saliency", "guided_backprop", "integrated_gradients", "grad_cam"),
             "attribution_models": ("resnet50",), "di": (64, 224, 10), "style": (512, 10), "dream": (16, 20),
             "render": (16, 32), "metrics_batch": 8, "ig_steps": 16, "repeats": 5},
    "cpu": {"models": (("efficientnet_lite0", "resnet50"), (8,)), "attribution_batch": 8,
            "attribution_methods": ("saliency", "guided_backprop", "integrated_gradients", "grad_cam"),
            "attribution_models": ("resnet50",), "di": (8, 224, 3), "style": (256, 3), "dream": (1, 20),
            "render": (1, 32), "metrics_batch": 8, "ig_steps": 4, "repeats": 3},
    "quick": {"models": (("efficientnet_lite0",), (2,)), "attribution_batch": 2,
              "attribution_methods": ("saliency", "grad_cam"), "attribution_models": ("efficientnet_lite0",),
              "di": (2, 64, 2), "style": (64, 2), "dream": (1, 2), "render": (1, 2), "metrics_batch": 2,
              "ig_steps": 2, "repeats": 2},
}


def check_backend(allow_cpu: bool) -> str | None:
    """The JAX platform, or None after one line on stderr when it is the CPU (unless allowed)."""
    import jax

    backend = jax.default_backend()
    if backend == "cpu" and not allow_cpu:
        print(f"gpu.py: JAX is running on the CPU ({jax.devices()}), not a GPU: is the jax CUDA plugin "
              "installed and the GPU visible (nvidia-smi)? Pass --allow-cpu for a dry run.", file=sys.stderr)
        return None
    return backend


def peers_on_accelerator(backend: str, wanted: bool) -> bool:
    """The PyTorch peers run where JAX runs: on the CPU for a CPU run, else only on a GPU PyTorch sees."""
    if not wanted:
        return False
    try:
        import torch
    except ImportError:
        print("gpu.py: PyTorch is missing: rows without peers", file=sys.stderr)
        return False
    if backend != "cpu" and not torch.cuda.is_available():
        print("gpu.py: PyTorch sees no GPU: rows without peers (a CPU peer beside a GPU jaxviz says nothing)",
              file=sys.stderr)
        return False
    return True


def section_rows(name: str, sizes: dict, dtype: str, peer: bool, peaks: dict) -> list:
    """The rows of one section in one dtype (each suite's own row functions, at accelerator sizes)."""
    import jax.numpy as jnp

    repeats = sizes["repeats"]
    if name == "peak":
        from harness import matmul_peak

        peaks[dtype] = matmul_peak(dtype)
        print(f"matmul peak, {dtype}: {peaks[dtype] / 1e12:.2f} TFLOP/s", flush=True)
        return []
    if name == "models":
        import models as suite

        names, batches = sizes["models"]
        return [r for m in names for b in batches for r in suite.bench(m, b, dtype, repeats, peer)]
    if name == "attribution":
        import attribution as suite

        args = suite.parser().parse_args(["--batch", str(sizes["attribution_batch"]), "--dtype", dtype,
                                          "--steps", str(sizes["ig_steps"]), "--repeats", str(repeats)]
                                         + ([] if peer else ["--no-peer"]))
        return [r for m in sizes["attribution_models"] for r in suite.bench(m, sizes["attribution_methods"], args)]
    if name == "deepinversion":
        import deepinversion as suite

        batch, size, steps = sizes["di"]
        return suite.rows(batch, size, steps, min(repeats, 3), jnp.dtype(dtype), with_peer=peer)
    if name == "style":
        import style as suite

        size, steps = sizes["style"]
        return suite.rows(size, steps, min(repeats, 3), jnp.dtype(dtype), with_peer=peer)
    if name == "synthesis":
        import synthesis as suite

        if dtype != "float32":
            return []  # the synthesis loops keep float32 images and parameters
        return suite.rows(sizes["dream"], sizes["render"], min(repeats, 3), with_peer=peer)
    if name == "metrics":
        import metrics as suite

        if dtype != "float32":
            return []
        args = suite.parser().parse_args(["--batch", str(sizes["metrics_batch"]), "--repeats", str(repeats),
                                          "--metric", "infidelity", "road"])
        return suite.bench("efficientnet_lite0", args.metric, args, with_peer=peer)
    raise ValueError(name)


def tables(rows: list, peaks: dict) -> None:
    """The whole table and the roofline table, images/s rows apart from steps/s rows."""
    from harness import markdown, roofline

    print("\nmatmul peak: " + ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in peaks.items()))
    for unit, group in (("img/s", [r for r in rows if not r.per_run]), ("steps/s", [r for r in rows if r.per_run])):
        if group:
            print(f"\n{markdown(group, unit=unit)}\n\nroofline ({unit}; the H100/H200 columns are datasheet "
                  f"estimates, not measurements):\n\n{roofline(group, peaks, unit=unit)}")


def load_rows(path: Path) -> tuple[dict, list]:
    from harness import Row, Timing

    payload = json.loads(path.read_text())
    rows = []
    for d in payload["rows"]:
        d = {k: v for k, v in d.items() if k != "ratio"}
        rows.append(Row(**{**d, "jaxviz": Timing(**d["jaxviz"]), "peer": d["peer"] and Timing(**d["peer"])}))
    return payload, rows


def print_saved(path: Path, flops_from: Path | None) -> int:
    """``--table``: a saved run's tables; with ``flops_from``, each row's FLOPs from the same row of that run
    (rows match on suite, task, model, batch and dtype)."""
    payload, rows = load_rows(path)
    if flops_from:
        key = lambda r: (r.suite, r.task, r.model, r.batch, r.dtype)  # noqa: E731
        counted = {key(r): r.jaxviz.flops for r in load_rows(flops_from)[1]}
        for r in rows:
            r.jaxviz.flops = counted.get(key(r))
    print(f"{payload['device']} (jax {payload['jax']})")
    tables(rows, payload["peaks"])
    return 0


def save(path: Path, payload: dict) -> None:
    """Atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=300.0,
                   help="seconds: no section starts after this (the default leaves an 8-minute lease room for "
                        "the install and the section still running)")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--dtype", nargs="+", default=list(DTYPES), choices=DTYPES)
    p.add_argument("--sizes", choices=list(SIZES), default="full")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a dry run): --sizes quick")
    p.add_argument("--allow-cpu", action="store_true", help="run on the CPU instead of failing")
    p.add_argument("--no-peer", action="store_true")
    p.add_argument("--cost-only", action="store_true",
                   help="count every program's FLOPs (lowered, never compiled or run): seconds, on any device")
    p.add_argument("--table", type=Path, metavar="RESULTS", help="print the tables of a saved run, and exit")
    p.add_argument("--flops-from", type=Path, metavar="RESULTS",
                   help="with --table: FLOPs of the same rows from another run (e.g. a --cost-only one)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    if args.budget <= 0:
        p.error("--budget must be positive")
    if args.table:
        return print_saved(args.table, args.flops_from)
    start = time.monotonic()
    backend = check_backend(args.allow_cpu or args.cost_only)
    if backend is None:
        return 3
    import jax

    from harness import device_name

    if args.cost_only:
        import harness

        harness.COST_ONLY, args.no_peer, args.allow_cpu = True, True, True
    peer = peers_on_accelerator(backend, not args.no_peer)
    mode = "quick" if args.quick else args.sizes
    sizes = SIZES[mode]
    path = args.out / f"gpu-{platform.node() or 'host'}{'-cost' if args.cost_only else ''}.json"
    payload = {"device": device_name(), "backend": backend, "jax": jax.__version__, "peers": peer,
               "torch": sys.modules["torch"].__version__ if "torch" in sys.modules else None,
               "mode": mode, "peaks": {}, "rows": [], "errors": [], "seconds": {}}
    rows = []
    print(f"device: {payload['device']}, jax {jax.__version__}, peers {'on' if peer else 'off'}", flush=True)
    sections = ([] if args.cost_only else ["peak"]) + [s for s in args.sections if s != "peak"]  # peak first
    for name in sections:
        for dtype in args.dtype:
            left = args.budget - (time.monotonic() - start)
            if left <= 0:
                payload["errors"].append(f"{name} {dtype}: skipped, budget spent")
                print(f"gpu.py: {name} {dtype} skipped: the {args.budget:.0f} s budget is spent", file=sys.stderr)
                continue
            t0 = time.monotonic()
            print(f"== {name} {dtype} ({left:.0f} s of the budget left)", flush=True)
            try:
                new = section_rows(name, sizes, dtype, peer, payload["peaks"])
            except Exception as e:  # noqa: BLE001 - one failing section must not lose the others' rows
                payload["errors"].append(f"{name} {dtype}: {type(e).__name__}: {e}")
                print(f"gpu.py: {name} {dtype} FAILED:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
                new = []
            payload["seconds"][f"{name} {dtype}"] = round(time.monotonic() - t0, 1)
            rows += new
            payload["rows"] = [dataclasses.asdict(r) | {"ratio": r.ratio} for r in rows]
            save(path, payload)
    print(f"\n{payload['device']} (jax {jax.__version__}), {time.monotonic() - start:.0f} s")
    tables(rows, payload["peaks"])
    print(f"\nsaved {path}")
    if payload["errors"]:
        print(f"gpu.py: {len(payload['errors'])} section(s) failed or skipped: " + "; ".join(payload["errors"]),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
