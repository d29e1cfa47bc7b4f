"""Training and evaluating the classifier, with the book's names, signatures and return values.

Every function takes optional keywords the book does not have: ``token`` (which position's
logits are read, see ``gptlib.classifier``), ``pad_token_id``, and for the loss
``ignore_index`` (targets the loss skips; the bonus script's ``--ignore_index``). Their defaults
give the book's behaviour, and random numbers are consumed exactly as in the book's loop (the
same loader iterations in the same order), so the book's seeds reproduce the book's runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from gptlib.classifier import classifier_logits
from gptlib.support.labels import check_loaders_fit_head
from gptlib.tokenizer import END_OF_TEXT_ID


def calc_loss_batch(input_batch: torch.Tensor, target_batch: torch.Tensor, model: torch.nn.Module,
                    device: torch.device | str, token: str = "last", pad_token_id: int = END_OF_TEXT_ID,
                    ignore_index: int = -100) -> torch.Tensor:
    """Cross-entropy of one batch, on the logits of the chosen token.

    Shown in notebooks/04_last_token_logits.
    """
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    logits = classifier_logits(model, input_batch, token, pad_token_id)
    return F.cross_entropy(logits, target_batch, ignore_index=ignore_index)


def _n_batches(data_loader: DataLoader, num_batches: int | None) -> int:
    return len(data_loader) if num_batches is None else min(num_batches, len(data_loader))


def calc_loss_loader(data_loader: DataLoader, model: torch.nn.Module, device: torch.device | str,
                     num_batches: int | None = None, token: str = "last", pad_token_id: int = END_OF_TEXT_ID,
                     ignore_index: int = -100) -> float:
    """Mean batch loss over the first ``num_batches`` batches (all by default); NaN for an empty loader.

    Shown in notebooks/05_finetuning_and_evaluation.
    """
    if len(data_loader) == 0:
        return float("nan")
    n = _n_batches(data_loader, num_batches)
    total = 0.0
    with torch.no_grad():  # a measurement: no autograd graph needed
        for i, (input_batch, target_batch) in enumerate(data_loader):
            if i >= n:
                break
            total += calc_loss_batch(input_batch, target_batch, model, device, token, pad_token_id,
                                     ignore_index).item()
    return total / n


def _predictions(data_loader: DataLoader, model: torch.nn.Module, device: torch.device | str,
                 num_batches: int | None, token: str, pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    n = _n_batches(data_loader, num_batches)
    preds, targets = [], []
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i >= n:
            break
        with torch.no_grad():
            logits = classifier_logits(model, input_batch.to(device), token, pad_token_id)
        preds.append(logits.argmax(dim=-1).cpu())
        targets.append(target_batch.cpu())
    if not preds:
        return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    return torch.cat(preds), torch.cat(targets)


def calc_accuracy_loader(data_loader: DataLoader, model: torch.nn.Module, device: torch.device | str,
                         num_batches: int | None = None, token: str = "last", pad_token_id: int = END_OF_TEXT_ID) -> float:
    """Fraction of correct predictions over the first ``num_batches`` batches (sets eval mode, as the book).

    Shown in notebooks/05_finetuning_and_evaluation.
    """
    preds, targets = _predictions(data_loader, model, device, num_batches, token, pad_token_id)
    if len(targets) == 0:
        return float("nan")
    return (preds == targets).sum().item() / len(targets)


def evaluate_model(model: torch.nn.Module, train_loader: DataLoader, val_loader: DataLoader,
                   device: torch.device | str, eval_iter: int, token: str = "last",
                   pad_token_id: int = END_OF_TEXT_ID, ignore_index: int = -100) -> tuple[float, float]:
    """Train and validation loss on ``eval_iter`` batches each, without gradients."""
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, eval_iter, token, pad_token_id, ignore_index)
        val_loss = calc_loss_loader(val_loader, model, device, eval_iter, token, pad_token_id, ignore_index)
    model.train()
    return train_loss, val_loss


@dataclass
class EvalEvent:
    """What a ``callback`` of ``train_classifier_simple`` receives at each evaluation and epoch end."""

    kind: str  # "step" (after each optimizer step), "eval" (every eval_freq steps), "epoch"
    epoch: int
    global_step: int
    examples_seen: int
    train_loss: float | None = None
    val_loss: float | None = None
    train_acc: float | None = None
    val_acc: float | None = None
    history: dict[str, list[float]] = field(default_factory=dict)


class StopTraining(Exception):
    """Raise from a callback (or return True) to stop training early; results so far are kept."""


def train_classifier_simple(
    model: torch.nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device | str,
    num_epochs: int,
    eval_freq: int,
    eval_iter: int,
    *,
    token: str = "last",
    pad_token_id: int = END_OF_TEXT_ID,
    progress: bool = False,
    callback: Callable[[EvalEvent], Any] | None = None,
    verbose: bool = True,
    accumulation_steps: int = 1,
    ignore_index: int = -100,
) -> tuple[list[float], list[float], list[float], list[float], int]:
    """The book's training loop. Returns (train_losses, val_losses, train_accs, val_accs, examples_seen).

    Every ``eval_freq`` steps the loss on ``eval_iter`` train and validation batches is recorded;
    after each epoch, the accuracy on ``eval_iter`` batches of each. Extras that leave results
    unchanged: ``progress`` shows a progress bar; ``callback(event)`` is called after each
    step, each evaluation and each epoch (for live plots; see :class:`EvalEvent`); returning
    True or raising ``StopTraining`` stops early (mid-epoch too), keeping what was measured.

    ``accumulation_steps=N`` (the bonus script's): each batch's loss is divided by N and the
    optimizer steps every N batches (and after an epoch's last batch), so batch 1 with N = 8
    makes batch 8's updates. Steps, ``eval_freq`` and ``examples_seen`` still count batches.

    The loop knows nothing of speed-ups: to use one, wrap the model once before the loop
    (``gptlib.speed.wrap``), as nanoGPT compiles its model before its loop.

    Shown in notebooks/05_finetuning_and_evaluation.
    """
    if accumulation_steps < 1:
        raise ValueError(f"accumulation_steps must be at least 1; got {accumulation_steps}.")
    check_loaders_fit_head(model, {"training": train_loader, "validation": val_loader}, ignore_index)
    train_losses: list[float] = []
    val_losses: list[float] = []
    train_accs: list[float] = []
    val_accs: list[float] = []
    history = {"train_losses": train_losses, "val_losses": val_losses,
               "train_accs": train_accs, "val_accs": val_accs}
    examples_seen, global_step = 0, -1
    bar = tqdm(total=num_epochs * len(train_loader), desc="fine-tuning", unit="step", disable=not progress)

    def notify(event: EvalEvent) -> None:
        if callback is not None and callback(event) is True:
            raise StopTraining

    try:
        for epoch in range(num_epochs):
            model.train()
            for batch_idx, (input_batch, target_batch) in enumerate(train_loader):
                if batch_idx % accumulation_steps == 0:
                    optimizer.zero_grad()  # the book's: every batch (accumulation_steps=1)
                loss = calc_loss_batch(input_batch, target_batch, model, device, token, pad_token_id,
                                       ignore_index)
                (loss / accumulation_steps if accumulation_steps > 1 else loss).backward()
                if (batch_idx + 1) % accumulation_steps == 0 or batch_idx + 1 == len(train_loader):
                    optimizer.step()
                examples_seen += input_batch.shape[0]
                global_step += 1
                bar.update(1)
                notify(EvalEvent("step", epoch + 1, global_step, examples_seen, history=history))
                if global_step % eval_freq == 0:
                    train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device,
                                                          eval_iter, token, pad_token_id, ignore_index)
                    train_losses.append(train_loss)
                    val_losses.append(val_loss)
                    if verbose:
                        bar.write(f"Ep {epoch + 1} (Step {global_step:06d}): "
                                  f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
                    notify(EvalEvent("eval", epoch + 1, global_step, examples_seen,
                                     train_loss=train_loss, val_loss=val_loss, history=history))
            train_acc = calc_accuracy_loader(train_loader, model, device, eval_iter, token, pad_token_id)
            val_acc = calc_accuracy_loader(val_loader, model, device, eval_iter, token, pad_token_id)
            train_accs.append(train_acc)
            val_accs.append(val_acc)
            if verbose:
                bar.write(f"Training accuracy: {train_acc * 100:.2f}% | Validation accuracy: {val_acc * 100:.2f}%")
            notify(EvalEvent("epoch", epoch + 1, global_step, examples_seen,
                             train_acc=train_acc, val_acc=val_acc, history=history))
    except StopTraining:
        if verbose:
            bar.write(f"Stopped early after {examples_seen} examples.")
    finally:
        bar.close()
        model.eval()
    return train_losses, val_losses, train_accs, val_accs, examples_seen


def classification_metrics(data_loader: DataLoader, model: torch.nn.Module, device: torch.device | str,
                           num_classes: int | None = None, num_batches: int | None = None, token: str = "last",
                           pad_token_id: int = END_OF_TEXT_ID) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix (rows: true, columns: predicted).

    ``num_classes`` defaults to the width of the model's head. For two classes,
    ``precision``/``recall``/``f1`` are those of class 1 (spam).
    """
    preds, targets = _predictions(data_loader, model, device, num_batches, token, pad_token_id)
    if num_classes is None:
        head = getattr(model, "out_head", None)
        seen = int(max(preds.max(), targets.max())) + 1 if len(targets) else 2
        num_classes = head.out_features if isinstance(head, torch.nn.Linear) else max(2, seen)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for t, p in zip(targets.tolist(), preds.tolist()):
        confusion[t, p] += 1
    per_class = []
    for c in range(num_classes):
        tp = confusion[c, c].item()
        predicted, actual = confusion[:, c].sum().item(), confusion[c, :].sum().item()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append({"precision": precision, "recall": recall, "f1": f1, "support": actual})
    n = int(confusion.sum())
    result: dict[str, Any] = {
        "accuracy": confusion.diag().sum().item() / n if n else float("nan"),
        "per_class": per_class,
        "macro_f1": sum(c["f1"] for c in per_class) / num_classes,
        "confusion_matrix": confusion.tolist(),
        "n": n,
    }
    if num_classes == 2:
        result.update({k: per_class[1][k] for k in ("precision", "recall", "f1")})
    return result


def encode_message(text: str, tokenizer, context_length: int, max_length: int | None = None,
                   pad_token_id: int = END_OF_TEXT_ID) -> list[int]:
    """Token ids for one message: truncated to the model's context, padded to ``max_length``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("Cannot classify an empty message: give some text.")
    ids = tokenizer.encode(text, disallowed_special=())
    limit = context_length if max_length is None else min(max_length, context_length)
    ids = ids[:limit]
    return ids + [pad_token_id] * (limit - len(ids)) if max_length is not None else ids


def predict_proba(text: str, model: torch.nn.Module, tokenizer, device: torch.device | str,
                  max_length: int | None = None, pad_token_id: int = END_OF_TEXT_ID, token: str = "last") -> list[float]:
    """Class probabilities (softmax of the chosen token's logits) for one message."""
    model.eval()
    context = model.pos_emb.weight.shape[0] if hasattr(model, "pos_emb") else model.cfg["context_length"]
    ids = encode_message(text, tokenizer, context, max_length, pad_token_id)
    with torch.no_grad():
        logits = classifier_logits(model, torch.tensor([ids], device=device), token, pad_token_id)
    return torch.softmax(logits[0].float(), dim=-1).tolist()


def classify_review(text: str, model: torch.nn.Module, tokenizer, device: torch.device | str,
                    max_length: int | None = None, pad_token_id: int = END_OF_TEXT_ID, token: str = "last") -> str:
    """"spam" or "not spam" for one message, as the book's ``classify_review``.

    ``max_length=None`` uses the message as it is; a longer message than the model's context
    is truncated to it (the book's bug of truncating to the embedding width is not repeated).

    Shown in notebooks/05_finetuning_and_evaluation.
    """
    probs = predict_proba(text, model, tokenizer, device, max_length, pad_token_id, token)
    return "spam" if max(range(len(probs)), key=probs.__getitem__) == 1 else "not spam"
