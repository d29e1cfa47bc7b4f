"""The chapter's training and evaluation functions at book size: for reading, not for options.

Each function here does what the book's function of the same name does (chapter 6, sections
6.6 to 6.8) and nothing more: no progress bar, no callbacks, no speed modes, no checks on
the arguments. The notebooks show these with ``show_source`` so that the idea is not buried.

:mod:`gptlib.train` holds the versions the library runs, with options (which token is read,
padding id, ``ignore_index``, gradient accumulation, progress bars, live-plot callbacks,
faster frozen layers). ``tests/test_book_core.py`` checks that both give the same numbers.
"""

from __future__ import annotations

from itertools import islice

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

Model = torch.nn.Module
Device = torch.device | str


def calc_accuracy_loader(data_loader: DataLoader, model: Model, device: Device,
                         num_batches: int | None = None) -> float:
    """Share of correct predictions over the first ``num_batches`` batches (section 6.6).

    The prediction is the larger of the two logits at the last position.
    """
    model.eval()
    correct, seen = 0, 0
    for input_batch, target_batch in islice(data_loader, num_batches):
        input_batch, target_batch = input_batch.to(device), target_batch.to(device)
        with torch.no_grad():
            logits = model(input_batch)[:, -1, :]  # last position only
        predicted = logits.argmax(dim=-1)
        correct += (predicted == target_batch).sum().item()
        seen += len(target_batch)
    return correct / seen


def calc_loss_batch(input_batch: torch.Tensor, target_batch: torch.Tensor, model: Model,
                    device: Device) -> torch.Tensor:
    """Cross-entropy of one batch, on the last position's logits (section 6.6)."""
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    logits = model(input_batch)[:, -1, :]
    return F.cross_entropy(logits, target_batch)


def calc_loss_loader(data_loader: DataLoader, model: Model, device: Device,
                     num_batches: int | None = None) -> float:
    """Mean batch loss over the first ``num_batches`` batches (section 6.6)."""
    if len(data_loader) == 0:
        return float("nan")
    losses = [calc_loss_batch(x, y, model, device).item() for x, y in islice(data_loader, num_batches)]
    return sum(losses) / len(losses)


def evaluate_model(model: Model, train_loader: DataLoader, val_loader: DataLoader, device: Device,
                   eval_iter: int) -> tuple[float, float]:
    """Training and validation loss on ``eval_iter`` batches each, without gradients (section 6.7)."""
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


def train_classifier_simple(model: Model, train_loader: DataLoader, val_loader: DataLoader,
                            optimizer: torch.optim.Optimizer, device: Device, num_epochs: int,
                            eval_freq: int, eval_iter: int
                            ) -> tuple[list[float], list[float], list[float], list[float], int]:
    """The chapter's training loop (section 6.7).

    Per batch: loss, backward pass, optimizer step. Every ``eval_freq`` steps: the loss on
    ``eval_iter`` training and validation batches. After each epoch: the accuracy on
    ``eval_iter`` batches of each. It counts messages seen, not tokens.
    """
    train_losses, val_losses, train_accs, val_accs = [], [], [], []
    examples_seen, step = 0, -1
    for epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()  # forget the previous batch's gradients
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            examples_seen += len(input_batch)
            step += 1
            if step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                print(f"Ep {epoch + 1} (Step {step:06d}): Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        train_accs.append(calc_accuracy_loader(train_loader, model, device, num_batches=eval_iter))
        val_accs.append(calc_accuracy_loader(val_loader, model, device, num_batches=eval_iter))
        print(f"Training accuracy: {train_accs[-1] * 100:.2f}% | Validation accuracy: {val_accs[-1] * 100:.2f}%")
    return train_losses, val_losses, train_accs, val_accs, examples_seen


def classify_review(text: str, model: Model, tokenizer, device: Device, max_length: int | None = None,
                    pad_token_id: int = 50256) -> str:
    """"spam" or "not spam" for one message (section 6.8).

    Encode, cut to ``max_length`` (never longer than the model's context), pad to
    ``max_length`` with the pad token, and read the last position. ``max_length=None``
    classifies the message as it is.
    """
    model.eval()
    ids = tokenizer.encode(text, disallowed_special=())
    context = model.pos_emb.weight.shape[0]
    length = context if max_length is None else min(max_length, context)
    ids = ids[:length]
    if max_length is not None:
        ids += [pad_token_id] * (length - len(ids))
    with torch.no_grad():
        logits = model(torch.tensor([ids], device=device))[:, -1, :]
    return "spam" if logits.argmax(dim=-1).item() == 1 else "not spam"
