"""Building a model on the meta device (shapes, no memory) without running its random init.

A model built under ``torch.device("meta")`` only to receive a file's tensors still runs each
layer's initialiser. Filling a meta tensor does nothing, yet ``normal_`` (used by every
``nn.Embedding``) reaches it through torch's Python reference ops, and their first use imports
``torch._dynamo``: about 1.6 s and 70 MiB of every process that builds such a skeleton (a lab
kernel mapping its base weights, a checkpoint being loaded). Under :func:`on_meta` the random
fills of meta tensors are skipped; everything else runs as under ``torch.device("meta")``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode

# torch.nn.init's fills and the Tensor methods behind them: the only work initialisers do
_FILLS = frozenset({"normal_", "uniform_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_",
                    "xavier_uniform_", "xavier_normal_", "orthogonal_", "sparse_", "random_"})


class _SkipRandomFills(TorchFunctionMode):
    """Returns a meta tensor unchanged from a random fill (there is nothing to fill)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        first = args[0] if args else kwargs.get("tensor")  # torch.nn.init passes it by name
        if isinstance(first, torch.Tensor) and first.is_meta and getattr(func, "__name__", "") in _FILLS:
            return first
        return func(*args, **kwargs)


@contextmanager
def on_meta() -> Iterator[None]:
    """``with on_meta(): model = GPTModel(cfg)``: the model on the meta device, its initialisers
    skipped. Modes are per thread, so other threads' work is untouched."""
    with torch.device("meta"), _SkipRandomFills():
        yield
