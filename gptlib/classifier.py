"""Turning GPT-2 into a classifier: a new output head, what trains, which token is read.

The book's recipe (``add_classification_head`` with its defaults)::

    for p in model.parameters(): p.requires_grad = False        # freeze everything
    torch.manual_seed(123)
    model.out_head = torch.nn.Linear(768, 2)                    # 50,257 outputs -> 2
    unfreeze model.trf_blocks[-1] and model.final_norm          # 7,090,946 trainable

The model still returns logits for every position, shape (batch, tokens, classes). Which
position's logits feed the loss is the ``token`` choice:

* ``"last"``: position -1, the book's choice. Thanks to the causal mask it is the only
  position that has seen the whole input, but with right padding it is often a pad token.
* ``"first"``: position 0, which has seen only the first token (the book's exercise 6.3).
* ``"last_real"``: the last non-pad token of each message, which has seen exactly the message.
* ``"mean"``: the mean over the message's real tokens (pads left out).
* ``"mean_padded"``: the mean over every position of the padded row, pads included: the
  bonus script's ``--average_embeddings`` (row 19 of its table).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from gptlib.model import GPTModel, count_parameters
from gptlib.models import FAMILIES
from gptlib.support.files import atomic_path
from gptlib.support.meta import on_meta
from gptlib.tokenizer import END_OF_TEXT_ID


@dataclass(frozen=True)
class TokenChoice:
    """What one way of reading the classifier's logits depends on (the one table of them).

    ``one_position``: the logits of a single position are read (else all positions are
    averaged). ``depends_on``: the leading positions of a padded row whose values decide what
    is read: ``"row"`` every position, pads included; ``"real"`` the message's own tokens (the
    causal mask keeps the pads after them from changing them); ``"first"`` the first token.
    :func:`select_token_logits` computes each; ``gptlib.speed`` reads this table to know
    which work it may skip.
    """

    name: str
    one_position: bool
    depends_on: str
    help: str


TOKENS = {
    "last": TokenChoice("last", True, "row", "the last position, a pad if the message is shorter (the book's)"),
    "first": TokenChoice("first", True, "first", "the first token (it sees only itself)"),
    "last_real": TokenChoice("last_real", True, "real", "the message's own last token"),
    "mean": TokenChoice("mean", False, "real", "the average over the message's own tokens"),
    "mean_padded": TokenChoice("mean_padded", False, "row", "the average over every position, pads included "
                               "(the bonus script's)"),
}
TOKEN_CHOICES = tuple(TOKENS)
ALL_POSITION_TOKENS = tuple(name for name, choice in TOKENS.items() if not choice.one_position)
TRAINABLE_HELP = ("'head', 'last_block' (the book's), 'last_N_blocks' (e.g. 'last_2_blocks'), 'all', an int N, "
                  "or 'lora' (appendix E: adapters on every Linear, the rest frozen)")


def add_classification_head(model: GPTModel, num_classes: int = 2, trainable: str | int = "last_block",
                            seed: int | None = 123, inplace: bool = False) -> GPTModel:
    """A classifier made from ``model``: a new ``out_head`` (emb_dim -> num_classes), frozen as asked.

    Works on a copy unless ``inplace=True``, so running the cell twice never stacks changes.
    ``seed`` is set right before the head is created, as in the book, so the head's initial
    weights (and everything after) match the book's.

    Shown in notebooks/03_replacing_the_output_head.
    """
    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes; got num_classes={num_classes}.")
    clf = model if inplace else copy.deepcopy(model)
    for param in clf.parameters():
        param.requires_grad = False
    if seed is not None:
        torch.manual_seed(seed)
    emb_dim = clf.tok_emb.weight.shape[1]
    clf.out_head = nn.Linear(emb_dim, num_classes, device=clf.tok_emb.weight.device)
    clf.cfg = {**getattr(clf, "cfg", {}), "num_classes": num_classes}
    return set_trainable(clf, trainable)


def trainable_blocks(trainable: str | int, n_layers: int) -> int:
    """How many of the top transformer blocks train (plus final norm and head) for a choice."""
    if isinstance(trainable, int) and not isinstance(trainable, bool):
        n = trainable
    elif trainable in ("head", "lora"):  # LoRA trains adapters, no block in full (gptlib.lora)
        return 0
    elif trainable == "last_block":
        n = 1
    elif trainable == "all":
        return n_layers
    elif isinstance(trainable, str) and (m := re.fullmatch(r"last_?(\d+)(_blocks?)?", trainable)):
        n = int(m.group(1))
    else:
        raise ValueError(f"Unknown trainable choice {trainable!r}; use {TRAINABLE_HELP}.")
    if not 0 <= n <= n_layers:
        raise ValueError(f"Cannot train the last {n} blocks of a model with {n_layers} blocks.")
    return n


def set_trainable(model: GPTModel, trainable: str | int = "last_block") -> GPTModel:
    """Set ``requires_grad`` by name: the head always trains; then the last N blocks and the
    final norm ('last_block', 'last_2_blocks', an int), or everything ('all'). Returns ``model``.

    Shown in notebooks/03_replacing_the_output_head.
    """
    if trainable == "lora":
        raise ValueError("trainable='lora' adds adapters rather than unfreezing parameters: use "
                         "gptlib.lora.add_lora(model) (FinetuneConfig(trainable='lora') does).")
    n_layers = len(model.trf_blocks)
    n = trainable_blocks(trainable, n_layers)
    everything = trainable == "all"
    for name, param in model.named_parameters():
        param.requires_grad = everything or name.startswith("out_head.")
    if n > 0:
        for block in model.trf_blocks[n_layers - n:]:
            for param in block.parameters():
                param.requires_grad = True
        for param in model.final_norm.parameters():
            param.requires_grad = True
    return model


DROPOUT_SCOPES = ("all", "trainable")


def set_dropout(model: GPTModel, rate: float, scope: str = "all", inplace: bool = False) -> GPTModel:
    """Set every dropout layer's rate (``scope="all"``, the book's: frozen blocks drop too in
    training mode), or only those inside parts that train (``scope="trainable"``: the
    embeddings' dropout if they train, each block's if it trains), leaving the frozen part
    deterministic so that its output can be computed once and reused (``gptlib.speed.cached``).

    In a frozen block, dropout is noise on the inputs of the part that trains: it changes what
    the training sees, not what the frozen block could learn.
    """
    if scope not in DROPOUT_SCOPES:
        raise ValueError(f"dropout scope must be one of {DROPOUT_SCOPES}; got {scope!r}.")
    if not 0 <= rate < 1:
        raise ValueError(f"The dropout rate must be in [0, 1); got {rate}.")
    out = model if inplace else copy.deepcopy(model)

    def trains(module: nn.Module) -> bool:
        return any(p.requires_grad for p in module.parameters())

    parts: list[tuple[nn.Module, bool]] = []  # (GPT-2's; the open models of gptlib.models have no dropout)
    if hasattr(out, "drop_emb"):
        parts.append((out.drop_emb, trains(out.tok_emb) or trains(out.pos_emb)))
    parts += [(block, trains(block)) for block in out.trf_blocks]
    for part, part_trains in parts:
        for m in [part] if isinstance(part, nn.Dropout) else part.modules():
            if isinstance(m, nn.Dropout):
                m.p = rate if scope == "all" or part_trains else 0.0
    out.cfg = {**getattr(out, "cfg", {}), "drop_rate": rate}
    return out


def set_causal_mask(model: GPTModel, on: bool = True, inplace: bool = False) -> GPTModel:
    """Switch the causal mask of every attention layer on (the book's) or off (every token sees
    every token: the bonus table's row 17). Recorded in ``model.cfg["causal_mask"]``, so a
    saved classifier is rebuilt the same way."""
    from gptlib.model import MultiHeadAttention

    out = model if inplace else copy.deepcopy(model)
    for m in out.modules():
        if isinstance(m, MultiHeadAttention):
            m.causal = bool(on)
    out.cfg = {**getattr(out, "cfg", {}), "causal_mask": bool(on)}
    return out


def trainable_summary(model: nn.Module) -> str:
    """One line: trainable vs frozen parameter counts."""
    total = count_parameters(model)
    trainable = count_parameters(model, trainable_only=True)
    return (f"trainable {trainable:,} | frozen {total - trainable:,} | total {total:,} "
            f"({100 * trainable / max(total, 1):.3g}% trainable)")


def parameter_table(model: GPTModel) -> pd.DataFrame:
    """Parameters per part of the model (embeddings, each block, final norm, head), trainable or not."""
    parts: list[tuple[str, nn.Module]] = [("tok_emb", model.tok_emb), ("pos_emb", model.pos_emb)]
    parts += [(f"trf_blocks[{i}]", b) for i, b in enumerate(model.trf_blocks)]
    parts += [("final_norm", model.final_norm), ("out_head", model.out_head)]
    rows = []
    for name, module in parts:
        n = count_parameters(module)
        n_train = count_parameters(module, trainable_only=True)
        rows.append({"part": name, "parameters": n, "trainable": n_train, "frozen": n - n_train})
    return pd.DataFrame(rows)


def last_real_index(input_ids: torch.Tensor, pad_token_id: int = END_OF_TEXT_ID) -> torch.Tensor:
    """Index of each row's last non-pad token (right padding; the pad id is never inside a message)."""
    real = input_ids != pad_token_id
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    # the largest position holding a real token; 0 for an all-pad row
    return torch.where(real, positions, torch.zeros_like(positions)).amax(dim=1)


def select_token_logits(logits: torch.Tensor, input_ids: torch.Tensor, token: str = "last",
                        pad_token_id: int = END_OF_TEXT_ID) -> torch.Tensor:
    """Reduce (batch, tokens, classes) logits to (batch, classes) by the ``token`` choice.

    Shown in notebooks/04_last_token_logits.
    """
    if token == "last":
        return logits[:, -1, :]
    if token == "first":
        return logits[:, 0, :]
    if token == "last_real":
        idx = last_real_index(input_ids, pad_token_id)
        return logits[torch.arange(logits.shape[0], device=logits.device), idx]
    if token == "mean":
        real = (input_ids != pad_token_id).unsqueeze(-1).to(logits.dtype)
        return (logits * real).sum(1) / real.sum(1).clamp(min=1)
    if token == "mean_padded":
        return logits.mean(dim=1)
    raise ValueError(f"Unknown token choice {token!r}; use one of {TOKEN_CHOICES}.")


class ClassifierRunner(nn.Module):
    """The declared interface of a wrapper that runs a classifier for speed
    (``gptlib.speed.cached.CachedClassifier``): it computes the read token's logits itself, doing only
    the work that token needs. The training and evaluation functions ask for nothing else."""

    model: GPTModel

    def classify_logits(self, input_ids: torch.Tensor, token: str = "last",
                        pad_token_id: int = END_OF_TEXT_ID) -> torch.Tensor:
        raise NotImplementedError


def classifier_logits(model: nn.Module, input_ids: torch.Tensor, token: str = "last",
                      pad_token_id: int = END_OF_TEXT_ID) -> torch.Tensor:
    """The (batch, classes) logits that the loss and the prediction use: the book's
    ``model(input_ids)`` reduced to the read token, or a :class:`ClassifierRunner`'s own."""
    if isinstance(model, ClassifierRunner):
        return model.classify_logits(input_ids, token, pad_token_id)
    return select_token_logits(model(input_ids), input_ids, token, pad_token_id)


def save_classifier(model: GPTModel, path: str | Path, **meta: Any) -> Path:
    """Save weights plus everything needed to rebuild and use the classifier (atomically).

    ``meta`` should carry at least ``max_length``, ``token`` and ``pad_token_id``; the model
    config (with ``num_classes``) is always included.
    """
    path = Path(path)
    payload = {"model_state_dict": model.state_dict(), "config": dict(model.cfg),
               "model_class": type(model).__name__, **meta}  # GPTModel, or an open model's class
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> tuple[GPTModel, dict[str, Any]]:
    """Rebuild a classifier saved by :func:`save_classifier`; returns (model in eval mode, meta).

    ``path`` may be a run folder holding ``classifier.pth``. The file is read with
    ``weights_only=True`` (tensors and plain data only), and every tensor the model needs is
    checked: a missing or mis-shaped one is named."""
    from gptlib.model import check_config
    from gptlib.models.parts import check_config as check_open_config
    from gptlib.support.weight_files import WeightFileError, torch_load
    from gptlib.weights import load_into

    path = Path(path)
    if path.is_dir() and (path / "classifier.pth").is_file():
        path = path / "classifier.pth"
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint {path} not found; train one with `python -m gptlib finetune`.")
    payload = torch_load(path, "classifier checkpoint", "the classifier.pth that `python -m gptlib finetune` "
                         "writes in its --output folder (or that folder)")
    if not isinstance(payload, dict) or "config" not in payload or "model_state_dict" not in payload:
        raise WeightFileError(f"{path} is not a gptlib classifier checkpoint (it lacks 'config' and "
                              "'model_state_dict'); write one with save_classifier or `python -m gptlib finetune`.")
    cfg = dict(payload["config"])
    num_classes = cfg.pop("num_classes", 2)
    family = next((f for f in FAMILIES.values() if f.model_class == payload.get("model_class")), None)
    model_cls = GPTModel if family is None else family.model_cls()  # Qwen3, Llama (gptlib.models)
    try:
        check_config(cfg) if family is None else check_open_config(cfg)
    except (ValueError, KeyError) as err:
        raise WeightFileError(f"{path}: its model config is not usable ({err}).") from None
    with on_meta():
        model = model_cls(cfg)
    model = add_classification_head(model, num_classes, trainable="head", seed=None, inplace=True)
    model = model.to_empty(device="cpu")
    load_into(model, payload["model_state_dict"], f"The checkpoint {path}")
    meta = {k: v for k, v in payload.items() if k not in ("model_state_dict",)}
    return model.to(device).eval(), meta
