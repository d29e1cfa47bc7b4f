"""LoRA, as in the book's appendix E: a small trainable update beside each frozen ``Linear``.

For a frozen layer ``y = x W^T + b``, LoRA adds a product of two thin matrices::

    y = x W^T + b + s * (x @ A @ B)        A: (in, r), Kaiming-uniform    B: (r, out), zeros

Only ``A`` and ``B`` train: for gpt2-small with r = 16, 2,666,528 numbers instead of 124M.
Because ``B`` starts at zero, the update starts at zero, and the model before training is
exactly the frozen one (the same accuracy).

The scale ``s`` has two conventions in the book's material (``LORA_SCALINGS``):

* ``"alpha"``: ``s = alpha``, as the printed edition, the bonus script and the
  ``llms-from-scratch`` 1.0.19 package do; gptlib's default;
* ``"alpha/rank"``: ``s = alpha / r``, as appendix E's notebook does since a later fix.

``merged=True`` gives the bonus script's ``lora_alternative``: the update is folded into the
weight before each matmul, ``x (W + s (A B)^T)^T + b``: the same numbers, another order of
work. :func:`merge_lora` folds the adapters in for good, for inference. :func:`save_lora`
writes the adapters alone (a small file, with a fingerprint of the model they belong to)
and :func:`load_lora` puts them back onto that model.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

LORA_SCALINGS = ("alpha", "alpha/rank")
LORA_HEADS = ("adapter", "full")
FORMAT = "gptlib-lora-1"


class LoRAError(ValueError):
    """An adapter file that does not fit the model it is loaded onto, or bad LoRA settings."""


def lora_scale(rank: int, alpha: float, scaling: str = "alpha") -> float:
    """The factor ``s`` in front of ``x @ A @ B``: alpha, or alpha / rank."""
    if scaling not in LORA_SCALINGS:
        raise LoRAError(f"lora_scaling must be one of {LORA_SCALINGS}; got {scaling!r}.")
    if rank < 1:
        raise LoRAError(f"The LoRA rank must be at least 1; got {rank}.")
    return float(alpha) if scaling == "alpha" else float(alpha) / rank


class LoRALayer(nn.Module):
    """``scale * (x @ A @ B)``: the low-rank update of one layer.

    Shown in notebooks/07_lora.
    """

    def __init__(self, in_dim: int, out_dim: int, rank: int, scale: float):
        super().__init__()
        self.A = nn.Parameter(torch.empty(in_dim, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as nn.Linear initialises its weight
        self.B = nn.Parameter(torch.zeros(rank, out_dim))  # zero: the update starts at zero
        self.rank = rank
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * (x @ self.A @ self.B)

    def delta_weight(self) -> torch.Tensor:
        """The update as a change of the layer's weight, shape (out, in)."""
        return self.scale * (self.A @ self.B).T


class LinearWithLoRA(nn.Module):
    """A frozen ``Linear`` plus its LoRA update: ``linear(x) + lora(x)``.

    Shown in notebooks/07_lora.
    """

    def __init__(self, linear: nn.Linear, rank: int, scale: float):
        super().__init__()
        self.linear = linear
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.lora(x)

    def merged_weight(self) -> torch.Tensor:
        return self.linear.weight + self.lora.delta_weight()


class LinearWithMergedLoRA(LinearWithLoRA):
    """The same layer, computed as one matmul with the update folded into the weight."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.merged_weight(), self.linear.bias)


def _replace_linears(module: nn.Module, rank: int, scale: float, layer: type[LinearWithLoRA]) -> None:
    # depth first, in the order the modules were created (as the book's helper walks them),
    # so that the same seed gives every A the same initial values as the book's code
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, layer(child, rank, scale))
        else:
            _replace_linears(child, rank, scale, layer)


def add_lora(model: nn.Module, rank: int = 16, alpha: float = 16.0, scaling: str = "alpha",
             head: str = "adapter", merged: bool = False, inplace: bool = False) -> nn.Module:
    """``model`` with every weight frozen and an adapter on every ``nn.Linear`` (the classifier's
    new head included), as appendix E does. ``head="full"`` also trains the head's own weight
    and bias, as the bonus script does. Works on a copy unless ``inplace=True``.

    Shown in notebooks/07_lora.
    """
    if head not in LORA_HEADS:
        raise LoRAError(f"lora_head must be one of {LORA_HEADS}; got {head!r}.")
    scale = lora_scale(rank, alpha, scaling)
    if lora_layers(model):
        raise LoRAError("This model already has LoRA adapters; add them to the plain model.")
    out = model if inplace else copy.deepcopy(model)
    for p in out.parameters():
        p.requires_grad = False
    _replace_linears(out, rank, scale, LinearWithMergedLoRA if merged else LinearWithLoRA)
    if head == "full":
        for p in out.out_head.linear.parameters():
            p.requires_grad = True
    out.lora_settings = {"rank": rank, "alpha": float(alpha), "scaling": scaling, "scale": scale,
                         "head": head, "merged": merged}
    return out


def lora_layers(model: nn.Module) -> dict[str, LinearWithLoRA]:
    """The model's LoRA-wrapped layers by name (empty for a plain model)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LinearWithLoRA)}


def describe_lora(model: nn.Module) -> str:
    """One line: rank, alpha, the scaling convention and the effective scale."""
    s = getattr(model, "lora_settings", None)
    if not s:
        return "no LoRA adapters"
    rule = "alpha (the printed book's)" if s["scaling"] == "alpha" else "alpha/rank (appendix E's notebook)"
    return (f"LoRA rank {s['rank']}, alpha {s['alpha']:g}, scaling {rule}: effective scale {s['scale']:g}; "
            f"{len(lora_layers(model))} adapted Linear layers; head {'trained in full too' if s['head'] == 'full' else 'adapter only'}"
            f"{'; merged form' if s['merged'] else ''}")


def merge_lora(model: nn.Module, inplace: bool = False) -> nn.Module:
    """The model with each adapter folded into its layer's weight (plain ``nn.Linear`` layers
    again): the same outputs, no extra work at inference, loadable without gptlib.lora."""
    out = model if inplace else copy.deepcopy(model)
    for name, layer in list(lora_layers(out).items()):
        parent_name, _, attr = name.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        old = layer.linear
        plain = nn.Linear(old.in_features, old.out_features, bias=old.bias is not None,
                          device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            plain.weight.copy_(layer.merged_weight())
            if old.bias is not None:
                plain.bias.copy_(old.bias)
        plain.requires_grad_(False)
        setattr(parent, attr, plain)
    if hasattr(out, "lora_settings"):
        del out.lora_settings
    return out


def base_fingerprint(model: nn.Module) -> str:
    """sha256 over the frozen weights of a LoRA model (what its adapters were trained on),
    leaving out the adapters and whatever trains beside them."""
    from gptlib.support.fingerprint import weights_fingerprint

    holder = nn.Module()
    frozen = [(n, p) for n, p in model.named_parameters() if not p.requires_grad and ".lora." not in n]
    for i, (_, p) in enumerate(frozen):
        holder.register_buffer(f"t{i}", p.detach())
    return weights_fingerprint([holder])


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """What LoRA trained: the adapters, and the head's weights when they train too."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_lora(model: nn.Module, path: str | Path) -> Path:
    """Write the adapters alone (atomically), with the settings and the base's fingerprint."""
    from gptlib.support.files import atomic_path

    settings = getattr(model, "lora_settings", None)
    if not settings:
        raise LoRAError("This model has no LoRA adapters to save; make it with add_lora first.")
    payload = {"format": FORMAT, "settings": dict(settings), "base_fingerprint": base_fingerprint(model),
               "state_dict": adapter_state_dict(model)}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_lora(model: nn.Module, path: str | Path) -> nn.Module:
    """A copy of ``model`` (the plain classifier the adapters were trained on) with the adapters
    from ``path``. Refuses a file made for other weights, naming both fingerprints."""
    path = Path(path)
    if not path.is_file():
        raise LoRAError(f"Adapter file {path} not found; write one with save_lora(model, path).")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise LoRAError(f"{path} is not a readable adapter file ({type(err).__name__}).") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise LoRAError(f"{path} is not a gptlib LoRA adapter file (format {FORMAT!r}).")
    if lora_layers(model):
        raise LoRAError("Load adapters onto the plain classifier, not onto one that has adapters already.")
    s: dict[str, Any] = payload["settings"]
    out = add_lora(model, s["rank"], s["alpha"], s["scaling"], s["head"], s["merged"])
    expected, found = payload["base_fingerprint"], base_fingerprint(out)
    if found != expected:
        raise LoRAError(f"{path} was trained on other weights (base fingerprint {expected[:12]}..., this "
                        f"model's {found[:12]}...). Load it onto the classifier built with the same model "
                        "size, weights and seed.")
    state, own = payload["state_dict"], dict(out.named_parameters())
    missing = [n for n in own if own[n].requires_grad and n not in state]
    wrong = [n for n in state if n not in own or own[n].shape != state[n].shape]
    if missing or wrong:
        raise LoRAError(f"{path} does not fit this model: missing {missing[:3]}, mismatched {wrong[:3]}.")
    with torch.no_grad():
        for name, tensor in state.items():
            own[name].copy_(tensor)
    return out
