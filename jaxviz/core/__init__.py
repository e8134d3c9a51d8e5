"""What every family shares.

* :mod:`.objectives`: what is scored (attribution targets and synthesis objectives alike);
* :mod:`.loop`: the one optimization loop (compiled chunks, progress, history, checkpoints);
* :mod:`.batching`: bounded-memory evaluation of many perturbed copies; :mod:`.forward`: compiled forward
  passes for the drivers' own setup;
* :mod:`.sharding`: the batch axis over a device mesh (one path for every family);
* :mod:`.progress`: the progress bar.
"""

from jaxviz._lazy import lazy

__getattr__, __dir__ = lazy(__name__, (
    "objectives", "loop", "batching", "progress", "forward", "sharding",
))
