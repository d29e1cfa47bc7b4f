"""Base models load once per process and are never changed by a run (gptlib.speed.shared_base);
dropout acts where its scope says (gptlib.classifier.set_dropout), and fast mode's scope keeps
the frozen part reusable."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from gptlib.classifier import add_classification_head, classifier_logits, set_dropout
from gptlib.finetune import FinetuneConfig
from gptlib.model import GPTModel, get_config
from gptlib.speed import shared_base as base_models
from gptlib.speed.cached import CachedClassifier, wrap_for_speed
from gptlib.speed.shared_base import base_model, classifier_from_base, shared_base

TINY = "gpt2-tiny (test)"


@pytest.fixture(autouse=True)
def fresh_base():
    base_models.forget_base()
    yield
    base_models.forget_base()


def test_the_base_is_made_once_and_equals_the_books_initial_weights():
    first = shared_base(TINY, "random", seed=7)
    assert shared_base(TINY, "random", seed=7) is first
    torch.manual_seed(7)
    book = GPTModel(get_config(TINY))
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), book.state_dict().values()))
    assert shared_base(TINY, "random", seed=8) is not first  # another seed: another base


def test_a_runs_classifier_shares_the_frozen_part_and_owns_what_trains():
    base = shared_base(TINY, "random", seed=1)
    clf = classifier_from_base(TINY, "random", trainable="last_block", seed=1)
    base_params = dict(base.named_parameters())
    for name, p in clf.named_parameters():
        if name.startswith("out_head"):
            continue
        shared = p.data_ptr() == base_params[name].data_ptr()
        assert shared == (not p.requires_grad), name
    # the head is the book's: seeded right before it is made, as add_classification_head does
    torch.manual_seed(1)
    book = add_classification_head(GPTModel(get_config(TINY)), trainable="last_block", seed=1)
    assert all(torch.equal(a, b) for a, b in zip(clf.state_dict().values(), book.state_dict().values()))
    # training the run changes nothing of the base
    before = [p.clone() for p in base.parameters()]
    opt = torch.optim.AdamW(clf.parameters(), lr=0.1, weight_decay=0.1)
    x = torch.randint(0, 1000, (2, 6))
    torch.nn.functional.cross_entropy(classifier_logits(clf, x), torch.tensor([0, 1])).backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, base.parameters()))
    assert shared_base(TINY, "random", seed=1) is base
    # all layers trained: every parameter is the run's own
    everything = classifier_from_base(TINY, "random", trainable="all", seed=1)
    assert all(p.data_ptr() != base_params[n].data_ptr() for n, p in everything.named_parameters()
               if not n.startswith("out_head"))


def test_a_base_changed_in_place_is_made_again():
    clf = classifier_from_base(TINY, "random", trainable="last_block", seed=1)
    base = shared_base(TINY, "random", seed=1)
    with torch.no_grad():
        clf.tok_emb.weight.zero_()  # a shared, frozen tensor changed in place
    again = shared_base(TINY, "random", seed=1)
    assert again is not base and again.tok_emb.weight.abs().sum() > 0


def test_base_model_is_a_copy_of_your_own():
    mine = base_model(TINY, "random", drop_rate=0.1, seed=1)
    assert all(p.requires_grad for p in mine.parameters())
    assert {m.p for m in mine.modules() if isinstance(m, nn.Dropout)} == {0.1} and mine.cfg["drop_rate"] == 0.1
    with torch.no_grad():
        mine.tok_emb.weight.zero_()
    assert shared_base(TINY, "random", seed=1).tok_emb.weight.abs().sum() > 0


def _rates(model):
    return [[m.p for m in part.modules() if isinstance(m, nn.Dropout)] for part in (model.drop_emb, *model.trf_blocks)]


def test_dropout_scopes():
    torch.manual_seed(0)
    clf = add_classification_head(GPTModel(get_config(TINY, n_layers=3)), trainable="last_block")
    book = set_dropout(clf, 0.2, "all")
    assert all(p == 0.2 for part in _rates(book) for p in part)
    trainable = set_dropout(clf, 0.2, "trainable")
    assert _rates(trainable)[:3] == [[0.0], [0.0] * 2, [0.0] * 2] and _rates(trainable)[3] == [0.2] * 2
    assert _rates(clf)[3] == [0.0] * 2  # a copy: the input is unchanged
    with pytest.raises(ValueError, match="dropout scope"):
        set_dropout(clf, 0.2, "frozen")
    # fast mode's scope keeps the frozen part reusable while training with dropout
    fast = wrap_for_speed(trainable, "fast")
    assert fast.plan.reuse_in_training() and fast.plan.padding_is_cheap_in_training("last_real")
    assert not CachedClassifier(book).plan.reuse_in_training()


def test_fast_mode_reads_one_position_under_dropout_and_matches_the_plain_path_in_eval():
    torch.manual_seed(0)
    clf = set_dropout(add_classification_head(GPTModel(get_config(TINY, n_layers=3)), trainable="last_block"),
                      0.5, "trainable")
    fast = CachedClassifier(clf, read_with_dropout=True, store=None)
    x = torch.randint(0, 1000, (3, 9))
    clf.eval()
    assert torch.allclose(classifier_logits(fast, x, "last"), classifier_logits(clf, x, "last"), atol=1e-5)
    clf.train()
    assert fast.plan.read_position_on("last") and "not bit-exact" in fast.plan.explain("last")
    a, b = classifier_logits(fast, x, "last"), classifier_logits(fast, x, "last")
    assert not torch.allclose(a, b)  # dropout acts in training mode
    # averaged over many masks, the read position's output approaches the eval-mode one
    torch.manual_seed(1)
    clf.eval()
    target = classifier_logits(fast, x, "last")
    clf.train()
    mean = torch.stack([classifier_logits(fast, x, "last") for _ in range(600)]).mean(0)
    assert (mean - target).abs().max() < 0.35 * target.abs().max() + 0.05
    exact = CachedClassifier(clf, store=None)  # exact mode: no read-position trick under dropout
    assert not exact.plan.read_position_on("last")


def test_config_says_which_scope_runs():
    assert FinetuneConfig(speed="fast").effective().dropout_scope == "trainable"
    assert FinetuneConfig(speed="exact").effective().dropout_scope == "all"
    assert FinetuneConfig(speed="book").effective().dropout_scope == "all"
    assert FinetuneConfig(speed="fast", dropout_scope="all").effective().dropout_scope == "all"
    with pytest.raises(ValueError, match="dropout_scope must be one of"):
        FinetuneConfig(dropout_scope="frozen").check()


def test_unfreezing_or_loading_into_a_run_never_writes_the_base():
    from gptlib.classifier import set_trainable

    base = shared_base(TINY, "random", seed=3)
    before = [p.clone() for p in base.parameters()]
    clf = classifier_from_base(TINY, "random", trainable="last_block", seed=3)
    set_trainable(clf, "all")  # the book's freezing, nothing else ...
    base_models.own_trainable(clf)  # ... so whoever unfreezes more makes those parameters the run's own
    opt = torch.optim.AdamW(clf.parameters(), lr=0.1)
    x = torch.randint(0, 1000, (2, 6))
    torch.nn.functional.cross_entropy(classifier_logits(clf, x), torch.tensor([0, 1])).backward()
    opt.step()
    other = classifier_from_base(TINY, "random", trainable="last_block", seed=3)
    state = {k: torch.zeros_like(v) for k, v in other.state_dict().items()}
    other.load_state_dict(state)  # loading copies first, too
    assert all(torch.equal(a, b) for a, b in zip(before, base.parameters()))
    assert shared_base(TINY, "random", seed=3) is base


@pytest.mark.parametrize("how", ["requires_grad", "data"])
def test_prepare_model_never_changes_the_base_of_the_next_run(small_tsv, tmp_path, one_thread, how):
    """A ``prepare_model`` hook may unfreeze a frozen tensor, or write into one through
    ``.data`` (which no version counter sees): the next run still gets the untouched base."""
    from gptlib.finetune import FinetuneConfig, run_finetune

    base = shared_base(TINY, "random", seed=5)
    before = [p.clone() for p in base.parameters()]

    def hook(model):
        weight = model.trf_blocks[0].att.W_query.weight
        if how == "requires_grad":
            weight.requires_grad = True  # trains with AdamW from here on
        else:
            weight.data.add_(1.0)  # an in-place write no version counter sees

    cfg = FinetuneConfig(model_size=TINY, weights="random", seed=5, data=str(small_tsv), epochs=1,
                         speed="exact", lr=0.1, output=str(tmp_path / "out"), figures=None, device="cpu")
    run_finetune(cfg, progress=False, verbose=False, save=False, prepare_model=hook)
    after = shared_base(TINY, "random", seed=5)
    assert all(torch.equal(a, b) for a, b in zip(before, after.parameters()))


def test_fast_is_a_named_preset_and_the_record_is_never_rewritten():
    from gptlib.settings import PRESETS, SettingError

    fast = FinetuneConfig.preset("fast", epochs=1)
    assert (fast.speed, fast.token, fast.padding, fast.dropout_scope, fast.epochs) == (
        "fast", "last_real", "batch", "trainable", 1)
    plain = FinetuneConfig(speed="fast")  # fast mode's computation with the book's token and padding
    assert (plain.effective().token, plain.effective().padding) == ("last", "max_length")
    assert FinetuneConfig.preset("book") == FinetuneConfig()
    assert set(PRESETS["fast"]) <= {f.name for f in dataclasses.fields(FinetuneConfig)}
    with pytest.raises(SettingError, match="Unknown preset"):
        FinetuneConfig.preset("turbo")
