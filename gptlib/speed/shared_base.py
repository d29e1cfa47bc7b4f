"""GPT-2 base models, loaded (or randomly initialised) once per process and shared by every run.

Reading OpenAI's weights, or creating 124M random ones, takes seconds; a lab session makes
many runs from the same base. :func:`base_model` keeps the one most recently used base in
memory (beside the download cache on disk) and hands out copies.

:func:`classifier_from_base` makes a run's classifier without copying the frozen part: its
frozen parameters are new ``Parameter`` objects over the base's tensors (so their
``requires_grad`` is the run's own), and every parameter that trains is a private copy, so
training never writes into the base. Whoever unfreezes more afterwards calls
:func:`own_trainable` (``run_finetune`` does, after building the model and after its
``prepare_model`` hook); ``load_state_dict`` copies first by itself. If a shared tensor is
changed in place anyway (its version counter moves), the base is dropped and built again on
the next call. A write through ``.data`` bypasses that counter: a run whose code may do
anything (``run_finetune(prepare_model=...)``) takes a private copy of everything
(:func:`own_parameters`) before that code runs.
"""

from __future__ import annotations

import copy
import threading

import torch
from torch import nn

from gptlib.classifier import add_classification_head, set_dropout
from gptlib.model import GPTModel, get_config
from gptlib.models import canonical_name, is_open_model
from gptlib.models.hf_weights import open_base, weights_file
from gptlib.speed import mapped

_lock = threading.Lock()
_cached: dict[str, object] = {}  # {"key": ..., "model": GPTModel, "stamp": ...}


def _stamp(model: nn.Module) -> tuple:
    return tuple(p._version for p in model.parameters())


def _key(model_size: str, weights: str, seed: int) -> tuple:
    if weights == "random":
        return (model_size, "random", seed)
    path = weights_file(model_size)  # a file that changes on disk gives a new key
    stat = path.stat() if path.exists() else None
    return (model_size, "pretrained", str(path), stat.st_mtime_ns if stat else None, stat.st_size if stat else None)


def shared_base(model_size: str, weights: str = "pretrained", seed: int = 123,
                progress: bool = True, timeout: float | None = None) -> GPTModel:
    """The process's base model for these settings (dropout off, eval mode). Not to be changed:
    use :func:`base_model` for a copy of your own or :func:`classifier_from_base`."""
    if weights not in ("pretrained", "random"):
        raise ValueError(f"weights must be 'pretrained' or 'random'; got {weights!r}.")
    model_size = canonical_name(model_size)
    key = _key(model_size, weights, seed)
    with _lock:
        if _cached.get("key") == key and _cached.get("stamp") == _stamp(_cached["model"]):
            return _cached["model"]  # type: ignore[return-value]
        _cached.clear()  # one base at a time: gpt2-xl alone is 6 GB
        if is_open_model(model_size):  # Qwen3, Llama 3.2 (no dropout to switch off)
            model = open_base(model_size, weights, seed, progress=progress, timeout=timeout)
        else:
            model = _gpt2_base(model_size, weights, seed, progress, timeout)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        # the key after loading: a download made just now is part of it
        _cached.update(key=_key(model_size, weights, seed), model=model, stamp=_stamp(model))
        return model


def _gpt2_base(model_size: str, weights: str, seed: int, progress: bool, timeout: float | None) -> GPTModel:
    """GPT-2's base: OpenAI's weights, or random ones made right after ``torch.manual_seed(seed)``;
    mapped from one file that every process on the machine shares (:mod:`gptlib.speed.mapped`)."""
    cfg = get_config(model_size, drop_rate=0.0)

    def make() -> GPTModel:
        if weights == "pretrained":
            return GPTModel.from_pretrained(model_size, drop_rate=0.0, progress=progress, timeout=timeout)
        torch.manual_seed(seed)
        return GPTModel(cfg)

    if not mapped.mapping_on():
        return make()
    if weights == "pretrained":
        source = weights_file(model_size)
        if not source.is_file():  # not downloaded yet: download (and convert) first
            model = make()
            source = weights_file(model_size)
            if not source.is_file():
                return model
        stat = source.stat()
        key = f"pretrained:{source.name}:{stat.st_size}:{stat.st_mtime_ns}"
    else:
        key = f"random:seed{seed}"
    return mapped.mapped_model(mapped.base_file(model_size, cfg, key), make, lambda: GPTModel(cfg))


def base_model(model_size: str, weights: str = "pretrained", drop_rate: float = 0.0, seed: int = 123,
               progress: bool = True) -> GPTModel:
    """GPT-2 with its language-model head, in eval mode, as a copy of your own: OpenAI's
    weights, or random ones created right after ``torch.manual_seed(seed)`` (the book's
    initial weights for that seed)."""
    model = copy.deepcopy(shared_base(model_size, weights, seed, progress))
    for p in model.parameters():
        p.requires_grad_(True)
    return set_dropout(model, drop_rate, scope="all", inplace=True)


def _share_frozen(base: GPTModel) -> GPTModel:
    """A structural copy of ``base`` whose parameters are new Parameters over the same tensors,
    each marked ``_gptlib_shared``: unfreezing one (then ``own_trainable``) or loading a state dict
    into the copy gives it its own tensors first, so the base is never written."""
    memo = {}
    for p in base.parameters():
        alias = nn.Parameter(p.detach(), requires_grad=False)
        alias._gptlib_shared = True
        memo[id(p)] = alias
    model = copy.deepcopy(base, memo)
    model.register_load_state_dict_pre_hook(_own_before_loading)
    return model


def _own_before_loading(module: nn.Module, *args) -> None:
    own_parameters(module)


def own_parameters(model: nn.Module, trainable_only: bool = False) -> nn.Module:
    """Give ``model`` its own copy of every parameter it shares with the base (those carry
    ``_gptlib_shared``), or only of those that train: what trains is never written into a base."""
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None and getattr(p, "_gptlib_shared", False) and (p.requires_grad or not trainable_only):
                module._parameters[name] = nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad)
    return model


def own_trainable(model: nn.Module) -> nn.Module:
    """Give ``model`` its own copy of every shared parameter that now trains (call it after
    anything that sets ``requires_grad``)."""
    return own_parameters(model, trainable_only=True)


def classifier_from_base(model_size: str, weights: str, *, trainable: str | int = "last_block",
                         num_classes: int = 2, drop_rate: float = 0.0, dropout_scope: str = "all",
                         seed: int = 123, device: torch.device | str = "cpu", progress: bool = True,
                         timeout: float | None = None) -> GPTModel:
    """A run's classifier: the shared base, a new head (seeded as in the book), ``trainable``
    unfrozen as private copies, dropout ``drop_rate`` in ``dropout_scope``."""
    model = _share_frozen(shared_base(model_size, weights, seed, progress, timeout))
    model = add_classification_head(model, num_classes=num_classes, trainable=trainable, seed=seed, inplace=True)
    own_trainable(model)  # what trains is the run's own copy
    model = set_dropout(model, drop_rate, scope=dropout_scope, inplace=True)
    return model.to(device)


def base_is_loaded(model_size: str, weights: str = "pretrained", seed: int = 123) -> bool:
    """Whether the base for these settings is in memory already (its weights cost nothing new)."""
    with _lock:
        return _cached.get("key") == _key(canonical_name(model_size), weights, seed)


def forget_base() -> None:
    """Drop the cached base model (frees its memory)."""
    with _lock:
        _cached.clear()

