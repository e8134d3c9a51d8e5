"""The data-free commands: ``deepinversion`` (images from BatchNorm statistics), ``distill`` and ``incremental``
(digits)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jaxviz.cli._common import (
    SIZE,
    STEPS,
    check_class,
    check_model,
    examples,
    integer,
    key,
    label,
    model_args,
    number,
    report,
)

#: the CLI's DeepInversion run: short enough for 10 classes in minutes on 2 CPU cores (see the README).
DEEPINVERSION_STEPS = 300
DEEPINVERSION_PARAMS = ("maco", "pixel", "fourier")
#: the digits experiment's defaults (jaxviz.experiments.digits_distill.DigitsConfig; a test keeps them equal).
DIGITS = {"images_per_class": 40, "di_steps": 300, "student_steps": 2000, "teacher_steps": 500,
          "generator_rounds": 6}
#: ``--synth``'s choices (jaxviz.experiments.digits_distill.SYNTHS) and the incremental splits
#: (jaxviz.experiments.digits_incremental.TASKS); a test keeps them equal.
SYNTHS = ("deepinversion", "generator")
TASKS = (2, 5)
#: the incremental experiment's defaults (jaxviz.experiments.digits_incremental.IncrementalConfig).
INCREMENTAL = {"images_per_class": 20, "di_steps": 200, "generator_rounds": 20, "steps": 300}


def _class_list(text: str, model) -> list[int]:
    """``"1,goldfish"`` -> ``[1, 1]``: class indices or label names (case-insensitive)."""
    from jaxviz.io import labels

    names = {n.lower(): i for i, n in enumerate(labels.labels_for(model))}
    out = []
    for token in (t.strip() for t in text.split(",")):
        if token.isdigit():
            out.append(int(token))
            check_class(model, out[-1], "--targets")
        elif token.lower() in names:
            out.append(names[token.lower()])
        else:
            raise ValueError(f"--targets: {token!r} is neither a class index in [0, {model.num_classes}) nor a "
                             f"label of {model.name} (e.g. {labels.labels_for(model)[1]!r})")
    return out


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_") or "class"


def check_deepinversion(args) -> None:
    info = check_model(args)
    args.target_list = _class_list(args.targets, info)
    args.size = args.size or info.input_size
    if args.size % 2:
        raise ValueError(f"--size must be even, got {args.size}")


def cmd_deepinversion(args) -> None:
    import dataclasses
    import shutil
    import time
    from pathlib import Path

    import jax
    import numpy as np

    from jaxviz import models, top_k
    from jaxviz.datafree import deepinversion as di
    from jaxviz.io import image

    targets, size = args.target_list, args.size
    model, variables = models.load(args.model, args.weights)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / ".deepinversion_checkpoint"
    settings = di.recommended(model)
    if args.param is not None:
        from jaxviz.synthesis import param

        settings = dataclasses.replace(settings, param={"pixel": None, "maco": di.MACO,
                                                        "fourier": param.Fourier()}[args.param])
    if args.lr is not None:
        settings = dataclasses.replace(settings, lr=args.lr)
    start = time.perf_counter()
    result = di.deepinversion(key(args), model, variables, targets, size=size, steps=args.steps, settings=settings,
                              checkpoint=checkpoint, progress=None)
    seconds = time.perf_counter() - start
    images = np.asarray(result.images)
    preds = top_k(model, jax.jit(model.apply)(variables, result.images), 5)
    rows = []
    for i, (cls, img, top) in enumerate(zip(targets, images, preds, strict=True)):
        name = f"{i:03d}_{_slug(label(model, cls))}.png"
        image.save_png(out / name, img)
        rows.append({"file": name, "target": cls, "label": label(model, cls),
                     "target_prob": float(next((p["prob"] for p in top if p["class"] == cls), 0.0)),
                     "top5": [p["class"] for p in top]})
    param = "pixel" if settings.param is None else type(settings.param).__name__.lower()
    summary = {"model": model.name, "size": size, "steps": args.steps, "seed": args.seed, "lr": settings.lr,
               "param": param,
               "seconds": round(seconds, 3), "final_loss": result.history[-1][1], "resumed_from": result.resumed_from,
               "images": rows}
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out / "summary.json")
    shutil.rmtree(checkpoint, ignore_errors=True)
    hits = sum(r["target"] == r["top5"][0] for r in rows)
    resumed = f", resumed from step {result.resumed_from}" if result.resumed_from else ""
    report(args, summary, f"wrote {len(rows)} images and summary.json to {out} ({hits}/{len(rows)} classified "
                          f"as their target by {model.name}, {seconds:.1f} s{resumed})")


def _check_checkpoint(args) -> None:
    if args.checkpoint is not None and Path(args.checkpoint).exists() and not Path(args.checkpoint).is_dir():
        raise ValueError(f"--checkpoint {args.checkpoint} is a file; give a directory")


def check_distill(args) -> None:
    if not args.digits:
        raise ValueError("distill runs the digits experiment: pass --digits")
    _check_checkpoint(args)


def cmd_distill(args) -> None:
    import jax

    from jaxviz.experiments import digits_distill

    config = digits_distill.DigitsConfig(images_per_class=args.images_per_class, synth=args.synth,
                                         di_steps=args.di_steps, generator_rounds=args.rounds,
                                         student_steps=args.student_steps, teacher_steps=args.teacher_steps)
    result = digits_distill.run(jax.random.key(args.seed), config, progress=None,
                                log=lambda line: print(line, file=sys.stderr), checkpoint=args.checkpoint)
    keys = ("synth", "student_acc", "noise_baseline_acc", "teacher_acc", "synthesis_seconds")
    if args.synth == "deepinversion":
        tail = (f"Adaptive DeepInversion diversity {result['diversity_adi']:.4f} vs {result['diversity_di']:.4f}")
    else:
        tail = f"the generator's co-trained student {result.get('cotrained_student_acc', float('nan')):.3f}"
    report(args, {k: result[k] for k in keys},
           f"teacher {result['teacher_acc']:.3f}, student distilled on {args.synth} images "
           f"{result['student_acc']:.3f} (synthesized in {result['synthesis_seconds']:.1f} s), on Gaussian noise "
           f"{result['noise_baseline_acc']:.3f} (held-out real digits); {tail}")


def check_incremental(args) -> None:
    if not args.digits:
        raise ValueError("incremental runs the digits experiment: pass --digits")
    _check_checkpoint(args)


def cmd_incremental(args) -> None:
    import dataclasses

    import jax

    from jaxviz.experiments import digits_incremental as inc

    config = inc.IncrementalConfig(tasks=args.tasks, images_per_class=args.images_per_class,
                                   di_steps=args.di_steps, generator_rounds=args.rounds,
                                   settings=dataclasses.replace(inc.IncrementalConfig().settings, steps=args.steps))
    result = inc.run(jax.random.key(args.seed), config, log=lambda line: print(line, file=sys.stderr),
                     checkpoint=args.checkpoint)
    summary = {"tasks": args.tasks, "seed": args.seed, "methods": result}
    lines = [f"{m}: final accuracy {r['final_acc']:.3f} over all 10 digits (per task "
             f"{', '.join(f'{a:.2f}' for a in r['per_task'])}; synthesis {r['synthesis_seconds']:.1f} s)"
             for m, r in result.items()]
    report(args, summary, f"{args.tasks} tasks, seed {args.seed}:\n" + "\n".join(lines))


def _checkpoint_arg(p) -> None:
    p.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="save every finished stage here; the same command run again resumes after the last one")


def register(sub) -> None:
    p = sub.add_parser("deepinversion", help="DeepInversion: images of classes from the network's BatchNorm "
                                             "statistics alone",
                       epilog=examples("jaxviz deepinversion --targets goldfish,ostrich,9 --out di",
                                       "jaxviz deepinversion --targets 1 --size 128 --steps 2000 --out di  "
                                       "# the paper's step count"))
    model_args(p)
    p.add_argument("--targets", required=True, help="comma-separated class indices or label names, one image each")
    p.add_argument("--size", type=SIZE, default=None, help="image side in pixels, even (default: the model's)")
    p.add_argument("--steps", type=STEPS, default=DEEPINVERSION_STEPS,
                   help=f"optimizer steps (default {DEEPINVERSION_STEPS}; the paper's setting is 2000)")
    p.add_argument("--lr", type=number(above=0), default=None,
                   help="peak learning rate (default: the model family's, 0.25 with MACO, 0.1 with pixels)")
    p.add_argument("--param", choices=DEEPINVERSION_PARAMS, default=None,
                   help="what is optimized (default: the model family's: maco for EfficientNet-Lite, whose pixels "
                        "come out covered in colour noise; pixel, the paper's, for the others)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (same seed, same pictures)")
    p.add_argument("--out", required=True, help="folder for {index:03d}_{class}.png and summary.json; an interrupted "
                                                "run resumes from its checkpoint there")
    p.add_argument("--json", action="store_true", help="print summary.json's content")
    p.set_defaults(func=cmd_deepinversion, check=check_deepinversion, resumes=True)

    p = sub.add_parser("distill", help="data-free distillation: a student learns from synthesized images only",
                       epilog=examples("jaxviz distill --digits", "jaxviz distill --digits --synth generator --json",
                                       "jaxviz distill --digits --images-per-class 10 --student-steps 500 --json"))
    p.add_argument("--digits", action="store_true", help="the scikit-learn digits experiment (the one offered)")
    p.add_argument("--synth", choices=SYNTHS, default="deepinversion",
                   help="what synthesizes the images: DeepInversion, or Fast-DFKD's meta-learned generator")
    p.add_argument("--images-per-class", type=integer(1, 10_000), default=DIGITS["images_per_class"],
                   help="synthesized images per digit")
    p.add_argument("--di-steps", type=STEPS, default=DIGITS["di_steps"], help="DeepInversion steps")
    p.add_argument("--rounds", type=STEPS, default=DIGITS["generator_rounds"], help="generator synthesis rounds")
    p.add_argument("--student-steps", type=STEPS, default=DIGITS["student_steps"], help="distillation steps")
    p.add_argument("--teacher-steps", type=STEPS, default=DIGITS["teacher_steps"], help="teacher training steps")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    _checkpoint_arg(p)
    p.add_argument("--json", action="store_true", help='print {"synth", "student_acc", "noise_baseline_acc", '
                                                       '"teacher_acc", "synthesis_seconds"}')
    p.set_defaults(func=cmd_distill, check=check_distill)

    p = sub.add_parser("incremental", help="data-free class-incremental learning on the digits: fine-tuning, "
                                           "DeepInversion replay, Always Be Dreaming, joint training",
                       epilog=examples("jaxviz incremental --digits --tasks 2 --json",
                                       "jaxviz incremental --digits --tasks 5 --seed 1"))
    p.add_argument("--digits", action="store_true", help="the scikit-learn digits experiment (the one offered)")
    p.add_argument("--tasks", type=int, choices=TASKS, default=2, help="2 tasks (0-4, 5-9) or 5 tasks of 2 digits")
    p.add_argument("--steps", type=STEPS, default=INCREMENTAL["steps"], help="training steps per task")
    p.add_argument("--images-per-class", type=integer(1, 10_000), default=INCREMENTAL["images_per_class"],
                   help="synthesized replay images per old digit")
    p.add_argument("--di-steps", type=STEPS, default=INCREMENTAL["di_steps"], help="DeepInversion steps per replay")
    p.add_argument("--rounds", type=STEPS, default=INCREMENTAL["generator_rounds"],
                   help="generator rounds per replay (ABD's synthesis)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    _checkpoint_arg(p)
    p.add_argument("--json", action="store_true", help='print {"tasks", "seed", "methods": {METHOD: {"final_acc", '
                                                       '"per_task", "after_task", "synthesis_seconds"}}}')
    p.set_defaults(func=cmd_incremental, check=check_incremental)
