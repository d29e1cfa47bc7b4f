"""Reading weight files and checkpoints safely, with errors that name the file.

A weight file can be wrong in many ways that the libraries report badly: empty, cut short,
a plain-text or HTML page that a proxy served under the weights' name, a whole model
pickled with ``torch.save(model)``. :func:`check_safetensors` reads a ``.safetensors``
file's header and size before anything trusts the file (the download helper calls it before
a file enters the cache), and :func:`torch_load` reads PyTorch files with
``weights_only=True`` only, turning each failure into one :class:`WeightFileError` that says
what the file is and what to do.

A reader who already has GPT-2 from ``transformers`` keeps it in the Hugging Face cache;
:func:`hf_cache_copy` finds a verified copy there (the blob's name is its sha256).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
from pathlib import Path
from typing import Any

import torch

from gptlib.support.files import sha256_of

MAX_HEADER = 100 * 2**20  # a safetensors header is JSON of a few hundred KB at most
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}


class WeightFileError(ValueError):
    """A weight file or checkpoint that cannot be used (the message names it and says why)."""


class WeightLoadError(WeightFileError):
    """A weight file does not fit the model (the message names the tensor and the shapes)."""


def describe_content(head: bytes) -> str:
    """What a file's first bytes look like, in words, for an error message."""
    if not head:
        return "it is empty"
    text = head.lstrip()[:200].lower()
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        return ("it is an HTML or XML page, not weights (a proxy, a login or an error page was saved under "
                "the weights' name)")
    if head[:8] == b"\x89PNG\r\n\x1a\n" or head[:3] == b"\xff\xd8\xff" or head[:4] == b"GIF8":
        return "it is an image (PNG, JPEG or GIF)"
    if head[:4] == b"%PDF":
        return "it is a PDF document"
    if text.startswith((b"{", b"[")):
        return "it is JSON text (a metrics.json?)"
    if head[:2] == b"PK":
        return "it is a zip file (a PyTorch .pth/.pt file?)"
    if head[:1] == b"\x80":
        return "it is a Python pickle (a PyTorch file in the old format?)"
    try:
        head.decode("utf-8")
        return "it is plain text, not weights"
    except UnicodeDecodeError:
        return "its contents are not in a format gptlib knows"


def check_safetensors(path: str | Path, advice: str = "Delete it and download the weights again.") -> dict[str, Any]:
    """Check a ``.safetensors`` file's header and size against each other; return the header.

    The format: 8 bytes (little-endian header length N), N bytes of JSON naming each tensor's
    dtype, shape and byte range, then the tensors' bytes. A file cut short, or anything else
    saved under the name, fails here with :class:`WeightFileError`."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 2 <= n <= min(MAX_HEADER, size - 8):
            f.seek(0)
            raise WeightFileError(f"{path} is not a safetensors file: {describe_content(f.read(512))}. {advice}")
        raw = f.read(n)
    try:
        header = json.loads(raw)
        spans = [(t["data_offsets"], t["dtype"], t["shape"]) for k, t in header.items() if k != "__metadata__"]
    except (ValueError, TypeError, KeyError):
        raise WeightFileError(f"{path} is not a safetensors file: its header is not valid JSON describing "
                              f"tensors. {advice}") from None
    end = max((stop for (_, stop), _, _ in spans), default=0)
    if size != 8 + n + end:
        raise WeightFileError(f"{path} holds {size:,} bytes, but its header describes {8 + n + end:,}: the file "
                              f"was cut short (an interrupted download?). {advice}")
    for (start, stop), dtype, shape in spans:
        count = 1
        for dim in shape:
            count *= dim
        if stop - start != count * _DTYPE_BYTES.get(dtype, 0) and dtype in _DTYPE_BYTES:
            raise WeightFileError(f"{path}: a tensor's byte range does not match its shape {shape}; the file "
                                  f"is damaged. {advice}")
    return header


def torch_load(path: str | Path, what: str = "file", wanted: str = "a file saved with torch.save") -> Any:
    """``torch.load(path, weights_only=True)`` with one clear error for each way it fails;
    ``wanted`` says what to give instead, where the file is not PyTorch's at all."""
    path = Path(path)
    if path.is_dir():
        raise WeightFileError(f"{path} is a folder, not a {what}; give the file inside it.")
    if not path.exists():
        raise FileNotFoundError(f"The {what} {path} does not exist.")
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:2] != b"PK" and head[:1] != b"\x80":  # neither of PyTorch's two formats
        raise WeightFileError(f"{path} is not a PyTorch {what}: {describe_content(head)}. Give {wanted}.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightFileError(
            f"{path} holds pickled Python objects (for example a whole model saved with torch.save(model)), "
            "which gptlib does not load: unpickling can run any code. Save model.state_dict() instead "
            "(gptlib's save_classifier does).") from None
    except Exception as err:  # noqa: BLE001 - torch reports a bad file in many ways (even KeyError)
        with open(path, "rb") as f:
            kind = describe_content(f.read(512))
        cut = "; it may be cut short" if "zip" in kind else ""
        raise WeightFileError(f"{path} is not a readable PyTorch {what}: {kind}{cut} "
                              f"({type(err).__name__}). Write it again.") from None


def hf_cache_root() -> Path:
    """The Hugging Face hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".cache" / "huggingface") / "hub"


def hf_cache_copy(repo: str, filename: str = "model.safetensors") -> Path | None:
    """A verified copy of ``repo``'s file in the Hugging Face cache, or None.

    The hub stores each file as ``blobs/<sha256>`` with ``snapshots/<revision>/<filename>``
    linking to it; a copy counts when its bytes hash to that name and its header checks."""
    folder = hf_cache_root() / f"models--{repo.replace('/', '--')}" / "snapshots"
    if not folder.is_dir():
        return None
    for candidate in sorted(folder.glob(f"*/{filename}")):
        blob = candidate.resolve()
        if not re.fullmatch(r"[0-9a-f]{64}", blob.name):
            continue
        try:
            check_safetensors(blob)
            if sha256_of(blob) == blob.name:
                return blob
        except (OSError, WeightFileError):
            continue
    return None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read tensors from ``.safetensors`` or a torch ``.pth``/``.pt``/``.bin`` file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Weight file {path} does not exist.")
    if path.is_dir():
        raise WeightLoadError(f"{path} is a folder; give the weight file inside it.")
    with open(path, "rb") as f:
        head = f.read(9)  # safetensors: an 8-byte header length, then the header's JSON "{"
    # by content, not name: the Hugging Face cache keeps model.safetensors as a blob without a suffix
    if path.suffix == ".safetensors" or (len(head) == 9 and head[8:9] == b"{" and head[:2] != b"PK"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        check_safetensors(path)
        try:
            return load_file(str(path))
        except SafetensorError as err:
            raise WeightLoadError(f"{path} could not be read as safetensors ({err}).") from None
    obj = torch_load(path, "weight file", "OpenAI's model.safetensors, or a state dict saved with "
                     "torch.save(model.state_dict())")
    if isinstance(obj, dict) and "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightLoadError(f"{path} does not hold a state dict of tensors (found {type(obj).__name__}).")
    return obj
