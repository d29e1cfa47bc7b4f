"""Pick the device to run on: CUDA, then Apple MPS (torch >= 2.9 only), then CPU."""

from __future__ import annotations

import os

import torch

# Before torch 2.9 the book saw diverging losses on MPS, so it only uses MPS from 2.9 on.
MPS_MIN_TORCH = (2, 9)


def _torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def mps_usable() -> bool:
    """True when MPS is available and torch is new enough to trust it."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available() and _torch_version() >= MPS_MIN_TORCH)


def get_device(preference: str | torch.device | None = None) -> torch.device:
    """The device to use: ``preference`` (or ``$GPTLIB_DEVICE``) if given, else the best available.

    ``preference`` may be "auto", "cpu", "cuda", "cuda:1" or "mps". Asking for a device that
    is not there raises a ValueError that says what is available.
    """
    choice = str(preference or os.environ.get("GPTLIB_DEVICE") or "auto").lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_usable():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(choice)
    except (RuntimeError, ValueError):
        raise ValueError(f"Unknown device {choice!r}; use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {choice!r} was requested but CUDA is not available here; use 'auto' or 'cpu'.")
    if device.type == "mps" and not mps_usable():
        raise ValueError(
            f"Device {choice!r} was requested but MPS is unavailable or torch {torch.__version__} "
            f"is older than {'.'.join(map(str, MPS_MIN_TORCH))}; use 'auto' or 'cpu'."
        )
    return device
