"""The fast paths (gptlib.speed.cached) give the plain path's results, and switch themselves off where
they would not be exact."""

from __future__ import annotations

import pytest
import torch

from gptlib.classifier import TOKEN_CHOICES, add_classification_head, classifier_logits
from gptlib.data import SpamDataset, create_data_loaders
from gptlib.model import GPTModel, get_config
from gptlib.speed import wrap as speed_wrap
from gptlib.speed.batching import LengthGroupedBatchSampler
from gptlib.speed.cached import CachedClassifier, wrap_for_speed
from gptlib.speed.plan import estimate_cache_bytes
from gptlib.tokenizer import get_tokenizer
from gptlib.train import calc_accuracy_loader, train_classifier_simple

PAD = 50256


def _model(trainable="last_block", n_layers=3, drop_rate=0.0, seed=0):
    torch.manual_seed(seed)
    base = GPTModel(get_config("gpt2-tiny (test)", n_layers=n_layers, drop_rate=drop_rate))
    return add_classification_head(base, trainable=trainable, seed=seed + 1)


def _batch():
    torch.manual_seed(42)
    x = torch.randint(0, 50000, (5, 16))
    x[0, 9:] = PAD
    x[1, 2:] = PAD
    x[3, 15:] = PAD
    return x


@pytest.mark.parametrize("trainable", ["head", "last_block", "last_2_blocks", "all"])
@pytest.mark.parametrize("token", TOKEN_CHOICES)  # every choice of the one table
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_cached_logits_equal_plain(trainable, token, mode):
    model = _model(trainable)
    getattr(model, mode)()
    fast = CachedClassifier(model)
    x = _batch()
    plain = classifier_logits(model, x, token)
    first = classifier_logits(fast, x, token)   # fills the cache
    second = classifier_logits(fast, x, token)  # reads it
    assert torch.allclose(plain, first, atol=1e-5), (plain - first).abs().max()
    assert torch.allclose(plain, second, atol=1e-5)
    if fast.plan.reuse_on():
        assert fast.stats["hits"] >= x.shape[0]


def test_gradients_equal_plain():
    model = _model("last_block")
    model.train()
    x, y = _batch(), torch.tensor([0, 1, 1, 0, 1])
    loss = torch.nn.functional.cross_entropy(classifier_logits(model, x, "last"), y)
    loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    fast = CachedClassifier(model)
    loss = torch.nn.functional.cross_entropy(classifier_logits(fast, x, "last"), y)
    loss.backward()
    for name, grad in plain.items():
        got = dict(model.named_parameters())[name].grad
        assert got is not None and torch.allclose(grad, got, atol=1e-5), name


def test_tricks_switch_off_with_dropout_in_training():
    model = _model("last_block", drop_rate=0.2)
    fast = CachedClassifier(model)
    model.train()
    assert not fast.plan.reuse_on() and not fast.plan.read_position_on("last")
    assert not fast.plan.reuse_in_training()
    assert "no reuse" in fast.plan.explain("last")
    x = _batch()
    torch.manual_seed(7)
    plain = classifier_logits(model, x, "last")
    torch.manual_seed(7)
    same = classifier_logits(fast, x, "last")  # same random numbers drawn, same result
    assert torch.equal(plain, same)
    model.eval()  # no dropout in eval mode: the tricks are exact again
    assert fast.plan.reuse_on() and fast.plan.read_position_on("last")
    assert not fast.plan.reuse_in_training()  # but not while training
    assert not fast.plan.padding_is_cheap_in_training("last")
    book = CachedClassifier(_model("last_block"))
    assert book.plan.reuse_in_training() and book.plan.padding_is_cheap_in_training("last_real")
    assert not book.plan.padding_is_cheap_in_training("mean")
    assert not CachedClassifier(_model("last_2_blocks")).plan.padding_is_cheap_in_training("last")
    assert not fast.plan.read_position_on("mean")


def test_cache_forgets_when_a_frozen_weight_changes():
    model = _model("last_block")
    model.eval()
    fast = CachedClassifier(model)
    x = _batch()
    before = classifier_logits(fast, x, "last")
    with torch.no_grad():
        model.trf_blocks[0].att.W_query.weight.mul_(1.5)
    after = classifier_logits(fast, x, "last")
    assert not torch.allclose(before, after)
    assert torch.allclose(after, classifier_logits(model, x, "last"), atol=1e-5)


def test_cache_is_bounded_and_results_stay_right():
    model = _model("last_block")
    model.eval()
    fast = CachedClassifier(model, max_cache_bytes=2 * 16 * 64 * 4)  # room for two rows
    x = _batch()
    out = classifier_logits(fast, x, "last")
    assert fast.cache_bytes <= fast.max_cache_bytes
    assert fast.stats["not_kept"] == x.shape[0] - 2
    assert torch.allclose(out, classifier_logits(model, x, "last"), atol=1e-5)
    # what is kept was copied out of the batch's block of memory, so that block can be freed
    kept = list(fast._cache.values())
    assert all(t.untyped_storage().nbytes() == t.numel() * t.element_size() for t in kept)


def test_duplicate_messages_are_computed_and_kept_once():
    model = _model("last_block")
    model.eval()
    fast = CachedClassifier(model)
    x = _batch()
    x = torch.cat([x, x[:2]])  # rows 5 and 6 repeat rows 0 and 1
    out = classifier_logits(fast, x, "last_real")
    assert len(fast._cache) == 5 and fast.stats["misses"] == 7
    assert torch.allclose(out, classifier_logits(model, x, "last_real"), atol=1e-5)
    assert torch.allclose(out[5:], out[:2], atol=1e-6)  # the same message, the same logits
    again = classifier_logits(fast, x, "last_real")
    assert fast.stats["hits"] == 7 and torch.equal(again, out)


@pytest.fixture()
def tiny_datasets():
    tok = get_tokenizer()
    texts = ["win a free prize now, call 0800", "see you at six?", "ok", "URGENT! claim your reward",
             "are we still on for dinner tonight? let me know", "txt STOP to end", "lol yes", "\"quoted\" hi"]
    import pandas as pd

    df = pd.DataFrame({"Label": [1, 0, 0, 1, 0, 1, 0, 0], "Text": texts})
    train = SpamDataset(df, tok)
    return train, SpamDataset(df.iloc[:4], tok, max_length=train.max_length), \
        SpamDataset(df.iloc[4:], tok, max_length=train.max_length)


@pytest.mark.parametrize("token", ["last", "last_real"])
def test_estimate_matches_warm_cache(tiny_datasets, token):
    model = _model("last_block")
    model.eval()
    fast = CachedClassifier(model)
    state = torch.get_rng_state()
    fast.warm_up(tiny_datasets, token=token, batch_tokens=40)
    assert torch.equal(state, torch.get_rng_state())  # warm-up draws no random numbers
    assert fast.cache_bytes == estimate_cache_bytes(tiny_datasets, token, 64)
    hits = fast.stats["hits"]
    loaders = create_data_loaders(*tiny_datasets, batch_size=2)
    calc_accuracy_loader(loaders[1], fast, "cpu", token=token)
    assert fast.stats["hits"] > hits


def test_speed_exact_training_equals_book_path(tiny_datasets):
    results = []
    for speed in ("book", "exact"):
        model = _model("last_block")
        loaders = create_data_loaders(*tiny_datasets, batch_size=2, seed=123)
        torch.manual_seed(123)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
        runner = speed_wrap(model, speed)  # once, before the loop
        res = train_classifier_simple(runner, loaders[0], loaders[1], opt, "cpu", num_epochs=3,
                                      eval_freq=2, eval_iter=2, verbose=False)
        results.append((res, calc_accuracy_loader(loaders[2], model, "cpu")))
    (book, acc_book), (exact, acc_exact) = results
    for a, b in zip(book[:2], exact[:2]):
        assert len(a) == len(b) and max(abs(u - v) for u, v in zip(a, b)) < 1e-4
    assert book[2:] == exact[2:] and acc_book == acc_exact


def test_wrap_for_speed_choices():
    model = _model()
    assert wrap_for_speed(model, "book") is model
    assert isinstance(wrap_for_speed(model, "exact"), CachedClassifier)
    with pytest.raises(ValueError, match="speed must be one of"):
        wrap_for_speed(model, "turbo")


def test_length_grouped_batches_cover_everything_once():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 11]
    torch.manual_seed(0)
    sampler = LengthGroupedBatchSampler(lengths, batch_size=3, drop_last=True, window=2)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat)) == 9
    # inside a batch, messages are of similar length: sorted within each window
    for b in batches:
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)
    torch.manual_seed(0)
    assert list(LengthGroupedBatchSampler(lengths, 3, True, 2)) == batches  # repeatable


@pytest.mark.parametrize(("drop_rate", "scope", "trainable", "grouped"),
                         [(0.0, None, "last_block", False), (0.1, None, "last_block", False),
                          (0.1, "all", "last_block", True), (0.0, None, "all", True),
                          (0.0, None, "last_2_blocks", True)])
def test_fast_mode_groups_by_length_only_where_it_saves_work(small_tsv, tmp_path, monkeypatch, one_thread,
                                                            drop_rate, scope, trainable, grouped):
    """Where training computes only the last block's read position over kept activations,
    padding costs next to nothing: fast mode keeps the book's shuffled batches, also with
    dropout in the part that trains (fast mode's dropout scope). Elsewhere (dropout in the
    frozen blocks, or more than one block training) it groups messages by length."""
    import gptlib.finetune as finetune

    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs["train_batch_sampler"] is not None)
        return create_data_loaders(*args, **kwargs)

    monkeypatch.setattr(finetune, "create_data_loaders", spy)
    cfg = finetune.FinetuneConfig.preset("fast", model_size="gpt2-tiny (test)", weights="random", data=str(small_tsv),
                                         epochs=1, drop_rate=drop_rate, trainable=trainable,
                                         dropout_scope=scope, output=str(tmp_path / "out"), figures=None, device="cpu")
    result = finetune.run_finetune(cfg, progress=False, verbose=False, save=False)
    assert seen == [grouped]
    assert result.config["dropout_scope"] == (scope or "trainable")
    assert result.config["token"] == "last_real" and result.config["padding"] == "batch"
