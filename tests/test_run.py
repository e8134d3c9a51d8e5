"""Data-set runs (jaxviz.run): the same results on 1 device, 8 simulated devices and 2 processes with
jax.distributed; a run killed with SIGKILL resumes to every result once; the command line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import run_case

from jaxviz.io import image
from jaxviz.run import engine

CASE = Path(run_case.__file__)
N = 20  # three shards of 8, 8 and 4: a short last shard and a padded last batch
#: 8 devices compute each image alone where 1 device convolves the batch of 8: float32 rounding apart
MAP_RTOL = 1e-5


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(N):
        image.save_png(root / f"class{i % 3}" / f"{i:02d}.png", rng.uniform(size=(20, 24, 3)))
    return root


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("one-device")
    done = run_case.run(folder, out)
    assert done == engine.Index(out, N, 3, 3, 0, True)
    return engine.read(out)


def _env(**extra):
    return {**os.environ, "PYTHONPATH": str(CASE.parent), **extra}


def _script(folder, out, *more, **env):
    return subprocess.Popen([sys.executable, str(CASE), str(folder), str(out), *more], env=_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc, timeout=300):
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, stderr[-3000:]
    return stdout


def _assert_same(results, reference):
    assert sorted(results) == sorted(reference) == ["deletion", "index", "label", "map", "score", "target"]
    np.testing.assert_array_equal(results["index"], np.arange(N))
    np.testing.assert_array_equal(results["label"], sorted(i % 3 for i in range(N)))  # class0/ first
    np.testing.assert_array_equal(results["target"], reference["target"])
    scale = np.abs(reference["map"]).max()
    np.testing.assert_allclose(results["map"], reference["map"], atol=MAP_RTOL * scale)
    np.testing.assert_allclose(results["score"], reference["score"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results["deletion"], reference["deletion"], rtol=1e-4, atol=1e-5)


def test_the_results_are_each_images_saliency_and_deletion_in_folder_order(folder, reference):
    import jax.numpy as jnp

    import jaxviz
    from jaxviz.io import datasets
    from jaxviz.metrics import faithfulness

    model, params, _ = run_case.model_and_task()
    source = datasets.Folder(folder, run_case.SIZE)
    x, labels = datasets.load_batch(source, range(N))
    x = jnp.asarray(x)
    target = np.argmax(np.asarray(model.apply(params, x)), axis=1)
    np.testing.assert_array_equal(reference["target"], target)
    np.testing.assert_array_equal(reference["label"], labels)
    maps = jaxviz.reduce_channels(jaxviz.saliency(model, params, x, target))
    np.testing.assert_allclose(reference["map"], np.asarray(maps), rtol=1e-5, atol=1e-6 * np.abs(maps).max())
    deletion = faithfulness.deletion(model, params, x, target, maps, pixels_per_step=16)
    np.testing.assert_allclose(reference["deletion"], np.asarray(deletion), rtol=1e-4, atol=1e-5)


def test_eight_devices_and_two_processes_give_the_results_of_one(folder, reference, tmp_path):
    eight = _script(folder, tmp_path / "eight", XLA_FLAGS="--xla_force_host_platform_device_count=8")
    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    two = [_script(folder, tmp_path / "two", JAXVIZ_COORDINATOR=f"localhost:{port}", JAXVIZ_NUM_PROCESSES="2",
                   JAXVIZ_PROCESS_ID=str(i)) for i in range(2)]
    assert "'devices': 8" in _finish(eight)
    printed = [_finish(p) for p in two]
    assert all("'processes': 2" in p and "'complete': True" in p for p in printed), printed
    assert sorted(int(p.split("'computed': ")[1][0]) for p in printed) == [1, 2]  # shards 0, 2 and shard 1
    _assert_same(engine.read(tmp_path / "eight"), reference)
    _assert_same(engine.read(tmp_path / "two"), reference)


def test_a_run_killed_halfway_resumes_to_every_result_once(folder, reference, tmp_path):
    out = tmp_path / "killed"
    proc = _script(folder, out, "--slow", "0.15")  # 1.2 s per shard of 8
    deadline = time.monotonic() + 240
    while len(list((out / "shards").glob("*.npz"))) < 1:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no shard written in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    written = sorted(p.name for p in (out / "shards").glob("*.npz"))
    assert 1 <= len(written) < 3 and not (out / "index.json").exists()
    with pytest.raises(ValueError, match="has not finished"):
        engine.read(out)
    done = run_case.run(folder, out)
    assert (done.resumed, done.computed, done.complete) == (len(written), 3 - len(written), True)
    _assert_same(engine.read(out), reference)
    index = json.loads((out / "index.json").read_text())
    assert [(s["start"], s["stop"]) for s in index["shards"]] == [(0, 8), (8, 16), (16, 20)]
    assert index["items"] == sorted(f"class{i % 3}/{i:02d}.png" for i in range(N)) and index["n"] == N
    assert index["outputs"]["map"] == {"shape": [16, 16], "dtype": "float32"}


def test_a_different_run_in_the_same_folder_is_refused(folder, reference, tmp_path):
    from jaxviz.core import sharding
    from jaxviz.io import datasets
    from jaxviz.run import tasks

    model, params, _ = run_case.model_and_task()
    source = datasets.Folder(folder, run_case.SIZE)
    engine.dataset(tasks.attribution(model, "saliency"), params, source, tmp_path, batch_size=4, shard=64,
                   progress=False)
    with pytest.raises(ValueError, match="different run .*differs in: config"):
        engine.dataset(tasks.attribution(model, "gradxinput"), params, source, tmp_path, batch_size=4, shard=64)
    with pytest.raises(ValueError, match=r"devices must be in \[1, 1\]"):
        sharding.batch_mesh(2)
    with pytest.raises(ValueError, match="unknown method 'magic'; choose from saliency"):
        tasks.attribution(model, "magic")
    with pytest.raises(ValueError, match="has no label"):
        engine.dataset(tasks.attribution(model, "saliency", target="label"), params,
                       datasets.Arrays(np.zeros((2, 16, 16, 3), np.float32)), tmp_path / "unlabelled", batch_size=2)


def test_the_command_line_runs_resumes_and_refuses_bad_input(folder, tmp_path, capsys):
    from jaxviz import cli

    argv = ["run", "saliency", "--data", str(folder), "--out", str(tmp_path / "cli"), "--size", "32",
            "--batch-size", "8", "--shard", "8", "--metrics", "deletion", "--json"]
    assert cli.main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["computed"] == 3 and first["complete"] and 0 <= first["mean"]["deletion"] <= 1
    assert cli.main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["computed"], again["resumed"], again["mean"]) == (0, 3, first["mean"])
    assert engine.read(tmp_path / "cli")["map"].shape == (N, 32, 32)
    bad = {("--metrics", "bogus"): "--metrics: unknown 'bogus'",
           ("--devices", "2", "--batch-size", "3"): "--batch-size 3 must be a multiple of --devices 2",
           ("--coordinator", "nohost"): "missing num_processes, process_id",
           ("--coordinator", "h:0", "--num-processes", "2", "--process-id", "2"): "the coordinator must be HOST:PORT",
           ("--target", "cat"): "--target must be predicted, label or a class index",
           ("--layer", "nope"): "unknown layer 'nope'; valid names: stem,"}
    for extra, message in bad.items():
        assert cli.main(["run", "saliency", "--data", str(folder), "--out", str(tmp_path / "x"), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (extra, err)
    assert cli.main(["run", "magic", "--data", str(folder), "--out", str(tmp_path / "x")]) == 2
    assert cli.main(["run", "saliency", "--data", str(tmp_path / "none") + "/", "--out", str(tmp_path / "x")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before anything was written
    render = ["run", "render", "--out", str(tmp_path / "r"), "--size", "32", "--layer", "blocks.8", "--steps", "2",
              "--channels", "3,4", "--batch-size", "2", "--json"]
    assert cli.main(render) == 0
    assert json.loads(capsys.readouterr().out)["items"] == 2
    rendered = engine.read(tmp_path / "r")
    assert rendered["channel"].tolist() == [3, 4] and rendered["image"].shape == (2, 32, 32, 3)
    bad = {("render", "--out", "y", "--channels", "0:4"): "render needs --layer",
           ("render", "--out", "y", "--layer", "blocks.8", "--channels", "5:2"): "--channels must name channels",
           ("render", "--out", "y", "--layer", "blocks.8", "--channels", "a,b"): "--channels must be A:B",
           ("render", "--out", "y", "--layer", "blocks.8", "--data", str(folder)): "render makes its own items",
           ("render", "--out", "y", "--layer", "blocks.8", "--channels", "0:5000", "--size", "32"):
               "--channels must name channels in [0, 112)",
           ("saliency", "--out", "y"): "--data is required for saliency"}
    for argv, message in bad.items():
        assert cli.main(["run", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_a_render_sweep_gives_each_channel_and_seed_the_image_render_gives(tmp_path):
    """tasks.render over 3 channels x 2 seeds, in batches and shards of 4 (a padded last batch): item j is
    render()'s image for its channel from key fold_in(key(0), j), in sweep order."""
    import jax

    from jaxviz.core import objectives as objs
    from jaxviz.run import tasks
    from jaxviz.synthesis import render

    model, params, _ = run_case.model_and_task()
    task, items = tasks.render(model, "relu1", [5, 0, 7], seeds=2, steps=6, size=16)
    done = engine.dataset(task, params, items, tmp_path / "sweep", batch_size=4, shard=4, progress=False)
    assert (done.n, done.shards, done.complete) == (6, 2, True)
    out = engine.read(tmp_path / "sweep")
    assert out["channel"].tolist() == [5, 5, 0, 0, 7, 7] and out["image"].shape == (6, 16, 16, 3)
    for j in (0, 3, 5):  # a first seed, a second seed in the next shard, the last (padded) batch's item
        objective = objs.channel("relu1", int(out["channel"][j]))
        expected = render.render(jax.random.fold_in(jax.random.key(0), j), model, params, objective, size=16,
                                 steps=6, progress=False).images[0]
        np.testing.assert_allclose(out["image"][j], expected, rtol=0, atol=MAP_RTOL)
        assert out["score"][j] == pytest.approx(float(objs.evaluate(objective, model, params, expected[None])[0]),
                                                rel=1e-4, abs=1e-5)
    assert not np.allclose(out["image"][0], out["image"][1])  # two seeds, two images
    with pytest.raises(ValueError, match="seeds >= 1"):
        tasks.render(model, "relu1", [0], seeds=0)


def test_the_command_line_knows_the_tasks_methods_and_metrics_before_jax_loads():
    from jaxviz.cli import metrics as cli_metrics
    from jaxviz.run import tasks

    assert cli_metrics.METHODS == tuple(tasks.MAP_METHODS) and cli_metrics.METRICS == tuple(tasks.METRICS)
