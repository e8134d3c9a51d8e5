"""Saliency over a folder of images: jaxviz's data-set runner vs Captum over a PyTorch DataLoader.

    python benchmarks/dataset_run.py                              # Lite0, 256 images at 224 px, batch 32
    python benchmarks/dataset_run.py --images 64 --scaling 1,8    # and the runner on 1 and 8 devices

Both sides read the same PNG files with the same decoder (jaxviz.io.image.load_image: resize and
center-crop), take each image's top class as the target and compute max |d score / d pixel| over RGB for
every image, batch by batch, ending with the maps in one place (jaxviz: its shard files and index; the peer:
one .npz), on the same weights (the reference's random initialization, converted; benchmarks/peers.py).
jaxviz's first pass (with the compile) is timed apart; then both are timed in turns, the median of
``--repeats`` passes, and the ratio in images/s.

``--scaling`` runs the runner alone (the published weights) in a fresh process per device count, with the
CPU split into that many XLA devices (``--xla_force_host_platform_device_count``): on 2 cores this measures
what the sharding costs (or saves), not the scaling of real devices.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def make_folder(root: Path, n: int, size: int) -> Path:
    """``n`` distinct crops of the bundled photos (varied positions and scales), as PNGs."""
    from jaxviz.io import image

    rng = np.random.default_rng(0)
    photos = [image.sample(name, 2 * size) for name in image.SAMPLES]
    for i in range(n):
        photo = photos[i % len(photos)]
        side = int(rng.integers(size, 2 * size + 1))
        r, c = rng.integers(0, 2 * size - side + 1, size=2)
        image.save_png(root / f"{i:04d}.png", photo[r:r + side, c:c + side])
    return root


def jaxviz_pass(folder: Path, out: Path, model_name: str, size: int, batch: int, devices: int | None = None,
                variables=None):
    """One pass of the runner (``variables``: the peer's weights; default the model's published ones)."""
    from jaxviz.core import sharding
    from jaxviz.io import datasets
    from jaxviz.run import engine

    _, published, task = _model_and_task(model_name)
    variables = published if variables is None else variables
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    engine.dataset(task, variables, datasets.Folder(folder, size), out, batch_size=batch, shard=batch * 4,
                   mesh=sharding.batch_mesh(devices), progress=False)
    return time.perf_counter() - t0


@functools.cache
def _model_and_task(name: str):
    """Loaded once per process, and one task object, so that every pass reuses the compiled program."""
    from jaxviz import models
    from jaxviz.run import tasks

    model, variables = models.load(name)
    return model, variables, tasks.attribution(model, "saliency")


def captum_pass(folder: Path, out: Path, net, size: int, batch: int):
    import captum.attr as ca
    import torch

    from jaxviz.io import image

    from peers import device

    paths = image.list_images(folder)

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            return torch.from_numpy(np.ascontiguousarray(image.load_image(paths[i], size).transpose(2, 0, 1)))

    t0 = time.perf_counter()
    saliency, maps, targets = ca.Saliency(net), [], []
    for x in torch.utils.data.DataLoader(Images(), batch_size=batch):
        x = x.to(device())
        with torch.no_grad():
            target = net(x).argmax(1)
        maps.append(saliency.attribute(x.requires_grad_(), target=target, abs=True).amax(1).cpu().numpy())
        targets.append(target.cpu().numpy())
    np.savez(out, map=np.concatenate(maps), target=np.concatenate(targets))
    return time.perf_counter() - t0


def scaling(folder: Path, work: Path, args) -> dict[int, dict]:
    rows = {}
    for n in args.scaling:
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
        code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import dataset_run as d; "
                f"from pathlib import Path; t = [d.jaxviz_pass(Path({str(folder)!r}), Path({str(work)!r}) / 'n{n}', "
                f"{args.model!r}, {args.size}, {args.batch}) for _ in range({args.repeats + 1})]; "
                "print(json.dumps({'first_s': t[0], 'runs': t[1:]}))")
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        rows[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scaling", type=lambda s: [int(x) for x in s.split(",")], default=[])
    p.add_argument("--skip-peer", action="store_true")
    args = p.parse_args()

    from harness import device_name

    work = Path(tempfile.mkdtemp(prefix="jaxviz-dataset-run-"))
    folder = make_folder(work / "images", args.images, args.size)
    result = {"device": device_name(), "images": args.images, "size": args.size, "batch": args.batch,
              "model": args.model}
    if not args.skip_peer:
        from peers import torch_pair

        net, variables = torch_pair(args.model, normalized=True)  # the same (random) weights on both sides
        first = jaxviz_pass(folder, work / "jx", args.model, args.size, args.batch, variables=variables)
        ours, theirs = [], []
        for _ in range(args.repeats):  # in turns: a machine that slows down slows both
            ours.append(jaxviz_pass(folder, work / "jx", args.model, args.size, args.batch, variables=variables))
            theirs.append(captum_pass(folder, work / "peer.npz", net, args.size, args.batch))
        from jaxviz.run import engine

        mine, peer = engine.read(work / "jx"), np.load(work / "peer.npz")
        same = mine["target"] == peer["target"]  # random weights: near-tied logits can pick another class
        diff = np.abs(mine["map"] - peer["map"]).max(axis=(1, 2)) / np.abs(peer["map"]).max()
        result["max_map_difference"] = float(diff.max())  # the same work
        result["max_map_difference_same_target"] = float(diff[same].max()) if same.any() else None
        result["targets_differ"] = int((~same).sum())
        a, b = statistics.median(ours), statistics.median(theirs)
        result.update(jaxviz_first_s=first, jaxviz_runs=ours, captum_runs=theirs, jaxviz_img_s=args.images / a,
                      captum_img_s=args.images / b, ratio=b / a)
        print(f"{args.model}, {args.images} images at {args.size} px, batch {args.batch}: jaxviz runner "
              f"{args.images / a:.2f} img/s (first pass with compile {first:.1f} s), Captum + DataLoader "
              f"{args.images / b:.2f} img/s, ratio {b / a:.2f}x; maps agree to "
              f"{result['max_map_difference']:.1e} of their maximum; the predicted class differs on "
              f"{result['targets_differ']} image(s), the others' maps agree to "
              f"{result['max_map_difference_same_target']:.1e}")
    if args.scaling:
        rows = scaling(folder, work, args)
        base = statistics.median(rows[args.scaling[0]]["runs"])
        for n, r in rows.items():
            med = statistics.median(r["runs"])
            print(f"  runner on {n} device(s): {args.images / med:.2f} img/s ({base / med:.2f}x of "
                  f"{args.scaling[0]} device(s)); first pass {r['first_s']:.1f} s")
        result["scaling"] = rows
    from harness import RESULTS

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dataset_run.json").write_text(json.dumps(result, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
