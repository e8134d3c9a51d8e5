"""The data-set run of tests/test_run.py: a tiny conv net's saliency and deletion over a folder of images.

Imported by the test (one device, in its own process) and run as a script in subprocesses, where the device
count (``XLA_FLAGS``) and the process count (``JAXVIZ_*`` variables) are set before JAX starts::

    python tests/run_case.py FOLDER OUT [--slow SECONDS]
"""

from __future__ import annotations

import sys
import time

SIZE, BATCH, SHARD = 16, 8, 8


def model_and_task():
    import jax
    import jax.numpy as jnp

    from jaxviz import models
    from jaxviz.run import tasks

    def forward(p, x):
        dn = ("NHWC", "HWIO", "NHWC")
        h = jax.nn.relu(jax.lax.conv_general_dilated(x, p["w1"], (1, 1), "SAME", dimension_numbers=dn) + p["b1"])
        h = jax.nn.relu(jax.lax.conv_general_dilated(h, p["w2"], (2, 2), "SAME", dimension_numbers=dn))
        return jnp.mean(h, axis=(1, 2)) @ p["fc"]

    k = jax.random.split(jax.random.key(3), 3)
    params = {"w1": jax.random.normal(k[0], (3, 3, 3, 8)) * 0.5, "b1": jnp.full((8,), 0.1),
              "w2": jax.random.normal(k[1], (3, 3, 8, 8)) * 0.3, "fc": jax.random.normal(k[2], (8, 4))}
    model, params = models.wrap(forward, params, input_size=SIZE)
    return model, params, tasks.attribution(model, "saliency", metrics=("deletion",), pixels_per_step=16)


class Slow:
    """A data source that takes ``seconds`` per item: a run that can be killed halfway."""

    def __init__(self, source, seconds: float):
        self.source, self.seconds = source, seconds

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        time.sleep(self.seconds)
        return self.source[i]

    def identity(self):
        return self.source.identity()


def run(folder, out, slow: float = 0.0, progress: bool = False):
    from jaxviz.io import datasets
    from jaxviz.run import distributed, engine

    distributed.initialize()  # from JAXVIZ_COORDINATOR / _NUM_PROCESSES / _PROCESS_ID, if set
    _, params, task = model_and_task()
    source = datasets.Folder(folder, SIZE)
    return engine.dataset(task, params, Slow(source, slow) if slow else source, out, batch_size=BATCH,
                          shard=SHARD, progress=progress)


if __name__ == "__main__":
    import jax

    args = sys.argv[1:]
    slow = float(args[args.index("--slow") + 1]) if "--slow" in args else 0.0
    done = run(args[0], args[1], slow)
    print({"devices": jax.local_device_count(), "processes": jax.process_count(), "computed": done.computed,
           "complete": done.complete}, flush=True)
