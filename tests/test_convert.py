"""Weight formats and the state_dict converter's errors."""

from __future__ import annotations

import chex
import jax
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from jaxviz import models


def test_safetensors_reader_matches_the_writer(tmp_path):
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(6, dtype=torch.int64).reshape(2, 3),
               "c": torch.randn(5).half(), "d": torch.randn(2, 2).bfloat16()}
    save_file(tensors, str(tmp_path / "t.safetensors"))
    got = models.read_safetensors(tmp_path / "t.safetensors")
    for k, t in tensors.items():
        np.testing.assert_array_equal(got[k].astype(np.float64), t.double().numpy(), err_msg=k)


def test_npz_round_trip_and_shape_check(tmp_path, lite0):
    model, variables = lite0
    models.save_npz(tmp_path / "w.npz", variables)
    _, loaded = models.load("efficientnet_lite0", weights=tmp_path / "w.npz")
    chex.assert_trees_all_equal(loaded, variables)
    with pytest.raises(ValueError, match="do not fit"):
        models.load("resnet50", weights=tmp_path / "w.npz")


def test_mismatched_state_dict_names_the_problem():
    state = {"conv1.weight": np.zeros((64, 3, 7, 7), np.float32), "extra.weight": np.zeros(3, np.float32)}
    with pytest.raises(ValueError, match=r"unexpected keys \['extra.weight'\].*missing"):
        models.convert_state_dict("resnet50", state)
    with pytest.raises(ValueError, match="conv1.weight: shape"):
        models.convert_state_dict("resnet50", {"conv1.weight": np.zeros((64, 3, 5, 5), np.float32)})


def test_a_wrapped_checkpoint_is_unwrapped(tmp_path):
    net = torch.nn.Linear(2, 2)
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    assert set(models.read_state_dict(tmp_path / "ckpt.pth")) == {"weight", "bias"}


def test_unknown_weights_format_is_refused(tmp_path):
    (tmp_path / "w.h6").write_bytes(b"")
    with pytest.raises(ValueError, match="unknown weights format"):
        models.load("resnet50", weights=tmp_path / "w.h6")


def test_random_init_needs_no_files():
    model, variables = models.load("efficientnet_lite0", weights=None, key=jax.random.key(7))
    assert set(variables) == {"params", "batch_stats"}
