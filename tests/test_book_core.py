"""gptlib.book_core, the book-sized functions the notebooks show, gives the same numbers as
gptlib.train, the library's versions with options, on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from gptlib import book_core, train
from gptlib.classifier import add_classification_head
from gptlib.data import create_data_loaders, spam_datasets
from gptlib.model import GPTModel, get_config

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-6
TEXTS = [
    "You are a winner you have been specially selected to receive $1000 cash or a $2000 award.",
    "Hey, just wanted to check if we're still on for dinner tonight? Let me know!",
    "Ok",
    "Call now " * 200,  # longer than the tiny model's context (256): cut to it
]


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(123)
    return GPTModel(get_config("gpt2-tiny (test)")).eval()


@pytest.fixture
def data(tiny_csvs, tokenizer):
    datasets = spam_datasets(*tiny_csvs, tokenizer)
    return datasets, create_data_loaders(*datasets, batch_size=4, seed=123)


def close(a, b) -> bool:
    return math.isclose(a, b, rel_tol=0, abs_tol=TOL)


@pytest.mark.parametrize("num_batches", [None, 1, 2, 100])
def test_loss_and_accuracy_loaders(base, data, num_batches):
    _, (train_loader, val_loader, _) = data
    clf = add_classification_head(base)
    for loader in (train_loader, val_loader):
        torch.manual_seed(1)
        ours = book_core.calc_loss_loader(loader, clf, "cpu", num_batches)
        torch.manual_seed(1)
        assert close(ours, train.calc_loss_loader(loader, clf, "cpu", num_batches))
        torch.manual_seed(1)
        ours = book_core.calc_accuracy_loader(loader, clf, "cpu", num_batches)
        torch.manual_seed(1)
        assert close(ours, train.calc_accuracy_loader(loader, clf, "cpu", num_batches))


def test_loss_batch_and_evaluate_model(base, data):
    _, (train_loader, val_loader, _) = data
    clf = add_classification_head(base)
    x, y = next(iter(val_loader))
    assert torch.allclose(book_core.calc_loss_batch(x, y, clf, "cpu"), train.calc_loss_batch(x, y, clf, "cpu"),
                          atol=TOL)
    torch.manual_seed(5)
    ours = book_core.evaluate_model(clf, train_loader, val_loader, "cpu", eval_iter=2)
    torch.manual_seed(5)
    theirs = train.evaluate_model(clf, train_loader, val_loader, "cpu", eval_iter=2)
    assert all(close(a, b) for a, b in zip(ours, theirs, strict=True))
    assert clf.training  # both leave the model in training mode, as the book's does


def _train(loop, base, loaders, **extra):
    train_loader, val_loader, _ = loaders
    clf = add_classification_head(base)
    torch.manual_seed(123)
    optimizer = torch.optim.AdamW(clf.parameters(), lr=5e-4, weight_decay=0.1)
    result = loop(clf, train_loader, val_loader, optimizer, "cpu", num_epochs=1, eval_freq=2, eval_iter=2,
                  **extra)
    return clf, result


def test_training_loop_gives_the_same_five_tuple(base, data, capsys):
    _, loaders = data
    ours_model, ours = _train(book_core.train_classifier_simple, base, loaders)
    printed = capsys.readouterr().out
    assert "Ep 1 (Step 000000)" in printed and "Validation accuracy" in printed
    theirs_model, theirs = _train(train.train_classifier_simple, base, loaders, verbose=False)
    assert len(ours) == len(theirs) == 5
    for a, b in zip(ours[:4], theirs[:4], strict=True):
        assert len(a) == len(b) > 0
        assert all(close(x, y) for x, y in zip(a, b, strict=True)), (a, b)
    assert ours[4] == theirs[4] == len(loaders[0]) * 4
    for (name, p), q in zip(ours_model.named_parameters(), theirs_model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=TOL), name
    # after training, both agree on every validation batch's loss too
    assert close(book_core.calc_loss_loader(loaders[1], ours_model, "cpu"),
                 train.calc_loss_loader(loaders[1], theirs_model, "cpu"))


@pytest.mark.parametrize("max_length", [None, 8, 120])
def test_classify_review(base, data, tokenizer, max_length):
    _, loaders = data
    trained, _ = _train(train.train_classifier_simple, base, loaders, verbose=False)
    for clf in (add_classification_head(base), trained):
        for text in TEXTS:
            assert (book_core.classify_review(text, clf, tokenizer, "cpu", max_length=max_length)
                    == train.classify_review(text, clf, tokenizer, "cpu", max_length=max_length)), text


def test_book_core_is_short():
    """The point of the module: each function small enough to read beside the book."""
    import inspect

    for name in ("calc_accuracy_loader", "calc_loss_batch", "calc_loss_loader", "evaluate_model",
                 "train_classifier_simple", "classify_review"):
        lines = inspect.getsource(getattr(book_core, name)).splitlines()
        assert len(lines) <= 40, f"{name} has {len(lines)} lines"
