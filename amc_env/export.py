"""ONNX export of a (pruned) model, checked in onnxruntime before it is written.

A pruned network is deployed outside PyTorch; the file is only worth having if a runtime computes
what the PyTorch model does. :func:`onnx_bytes` traces the model with PyTorch's TorchScript-based
exporter (opset :data:`OPSET`, the batch dimension dynamic); :func:`check_onnx` runs the result in
onnxruntime's CPU provider on a fixed random batch and compares the outputs with the PyTorch
model's, refusing a difference above :data:`TOLERANCE` (relative to the largest output, at least
1), so ``amc-apply --onnx`` writes nothing that failed. :func:`onnx_session` is what the
``onnxruntime`` latency backend times.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from amc_agent.env.errors import UserError, first_line
from amc_agent.env.models import clone_model

OPSET = 17
"""ONNX operator set (onnxruntime 1.32 runs 7-23)."""
TOLERANCE = 1e-4
"""Largest accepted |onnxruntime - PyTorch| output difference, relative to max(1, max |output|)."""


def require_onnx(module: str = "onnxruntime") -> None:
    """A :class:`UserError` naming the ``onnx`` extra when ``module`` (``onnx`` for export,
    ``onnxruntime`` for checking and timing) is not installed."""
    if importlib.util.find_spec(module) is None:
        raise UserError(f"{module} is not installed; ONNX export and the onnxruntime backend "
                        "need the onnx extra: pip install 'amc-agent[onnx]'")


def onnx_bytes(model: nn.Module, input_shape: Sequence[int]) -> bytes:
    """The ONNX serialisation of ``model`` in eval mode on CPU for inputs of ``input_shape``
    (channels, height, width in pixels); the batch dimension is dynamic. ``model`` is untouched.
    """
    require_onnx("onnx")
    m = clone_model(model).cpu().eval()
    buf = io.BytesIO()
    x = torch.zeros(1, *input_shape)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
            torch.onnx.export(m, (x,), buf, dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    except Exception as exc:  # any exporter failure is the model's, named in one line
        raise UserError(f"ONNX export failed ({first_line(exc, 200)})") from None
    return buf.getvalue()


def onnx_session(data: bytes, threads: int) -> Any:
    """An onnxruntime CPU session for serialised model ``data`` with ``threads`` intra-op
    threads, sequential execution (as a CPU deployment would pin it)."""
    require_onnx("onnxruntime")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only: warnings would break the one-line contract
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def check_onnx(data: bytes, model: nn.Module, input_shape: Sequence[int],
               batch: int = 4, threads: int = 1) -> float:
    """Largest |onnxruntime - PyTorch| output difference on a seeded random batch, relative to
    max(1, max |PyTorch output|); :class:`UserError` above :data:`TOLERANCE`."""
    x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(0))
    m = clone_model(model).cpu().eval()
    with torch.no_grad():
        ref = m(x).numpy()
    sess = onnx_session(data, threads)
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    if got.shape != ref.shape:
        raise UserError(f"the ONNX model's output has shape {got.shape}, PyTorch's {ref.shape}")
    diff = float(np.abs(got - ref).max()) / max(1.0, float(np.abs(ref).max()))
    if not diff <= TOLERANCE:
        raise UserError(f"the ONNX model's outputs differ from PyTorch's by {diff:.2e} "
                        f"(relative; tolerance {TOLERANCE:g}); not written")
    return diff
