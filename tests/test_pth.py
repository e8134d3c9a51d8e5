"""The torch-free .pth reader: formats, dtypes, and refusal of code."""

from __future__ import annotations

import os
import pickle
import zipfile

import ml_dtypes
import numpy as np
import pytest
import torch

from jaxviz.models import UnsafeCheckpointError, read_pth


def _tensors():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return {
        "f32": torch.randn(3, 5),
        "f16": torch.randn(7).half(),
        "i64": torch.arange(5),
        "u8": torch.arange(9, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "transposed": base.t(),  # non-contiguous strides
        "slice": base[1:3, 2:],  # offset into a shared storage
        "param": torch.nn.Parameter(torch.ones(2, 2)),
    }


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_reads_what_torch_save_writes(tmp_path, zip_format):
    tensors = _tensors()
    path = tmp_path / "t.pth"
    torch.save(tensors, path, _use_new_zipfile_serialization=zip_format)
    got = read_pth(path)
    assert set(got) == set(tensors)
    for k, t in tensors.items():
        np.testing.assert_array_equal(got[k], t.detach().numpy(), err_msg=k)
        assert got[k].dtype == t.detach().numpy().dtype


def test_reads_bfloat16(tmp_path):
    t = torch.randn(4, 3).bfloat16()
    torch.save({"w": t}, tmp_path / "b.pth")
    got = read_pth(tmp_path / "b.pth")["w"]
    assert got.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(got.astype(np.float32), t.float().numpy())


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refuses_code_in_zip_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"w": torch.ones(2), "x": _Evil(marker)}, tmp_path / "evil.pth")
    with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
        read_pth(tmp_path / "evil.pth")
    assert not marker.exists()


def test_refuses_code_in_legacy_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_legacy.pth"
    with open(path, "wb") as f:  # the legacy layout's first pickle is the magic number: replace it with code
        pickle.dump(_Evil(marker), f, protocol=2)
    with pytest.raises(UnsafeCheckpointError):
        read_pth(path)
    assert not marker.exists()


def test_refuses_builtins_eval_hidden_in_data_pkl(tmp_path):
    """A hand-made zip whose data.pkl calls builtins.eval: refused before the call."""
    marker = tmp_path / "pwned"
    payload = b"cbuiltins\neval\n(V__import__('os').system('touch " + str(marker).encode() + b"')\ntR."
    with zipfile.ZipFile(tmp_path / "evil.pth", "w") as zf:
        zf.writestr("archive/data.pkl", payload)
    with pytest.raises(UnsafeCheckpointError, match="builtins.eval"):
        read_pth(tmp_path / "evil.pth")
    assert not marker.exists()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_truncated_checkpoint_is_a_clear_error(tmp_path, zip_format):
    path = tmp_path / "t.pth"
    torch.save({"w": torch.randn(100, 100)}, path, _use_new_zipfile_serialization=zip_format)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        read_pth(path)


def test_garbage_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(ValueError):
        read_pth(path)
