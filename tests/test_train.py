"""gptlib.train: equivalence with the book's training loop, and the loop's extras."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gptlib.classifier import add_classification_head
from gptlib.data import (
    SpamDataset,
    create_balanced_dataset,
    create_data_loaders,
    map_labels,
    random_split,
    read_sms_spam,
    save_splits,
)
from gptlib.model import GPTModel, get_config
from gptlib.train import (
    EvalEvent,
    StopTraining,
    calc_accuracy_loader,
    calc_loss_loader,
    classification_metrics,
    classify_review,
    train_classifier_simple,
)

pytestmark = pytest.mark.usefixtures("gptlib_home")

TINY = "gpt2-tiny (test)"
BOOK = {"lr": 5e-5, "weight_decay": 0.1, "eval_freq": 50, "eval_iter": 5}
EPOCHS = 2


# =========================================================================== equivalence with the book


def _predictions(model, loader):
    model.eval()
    out = []
    with torch.no_grad():
        for x, _ in loader:
            out.append(model(x)[:, -1, :].argmax(-1))
    return torch.cat(out)


@pytest.fixture(scope="module")
def book_and_ours(real_data_file, tokenizer, tmp_path_factory):
    """The book's chapter-6 pipeline (llms_from_scratch) and ours, on the same tiny config."""
    from llms_from_scratch import ch04, ch06

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = get_config(TINY)
        # ---- the book, step by step as in the chapter
        folder = tmp_path_factory.mktemp("book")
        df = pd.read_csv(real_data_file, sep="\t", header=None, names=["Label", "Text"])
        balanced = ch06.create_balanced_dataset(df)
        balanced["Label"] = balanced["Label"].map({"ham": 0, "spam": 1})
        for name, split in zip(("train", "validation", "test"), ch06.random_split(balanced, 0.7, 0.1)):
            split.to_csv(folder / f"{name}.csv", index=None)
        train_ds = ch06.SpamDataset(folder / "train.csv", tokenizer)
        val_ds = ch06.SpamDataset(folder / "validation.csv", tokenizer, max_length=train_ds.max_length)
        test_ds = ch06.SpamDataset(folder / "test.csv", tokenizer, max_length=train_ds.max_length)
        torch.manual_seed(123)
        book_loaders = (
            DataLoader(train_ds, batch_size=8, shuffle=True, num_workers=0, drop_last=True),
            DataLoader(val_ds, batch_size=8, num_workers=0, drop_last=False),
            DataLoader(test_ds, batch_size=8, num_workers=0, drop_last=False),
        )
        torch.manual_seed(123)
        book_model = ch04.GPTModel(cfg)
        book_model.eval()
        for param in book_model.parameters():
            param.requires_grad = False
        torch.manual_seed(123)
        book_model.out_head = nn.Linear(cfg["emb_dim"], 2)
        for param in book_model.trf_blocks[-1].parameters():
            param.requires_grad = True
        for param in book_model.final_norm.parameters():
            param.requires_grad = True
        torch.manual_seed(123)
        optimizer = torch.optim.AdamW(book_model.parameters(), lr=BOOK["lr"], weight_decay=BOOK["weight_decay"])
        book_hist = ch06.train_classifier_simple(
            book_model, book_loaders[0], book_loaders[1], optimizer, "cpu", EPOCHS,
            BOOK["eval_freq"], BOOK["eval_iter"])
        book_final = [ch06.calc_accuracy_loader(loader, book_model, "cpu") for loader in book_loaders]
        book_preds = _predictions(book_model, book_loaders[2])

        # ---- gptlib
        folder = tmp_path_factory.mktemp("ours")
        mapped = map_labels(create_balanced_dataset(read_sms_spam(real_data_file)))
        paths = save_splits(*random_split(mapped, 0.7, 0.1), folder=folder)
        train_ds = SpamDataset(paths[0], tokenizer)
        val_ds = SpamDataset(paths[1], tokenizer, max_length=train_ds.max_length)
        test_ds = SpamDataset(paths[2], tokenizer, max_length=train_ds.max_length)
        loaders = create_data_loaders(train_ds, val_ds, test_ds, batch_size=8, seed=123)
        torch.manual_seed(123)
        model = add_classification_head(GPTModel(cfg).eval(), num_classes=2, trainable="last_block", seed=123)
        torch.manual_seed(123)
        optimizer = torch.optim.AdamW(model.parameters(), lr=BOOK["lr"], weight_decay=BOOK["weight_decay"])
        hist = train_classifier_simple(model, loaders[0], loaders[1], optimizer, "cpu", EPOCHS,
                                       BOOK["eval_freq"], BOOK["eval_iter"])
        final = [calc_accuracy_loader(loader, model, "cpu") for loader in loaders]
        preds = _predictions(model, loaders[2])
    finally:
        torch.set_num_threads(threads)
    return SimpleNamespace(book=book_hist, ours=hist, book_final=book_final, final=final,
                           book_preds=book_preds, preds=preds)


@pytest.mark.slow
@pytest.mark.realdata
def test_losses_and_accuracies_equal_the_books(book_and_ours):
    book, ours = book_and_ours.book, book_and_ours.ours
    assert ours[4] == book[4] == EPOCHS * 130 * 8  # examples seen
    assert len(ours[0]) == len(book[0]) == math.ceil(EPOCHS * 130 / BOOK["eval_freq"])
    assert len(ours[2]) == len(book[2]) == EPOCHS
    for mine, theirs in zip(ours[:4], book[:4]):
        assert len(mine) == len(theirs)
        assert mine == pytest.approx(theirs, abs=1e-4)
    diff = max(abs(a - b) for a, b in zip(ours[0] + ours[1], book[0] + book[1]))
    print(f"\nmax |loss difference| ours vs book over {len(ours[0])} eval points: {diff:.3g}")
    print(f"per-epoch accuracies (train/val): ours {ours[2]}/{ours[3]}, book {book[2]}/{book[3]}")


@pytest.mark.slow
@pytest.mark.realdata
def test_final_accuracies_and_predictions_identical(book_and_ours):
    print(f"\nfinal train/val/test accuracy: ours {book_and_ours.final}, book {book_and_ours.book_final}")
    assert book_and_ours.final == book_and_ours.book_final
    assert torch.equal(book_and_ours.preds, book_and_ours.book_preds)
    assert len(book_and_ours.preds) == 300


# =========================================================================== the small fixture


@pytest.fixture
def tiny_loaders(tiny_csvs, tokenizer):
    train = SpamDataset(tiny_csvs.train, tokenizer)
    val = SpamDataset(tiny_csvs.val, tokenizer, max_length=train.max_length)
    test = SpamDataset(tiny_csvs.test, tokenizer, max_length=train.max_length)
    return create_data_loaders(train, val, test, batch_size=8)  # 5 / 1 / 2 batches


@pytest.fixture
def tiny_clf():
    torch.manual_seed(123)
    return add_classification_head(GPTModel(get_config(TINY)).eval())


def _optimizer(model):
    torch.manual_seed(123)
    return torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.1)


def test_train_returns_the_books_five_results(tiny_clf, tiny_loaders, one_thread):
    train_loader, val_loader, _ = tiny_loaders
    assert len(train_loader) == 5
    before = tiny_clf.out_head.weight.clone()
    result = train_classifier_simple(tiny_clf, train_loader, val_loader, _optimizer(tiny_clf), "cpu",
                                     num_epochs=2, eval_freq=2, eval_iter=1, verbose=False)
    assert isinstance(result, tuple) and len(result) == 5
    train_losses, val_losses, train_accs, val_accs, examples_seen = result
    assert len(train_losses) == len(val_losses) == 5  # steps 0, 2, 4, 6, 8 of 10
    assert len(train_accs) == len(val_accs) == 2
    assert examples_seen == 10 * 8
    assert all(math.isfinite(v) and v > 0 for v in train_losses + val_losses)
    assert all(0 <= a <= 1 for a in train_accs + val_accs)
    assert not torch.equal(before, tiny_clf.out_head.weight)  # it trained


def test_callback_receives_eval_and_epoch_events(tiny_clf, tiny_loaders, one_thread):
    train_loader, val_loader, _ = tiny_loaders
    received: list[EvalEvent] = []
    hist = train_classifier_simple(tiny_clf, train_loader, val_loader, _optimizer(tiny_clf), "cpu",
                                   num_epochs=2, eval_freq=2, eval_iter=1, verbose=False,
                                   callback=received.append)
    assert all(isinstance(e, EvalEvent) for e in received)
    events = [e for e in received if e.kind in ("eval", "epoch")]  # other kinds (e.g. "step") may come too
    kinds = [(e.kind, e.epoch, e.global_step) for e in events]
    assert kinds == [("eval", 1, 0), ("eval", 1, 2), ("eval", 1, 4), ("epoch", 1, 4),
                     ("eval", 2, 6), ("eval", 2, 8), ("epoch", 2, 9)]
    evals = [e for e in events if e.kind == "eval"]
    assert [e.train_loss for e in evals] == hist[0] and [e.val_loss for e in evals] == hist[1]
    assert [e.examples_seen for e in evals] == [8, 24, 40, 56, 72]
    epochs = [e for e in events if e.kind == "epoch"]
    assert [e.train_acc for e in epochs] == hist[2] and [e.val_acc for e in epochs] == hist[3]
    assert epochs[-1].history["train_losses"] == hist[0]


@pytest.mark.parametrize("how", ["return", "raise"])
def test_callback_stops_early_and_keeps_results(tiny_clf, tiny_loaders, one_thread, how):
    train_loader, val_loader, _ = tiny_loaders
    seen: list[EvalEvent] = []

    def stop_at_second_eval(event):
        if event.kind != "eval":
            return None
        seen.append(event)
        if len(seen) == 2:
            if how == "raise":
                raise StopTraining
            return True
        return None

    hist = train_classifier_simple(tiny_clf, train_loader, val_loader, _optimizer(tiny_clf), "cpu",
                                   num_epochs=3, eval_freq=2, eval_iter=1, verbose=False,
                                   callback=stop_at_second_eval)
    train_losses, val_losses, train_accs, val_accs, examples_seen = hist
    assert len(seen) == 2
    assert len(train_losses) == len(val_losses) == 2
    assert train_losses == [e.train_loss for e in seen]
    assert train_accs == [] and val_accs == []
    assert examples_seen == 3 * 8  # stopped right after step 2
    assert not tiny_clf.training


# --------------------------------------------------------------------------- metrics on a fake model


class FixedPredictions(nn.Module):
    """Logits (batch, tokens, 2): +2 for the class stored in the last token id, 0 for the other."""

    def forward(self, input_ids):
        pred = input_ids[:, -1]
        logits = torch.zeros(*input_ids.shape, 2)
        logits[torch.arange(len(pred)), -1, pred] = 2.0
        return logits


TARGETS = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
PREDS = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]


def _fixed_loader(batch_size=4):
    inputs = torch.tensor([[7, p] for p in PREDS])
    return DataLoader(TensorDataset(inputs, torch.tensor(TARGETS)), batch_size=batch_size)


def test_classification_metrics_by_hand():
    m = classification_metrics(_fixed_loader(), FixedPredictions(), "cpu")
    # true spam: 3 found, 1 missed; true ham: 4 right, 2 called spam
    assert m["confusion_matrix"] == [[4, 2], [1, 3]]
    assert m["n"] == 10
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))
    ham = m["per_class"][0]
    assert ham["precision"] == pytest.approx(4 / 5) and ham["recall"] == pytest.approx(4 / 6)
    assert ham["support"] == 6 and m["per_class"][1]["support"] == 4
    ham_f1 = 2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6)
    assert m["macro_f1"] == pytest.approx((ham_f1 + 2 * 0.6 * 0.75 / 1.35) / 2)
    # the first two batches only (8 messages)
    m8 = classification_metrics(_fixed_loader(), FixedPredictions(), "cpu", num_batches=2)
    assert m8["n"] == 8 and m8["confusion_matrix"] == [[2, 2], [1, 3]]


def test_accuracy_and_loss_loaders_by_hand():
    model = FixedPredictions()
    assert calc_accuracy_loader(_fixed_loader(), model, "cpu") == pytest.approx(0.7)
    assert calc_accuracy_loader(_fixed_loader(), model, "cpu", num_batches=1) == pytest.approx(3 / 4)
    right, wrong = math.log(1 + math.exp(-2)), math.log(1 + math.exp(2))
    batch_means = [(3 * right + wrong) / 4, (2 * wrong + 2 * right) / 4, 2 * right / 2]
    assert calc_loss_loader(_fixed_loader(), model, "cpu") == pytest.approx(sum(batch_means) / 3)
    assert calc_loss_loader(_fixed_loader(), model, "cpu", num_batches=2) == pytest.approx(sum(batch_means[:2]) / 2)
    assert calc_loss_loader(_fixed_loader(), model, "cpu", num_batches=99) == pytest.approx(sum(batch_means) / 3)


def test_empty_loader_is_nan():
    empty = DataLoader(TensorDataset(torch.zeros(0, 4, dtype=torch.long), torch.zeros(0, dtype=torch.long)),
                       batch_size=8)
    assert len(empty) == 0
    assert math.isnan(calc_loss_loader(empty, FixedPredictions(), "cpu"))
    assert math.isnan(calc_accuracy_loader(empty, FixedPredictions(), "cpu"))


# --------------------------------------------------------------------------- classify_review


@pytest.fixture
def decided_clf(tiny_clf):
    """A tiny classifier whose answer is set by its head's bias; records its input shapes."""
    with torch.no_grad():
        tiny_clf.out_head.weight.zero_()
    shapes: list[tuple[int, ...]] = []
    tiny_clf.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    tiny_clf.shapes = shapes
    return tiny_clf


def _decide(model, cls):
    with torch.no_grad():
        model.out_head.bias.copy_(torch.tensor([5.0, 0.0] if cls == 0 else [0.0, 5.0]))


def test_classify_review_labels(decided_clf, tokenizer):
    text = "You are a winner you have been specially selected to receive $1000 cash or a $2000 award."
    _decide(decided_clf, 1)
    assert classify_review(text, decided_clf, tokenizer, "cpu", max_length=120) == "spam"
    _decide(decided_clf, 0)
    assert classify_review(text, decided_clf, tokenizer, "cpu", max_length=120) == "not spam"
    assert decided_clf.shapes == [(1, 120), (1, 120)]


def test_classify_review_without_max_length(decided_clf, tokenizer):
    text = "Hey, just wanted to check if we're still on for dinner tonight? Let me know!"
    _decide(decided_clf, 0)
    assert classify_review(text, decided_clf, tokenizer, "cpu") == "not spam"  # the book's fails here
    assert decided_clf.shapes == [(1, len(tokenizer.encode(text)))]


def test_classify_review_truncates_to_context(decided_clf, tokenizer):
    text = "Call now to claim your prize, this offer is only valid today. " * 30
    assert len(tokenizer.encode(text)) > 300 > decided_clf.context_length == 256
    _decide(decided_clf, 1)
    assert classify_review(text, decided_clf, tokenizer, "cpu") == "spam"
    assert classify_review(text, decided_clf, tokenizer, "cpu", max_length=2000) == "spam"
    assert decided_clf.shapes == [(1, 256), (1, 256)]


@pytest.mark.parametrize("text", ["", "   \n"])
def test_classify_review_empty_text(decided_clf, tokenizer, text):
    with pytest.raises(ValueError, match="empty"):
        classify_review(text, decided_clf, tokenizer, "cpu", max_length=120)
    assert decided_clf.shapes == []
