"""A fingerprint of a model's weights: sha256 over names, dtypes, shapes and bytes. The
activation store keys its sets with it, and a LoRA adapter file records its base with it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import nn


def tensor_bytes(t: torch.Tensor) -> memoryview:
    return memoryview(t.detach().contiguous().cpu().view(torch.uint8).numpy())


def weights_fingerprint(modules: Sequence[nn.Module]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of the modules' parameters and buffers."""
    digest = hashlib.sha256()
    for i, module in enumerate(modules):
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            digest.update(f"{i}.{name}:{t.dtype}:{tuple(t.shape)};".encode())
            digest.update(tensor_bytes(t.reshape(-1)))
    return digest.hexdigest()
