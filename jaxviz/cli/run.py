"""The data-set command: ``run`` (a method, with metrics, over a folder or a tfds data set, into result shards)."""

from __future__ import annotations

import json
import os

from jaxviz.cli._common import MAX_SIZE, check_layers, check_model, examples, integer, model_args
from jaxviz.cli.metrics import METHODS, METRICS, _names

RUN_METHODS = (*METHODS, "features", "render")


def _target(text: str):
    if text in ("predicted", "label"):
        return text
    if text.isdigit():
        return int(text)
    raise ValueError(f"--target must be predicted, label or a class index, got {text!r}")


def _channels(text: str, count: int) -> list[int]:
    """``A:B`` (channels A..B-1) or ``3,5,7``, each in [0, count)."""
    try:
        if ":" in text:
            a, b = (int(v) for v in text.split(":"))
            chosen = list(range(a, b))
        else:
            chosen = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--channels must be A:B or a comma-separated list of integers, got {text!r}") from None
    if not chosen or min(chosen) < 0 or max(chosen) >= count:
        raise ValueError(f"--channels must name channels in [0, {count}), got {text!r}")
    return chosen


def check_run(args) -> None:
    from jaxviz.io import datasets
    from jaxviz.run import distributed

    info = check_model(args)
    if args.method not in RUN_METHODS:
        raise ValueError(f"unknown method {args.method!r}; choose from {', '.join(RUN_METHODS)}")
    if args.method == "render":
        _check_render(args, info)
    elif args.data is None:
        raise ValueError(f"--data is required for {args.method} (only render makes its own items)")
    args.metric_names = _names(args.metrics, METRICS, "--metrics") if args.metrics else ()
    if args.method == "features" and args.metric_names:
        raise ValueError("--metrics score attribution maps; the features method makes none")
    args.target = _target(args.target)
    if isinstance(args.target, int) and args.target >= info.num_classes:
        raise ValueError(f"--target must be a class index in [0, {info.num_classes}), got {args.target}")
    if args.layer is not None:
        check_layers(args.layer, info)
    args.size = args.size or info.input_size
    if args.batch_size % args.devices:
        raise ValueError(f"--batch-size {args.batch_size} must be a multiple of --devices {args.devices}")
    args.processes = distributed.settings(args.coordinator, args.num_processes, args.process_id)
    if args.method != "render":
        datasets.open_source(args.data, args.size, split=args.split, data_dir=args.data_dir, check_only=True)


def _check_render(args, info) -> None:
    if args.layer is None:
        raise ValueError("render needs --layer (the layer whose channels it visualizes)")
    if args.data is not None or args.metrics:
        raise ValueError("render makes its own items (channels x seeds): drop --data and --metrics")
    check_layers(args.layer, info)
    _channels(args.channels, 1 << 30)  # the syntax now; the range once the model says the layer's width


def _simulate_cpu_devices(n: int) -> None:
    """On a CPU, ``--devices N`` splits the host into N XLA devices (set before JAX starts; harmless on an
    accelerator, whose own devices are used)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if n > 1 and "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def cmd_run(args) -> None:
    _simulate_cpu_devices(args.devices)
    from jaxviz.run import distributed

    if args.processes is not None:
        distributed.initialize(*args.processes)
    import jax.numpy as jnp

    from jaxviz import models
    from jaxviz.core import sharding
    from jaxviz.io import datasets
    from jaxviz.run import engine, tasks

    model, variables = models.load(args.model, args.weights)
    if args.method == "render":
        width = model.apply(variables, jnp.zeros((1, args.size, args.size, 3)), capture=(args.layer,))[1][
            args.layer].shape[-1]
        channels = _channels(args.channels, width)  # now against the layer's real width
        task, source = tasks.render(model, args.layer, channels, seeds=args.seeds, steps=args.steps,
                                    size=args.size, seed=args.seed)
    else:
        source = datasets.open_source(args.data, args.size, split=args.split, data_dir=args.data_dir)
        task = tasks.features(model, args.layer or model.layers[-2]) if args.method == "features" else \
            tasks.attribution(model, args.method, metrics=args.metric_names, target=args.target, layer=args.layer,
                              pixels_per_step=args.pixels_per_step)
    done = engine.dataset(task, variables, source, args.out, batch_size=args.batch_size, shard=args.shard,
                          mesh=sharding.batch_mesh(args.devices), seed=args.seed)
    summary = {"out": str(done.out), "items": done.n, "shards": done.shards, "computed": done.computed,
               "resumed": done.resumed, "complete": done.complete}
    if done.complete and args.metric_names:
        results = engine.read(args.out)
        summary["mean"] = {m: float(results[m].mean()) for m in args.metric_names}
    if args.json:
        print(json.dumps(summary))
        return
    print(f"{task.name} over {done.n} item(s) into {done.out}: {done.computed} shard(s) computed, "
          f"{done.resumed} found on disk" + ("" if done.complete else "; waiting for the other processes' shards"))
    for m, value in summary.get("mean", {}).items():
        print(f"  mean {m}: {value:.4f}")


def register(sub) -> None:
    p = sub.add_parser("run", help="a method (and metrics) over a whole data set, into resumable result shards",
                       description="Runs an attribution method (with --metrics on its maps) or feature extraction "
                                   "over every image of a folder or a prepared tensorflow-datasets data set, or a "
                                   "render sweep (channels of --layer times --seeds, no data set), in "
                                   "batches split over the devices, into OUT/shards/*.npz and OUT/index.json "
                                   "(plain NumPy and JSON). A rerun after an interruption computes only the "
                                   "missing shards. Several processes (hosts) share the work through "
                                   "jax.distributed: give each the same flags and its --process-id.",
                       epilog=examples("jaxviz run saliency --data photos/ --out runs/saliency --metrics deletion",
                                       "jaxviz run gradcam --data imagenette/320px-v2 --split validation "
                                       "--out runs/gc --devices 8",
                                       "jaxviz run features --layer avgpool --data photos/ --out runs/feats",
                                       "jaxviz run render --layer blocks.8 --channels 0:32 --seeds 2 --steps 256 "
                                       "--size 128 --out runs/blocks8",
                                       "jaxviz run saliency --data photos/ --out runs/s --coordinator host0:1234 "
                                       "--num-processes 2 --process-id 0"))
    p.add_argument("method", help="one of: " + ", ".join(RUN_METHODS))
    p.add_argument("--data", default=None, help="a folder of images (labels: first-level subfolders) or a "
                                                "tensorflow-datasets name (every method but render)")
    p.add_argument("--out", required=True, help="output folder (a rerun resumes in it)")
    model_args(p)
    p.add_argument("--metrics", default="", help="comma-separated, scored on each map: " + ", ".join(METRICS))
    p.add_argument("--target", default="predicted", help="predicted (each image's top class), label (the data "
                                                         "set's) or a class index")
    p.add_argument("--layer", default=None, help="the CAM methods' layer (default: the model's last spatial "
                                                 "one); for features, the layer (default: the one before the "
                                                 "classifier)")
    p.add_argument("--size", type=integer(32, MAX_SIZE), default=None, help="image side (default: the model's)")
    p.add_argument("--batch-size", type=integer(1, 65536), default=32, help="images per compiled call")
    p.add_argument("--shard", type=integer(1, 1 << 24), default=256, help="images per shard file (the unit "
                                                                         "of resuming)")
    p.add_argument("--devices", type=integer(1, 4096), default=1, help="devices to split each batch over (on a "
                                                                      "CPU, the host is split into that many)")
    p.add_argument("--split", default="train", help="the tensorflow-datasets split")
    p.add_argument("--data-dir", default=None, help="the tensorflow-datasets folder (default: $TFDS_DATA_DIR "
                                                    "or ~/tensorflow_datasets)")
    p.add_argument("--pixels-per-step", type=integer(1), default=None,
                   help="deletion, insertion, pixel flipping: pixels per step (default: 1/50 of the image)")
    p.add_argument("--coordinator", default=None, help="HOST:PORT of process 0, for several processes "
                                                       "(or $JAXVIZ_COORDINATOR)")
    p.add_argument("--num-processes", type=integer(1, 65536), default=None, help="how many processes share "
                                                                                 "the run")
    p.add_argument("--process-id", type=integer(0), default=None, help="this process's id, 0..count-1")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the random metrics and of render")
    p.add_argument("--channels", default="0:16", help="render: the layer's channels, A:B or 3,5,7")
    p.add_argument("--seeds", type=integer(1, 4096), default=1, help="render: images per channel")
    p.add_argument("--steps", type=integer(1, 1 << 16), default=256, help="render: optimizer steps")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_run, check=check_run, resumes=True)
