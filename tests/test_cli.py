"""The command line: results as JSON, and one line + exit 2 for every user mistake."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from jaxviz import cli, imagenet_labels

from conftest import CAT_CLASSES, COFFEE_CLASSES


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("sample, expected", [("chelsea", CAT_CLASSES), ("coffee", COFFEE_CLASSES)])
def test_classify_json(capsys, sample, expected):
    code, out, _ = run(capsys, "classify", "--sample", sample, "--json", "--top", "3")
    preds = json.loads(out)
    assert code == 0 and len(preds) == 3
    assert preds[0]["class"] in expected
    assert preds[0]["label"] == imagenet_labels()[preds[0]["class"]]
    assert [p["prob"] for p in preds] == sorted((p["prob"] for p in preds), reverse=True)


def test_classify_a_file(capsys, tmp_path):
    from jaxviz.io import image

    image.save_png(tmp_path / "cat.png", image.sample("chelsea"))
    code, out, _ = run(capsys, "classify", str(tmp_path / "cat.png"), "--json")
    assert code == 0 and json.loads(out)[0]["class"] in CAT_CLASSES


def test_layers_json(capsys):
    code, out, _ = run(capsys, "layers", "--model", "resnet50", "--json")
    rows = json.loads(out)
    assert code == 0
    names = [r["name"] for r in rows]
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"] and "layer4.2" in names
    assert dict((r["name"], r["shape"]) for r in rows)["layer4"] == [7, 7, 2048]


def _bad_inputs(tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    Image.new("RGB", (64, 64), "blue").save(tmp_path / "full.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "full.jpg").read_bytes()[:300])
    return {
        "missing file": ["classify", str(tmp_path / "nope.jpg")],
        "not an image": ["classify", str(tmp_path / "text.png")],
        "1x1 image": ["classify", str(tmp_path / "dot.png")],
        "truncated": ["classify", str(tmp_path / "cut.jpg")],
        "unknown model": ["classify", "--sample", "chelsea", "--model", "vgg99"],
        "unknown layers model": ["layers", "--model", "nope"],
        "unknown sample": ["classify", "--sample", "dog"],
        "missing weights file": ["classify", "--sample", "chelsea", "--weights", str(tmp_path / "w.pth")],
        "bad flag": ["classify", "--sample", "chelsea", "--frobnicate"],
        "bad top": ["classify", "--sample", "chelsea", "--top", "0"],
    }


def test_user_mistakes_exit_2_with_one_line(capsys, tmp_path):
    for what, argv in _bad_inputs(tmp_path).items():
        code, out, err = run(capsys, *argv)
        assert code == 2, what
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (what, err)
        assert out == "", what


def test_console_script_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jaxviz.cli", "classify", str(tmp_path / "none.png")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no such file" in proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["dream", "--size", "0"], "jaxviz dream: --size must be >= 32, got 0"),
    (["classviz", "--target", "1", "--size", "0"], "jaxviz classviz: --size must be >= 32, got 0"),
    (["dream", "--steps", "-3"], "jaxviz dream: --steps must be >= 1, got -3"),
    (["dream", "--octaves", "two"], "jaxviz dream: --octaves must be an integer, got 'two'"),
    (["saliency", "--sample", "chelsea", "--samples", "0"], "jaxviz saliency: --samples must be >= 1, got 0"),
    (["texture", "t.png", "--tv", "-1"], "jaxviz texture: --tv must be >= 0, got -1.0"),
    (["texture", "t.png", "--spectrum", "-1"], "jaxviz texture: --spectrum must be >= 0, got -1.0"),
    (["train-style", "s.png", "--batch", "0"], "jaxviz train-style: --batch-size must be >= 1, got 0"),
    (["demo", "--scale", "0"], "jaxviz demo: --scale must be > 0, got 0.0"),
    (["deepinversion", "--targets", "1", "--lr", "nan"], "jaxviz deepinversion: --lr must be a number, got 'nan'"),
])
def test_numeric_flags_are_range_checked_with_the_flag_named(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, *argv, "--out", str(tmp_path / "x"))
    assert (code, out, err.strip()) == (2, "", message)
    assert not (tmp_path / "x").exists()


def test_a_mistake_is_answered_in_under_2_s_without_importing_jax(tmp_path):
    """`jaxviz classify missing.png` checks the file before JAX or the model loads (benchmarks/cli.py times it)."""
    script = ("import sys\nfrom jaxviz.cli import main\ncode = main(['classify', sys.argv[1]])\n"
              "print(code, sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'flax', 'optax')))")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "missing.png")], capture_output=True,
                          text=True)
    wall = time.perf_counter() - start
    assert proc.stdout.strip() == "2 []" and proc.stderr.strip().endswith("missing.png: no such file")
    assert proc.stderr.count("\n") == 1 and wall < 2.0, (proc.stderr, wall)


@pytest.mark.parametrize("argv", [
    ["--method", "vanilla"],
    ["--method", "gradcam", "--layer", "blocks.12", "--target", "281"],
    ["--method", "occlusion", "--patch", "112", "--stride", "112"],
    ["--method", "ig", "--steps", "4"],
    ["--method", "guided", "--layer", "blocks.10", "--channel", "3"],
    ["--method", "guided-gradcam", "--target", "281"],
    ["--method", "layercam", "--layer", "blocks.12"],
    ["--method", "vargrad", "--samples", "2"],
])
def test_saliency_writes_a_png(capsys, tmp_path, argv):
    out = tmp_path / "s.png"
    code, stdout, _ = run(capsys, "saliency", "--sample", "chelsea", *argv, "--out", str(out), "--json")
    summary = json.loads(stdout)
    assert code == 0 and out.exists()
    assert summary["method"] == argv[1] and summary["out"] == str(out)
    assert summary["target"] in (CAT_CLASSES if "--target" not in argv else {281})
    assert Image.open(out).size[0] > 2 * 224


@pytest.mark.parametrize("argv, message", [
    (["--method", "gradcam", "--layer", "nope"], "unknown layer"),
    (["--method", "cam", "--layer", "head"], "gradcam"),
    (["--method", "vanilla", "--target", "5000"], "class index"),
    (["--method", "sobel"], "invalid choice"),
])
def test_saliency_mistakes(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, "saliency", "--sample", "chelsea", *argv, "--out", str(tmp_path / "s.png"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("argv", [
    ["dream", "--layer", "blocks.3,blocks.5", "--size", "64", "--steps", "2", "--octaves", "2", "--jitter", "4"],
    ["classviz", "--target", "9", "--size", "48", "--steps", "3"],
    ["invert", "--sample", "coffee", "--layer", "blocks.2,blocks.5", "--size", "48", "--steps", "3"],
])
def test_synthesis_commands_write_a_png(capsys, tmp_path, argv):
    out = tmp_path / "s.png"
    code, stdout, _ = run(capsys, *argv, "--out", str(out), "--json")
    assert code == 0 and out.exists(), stdout
    assert json.loads(stdout)["out"] == str(out)
    assert min(Image.open(out).size) >= 48


def test_fool_json(capsys, tmp_path):
    out = tmp_path / "f.png"
    code, stdout, _ = run(capsys, "fool", "--sample", "chelsea", "--target", "9", "--json", "--out", str(out))
    summary = json.loads(stdout)
    assert code == 0 and out.exists()
    assert set(summary) == {"pred", "linf", "l2", "steps"}
    assert summary["pred"] == 9 and summary["linf"] <= 8 / 255 + 1e-6 and summary["l2"] > 0
    assert 1 <= summary["steps"] <= 100


@pytest.mark.parametrize("argv, message", [
    (["dream", "--layer", "nope"], "unknown layer"),
    (["classviz", "--target", "5000"], "class index"),
    (["classviz", "--target", "1", "--method", "magic"], "invalid choice"),
    (["fool", "--sample", "chelsea", "--target", "9", "--eps", "0"], "--eps"),
    (["fool", "--target", "9"], "required"),
    (["invert", "--sample", "chelsea", "--layer", "blocks.99"], "unknown layer"),
    (["style", "c.png", "s.png", "--param", "wavelet"], "invalid choice"),
])
def test_synthesis_mistakes(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, *argv, "--out", str(tmp_path / "s.png"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["deepinversion", "--targets", "1,unicorn"], "neither a class index"),
    (["deepinversion", "--targets", "1000"], "class index"),
    (["deepinversion", "--targets", "1", "--size", "31"], "--size"),
    (["deepinversion", "--targets", "1", "--model", "nope"], "unknown model"),
    (["deepinversion", "--targets", "1", "--param", "wavelet"], "invalid choice"),
    (["distill"], "--digits"),
])
def test_deepinversion_and_distill_mistakes(capsys, tmp_path, argv, message):
    code, _, err = run(capsys, *argv, *(["--out", str(tmp_path / "d")] if argv[0] == "deepinversion" else []))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "d").exists()


def test_distill_json_prints_the_three_accuracies_and_the_synthesis_time(capsys):
    code, stdout, _ = run(capsys, "distill", "--digits", "--json", "--images-per-class", "2", "--di-steps", "2",
                          "--student-steps", "2", "--teacher-steps", "2")
    assert code == 0
    result = json.loads(stdout)
    assert set(result) == {"synth", "student_acc", "noise_baseline_acc", "teacher_acc", "synthesis_seconds"}
    assert result["synth"] == "deepinversion" and result["synthesis_seconds"] > 0
    assert all(0.0 <= result[k] <= 1.0 for k in ("student_acc", "noise_baseline_acc", "teacher_acc"))


def test_help_and_the_parser_import_no_jax():
    """``jaxviz --help`` and every command's parser load no JAX (they answer at once); the defaults the CLI
    spells out equal the library's."""
    script = ("import sys\nfrom jaxviz.cli import build_parser\nbuild_parser()\n"
              "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'flax', 'optax'))\n"
              "print(heavy)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    for argv in (["--help"], ["saliency", "--help"], ["deepinversion", "--help"], []):
        proc = subprocess.run([sys.executable, "-m", "jaxviz.cli", *argv], capture_output=True, text=True)
        assert proc.returncode == 0 and "usage: jaxviz" in proc.stdout, argv
        assert argv or ("deepinversion" in proc.stdout and "train-style" in proc.stdout)  # bare: the commands
    version = subprocess.run([sys.executable, "-m", "jaxviz.cli", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("jaxviz ")


def test_help_shows_defaults_the_default_layer_per_model_methods_and_examples():
    from jaxviz.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices
    dream, saliency, steps = sub["dream"].format_help(), sub["saliency"].format_help(), "(default: 10)"
    assert steps in " ".join(dream.split()) and "resnet50: layer3.2" in " ".join(dream.split())
    assert "occlusion: the score drop" in " ".join(saliency.split())
    for name, parser in sub.items():
        assert "examples:\n  jaxviz " + name in parser.format_help(), name


def test_cli_defaults_equal_the_library_defaults():
    from jaxviz import models
    from jaxviz.cli import _common, datafree, experiments, style, synthesis
    from jaxviz.experiments import digits_distill, digits_neighbors
    from jaxviz.style import fast, texture, transfer
    from jaxviz.synthesis import classviz, inversion

    config = digits_distill.DigitsConfig()
    assert _common.DEFAULT_MODEL == models.DEFAULT_MODEL
    assert (synthesis.CLASSVIZ_STEPS, synthesis.CLASSVIZ_METHODS, synthesis.INVERT_STEPS, synthesis.INVERT_TV) == (
        classviz.DEFAULT_STEPS, classviz.METHODS, inversion.DEFAULT_STEPS, inversion.DEFAULT_TV_WEIGHT)
    assert (style.TEXTURE_STEPS, style.TEXTURE_TV, style.TEXTURE_SPECTRUM, style.STYLE_STEPS,
            style.STYLE_CONTENT_WEIGHT, style.STYLE_TV,
            style.FAST_STEPS, style.FAST_SIZE) == (
        texture.DEFAULT_STEPS, texture.DEFAULT_TV_WEIGHT, texture.DEFAULT_SPECTRUM_WEIGHT, transfer.DEFAULT_STEPS,
        transfer.DEFAULT_CONTENT_WEIGHT,
        transfer.DEFAULT_TV_WEIGHT, fast.DEFAULT_STEPS, fast.DEFAULT_SIZE)
    assert (style.FAST_BATCH, style.FAST_LR, style.STYLE_PARAMS) == (fast.DEFAULT_BATCH_SIZE, fast.DEFAULT_LR,
                                                                      transfer.PARAMS)
    assert datafree.DIGITS == {k: getattr(config, k) for k in datafree.DIGITS}
    assert experiments.DIGITS_SHIFT == digits_neighbors.DIGITS_SHIFT
    from jaxviz.experiments import demo

    assert experiments.DEMO_SECTIONS == tuple(s.name for s in demo.SECTIONS)


def test_the_zoo_table_the_cli_checks_against_equals_the_models():
    """jaxviz/cli/zoo.json (regenerate: python -m jaxviz.cli._zoo) is what jaxviz.models says."""
    from jaxviz import models
    from jaxviz.cli import _zoo

    assert _zoo.names() == models.available()
    for name in models.available():
        assert _zoo.info(name)._asdict() == {"name": name, **{k: tuple(v) if isinstance(v, list) else v
                                                               for k, v in _zoo.describe(name).items()}}, name


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--sample", "chelsea", "--methods", "saliency,foo"], "--methods: unknown 'foo'"),
    (["evaluate", "--sample", "chelsea", "--metrics", "hog"], "--metrics: unknown 'hog'"),
    (["evaluate"], "give images"),
    (["evaluate", "no/such/dir"], "no such file or folder"),
    (["evaluate", "--sample", "chelsea", "--size", "8"], "--size"),
    (["evaluate", "--sample", "chelsea", "--layer", "blocks.99"], "unknown layer 'blocks.99'"),
])
def test_evaluate_mistakes(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_evaluate_json_gives_one_finite_row_per_image_method_and_metric(capsys, tmp_path):
    from jaxviz.io import image

    folder = tmp_path / "photos"
    folder.mkdir()
    image.save_png(folder / "cat.png", image.sample("chelsea", 48))
    code, out, _ = run(capsys, "evaluate", str(folder), "--sample", "coffee", "--size", "48", "--methods",
                       "saliency,gradcam", "--metrics", "deletion,sparseness", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2 * 2 * 2 and all(np.isfinite(r["score"]) for r in rows)
    assert {r["image"] for r in rows} == {str(folder / "cat.png"), "coffee"}
    assert all(0.0 <= r["score"] <= 1.0 for r in rows)  # an area under a probability; a Gini index
