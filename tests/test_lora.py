"""gptlib.lora: appendix E's LoRA, checked against the book's package (llms_from_scratch 1.0.19)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from gptlib.classifier import add_classification_head, trainable_summary
from gptlib.data import SpamDataset, create_data_loaders
from gptlib.lora import (
    LinearWithLoRA,
    LoRAError,
    add_lora,
    describe_lora,
    load_lora,
    lora_layers,
    merge_lora,
    save_lora,
)
from gptlib.model import GPTModel, count_parameters, get_config
from gptlib.train import calc_accuracy_loader, train_classifier_simple

TINY = "gpt2-tiny (test)"


def _classifier(seed: int = 123) -> GPTModel:
    torch.manual_seed(seed)
    return add_classification_head(GPTModel(get_config(TINY)).eval(), seed=seed)


@pytest.fixture
def loaders(tiny_csvs, tokenizer):
    train = SpamDataset(tiny_csvs.train, tokenizer)
    val = SpamDataset(tiny_csvs.val, tokenizer, max_length=train.max_length)
    test = SpamDataset(tiny_csvs.test, tokenizer, max_length=train.max_length)
    return create_data_loaders(train, val, test, batch_size=8)


def test_gpt2_small_has_the_appendix_count_of_trainable_parameters():
    with torch.device("meta"):
        torch.manual_seed(123)
        clf = add_classification_head(GPTModel(get_config("gpt2-small (124M)")))
        lora = add_lora(clf, rank=16, alpha=16, inplace=True)
    assert count_parameters(lora, trainable_only=True) == 2_666_528  # appendix E's figure
    assert trainable_summary(lora).startswith("trainable 2,666,528 |")
    block = sum(p.numel() for n, p in lora.trf_blocks[0].named_parameters() if ".lora." in n)
    head = sum(p.numel() for n, p in lora.out_head.named_parameters() if n.startswith("lora."))
    assert (block, head) == (221_184, 12_320)
    assert len(lora_layers(lora)) == 12 * 6 + 1  # every Linear, the new head included


def test_head_full_also_trains_the_heads_own_weights():
    lora = add_lora(_classifier(), head="full")
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert {"out_head.linear.weight", "out_head.linear.bias"} <= trainable
    assert all(".lora." in n or n.startswith("out_head.linear.") for n in trainable)


def test_b_zero_keeps_the_frozen_models_outputs_and_accuracy(loaders):
    clf = _classifier()
    lora = add_lora(clf)
    x = next(iter(loaders[0]))[0]
    with torch.no_grad():
        assert torch.equal(lora(x), clf(x))
    assert calc_accuracy_loader(loaders[2], lora, "cpu") == calc_accuracy_loader(loaders[2], clf, "cpu")
    assert all(torch.count_nonzero(layer.lora.B) == 0 for layer in lora_layers(lora).values())


def test_the_input_model_is_not_changed():
    clf = _classifier()
    before = copy.deepcopy(clf.state_dict())
    add_lora(clf)
    assert all(isinstance(m, nn.Linear) for m in [clf.out_head, clf.trf_blocks[0].att.W_query])
    assert all(torch.equal(before[k], v) for k, v in clf.state_dict().items())


def _trained(lora: nn.Module, loaders, epochs: int = 1):
    torch.manual_seed(123)
    opt = torch.optim.AdamW(lora.parameters(), lr=5e-3, weight_decay=0.1)
    return train_classifier_simple(lora, loaders[0], loaders[1], opt, "cpu", epochs, 1, 1, verbose=False)


def test_merged_form_gives_the_same_numbers(loaders, one_thread):
    plain, merged = add_lora(_classifier()), add_lora(_classifier(), merged=True)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), merged.state_dict().values()))
    h1, h2 = _trained(plain, loaders), _trained(merged, loaders)
    assert h1[0] == pytest.approx(h2[0], abs=1e-5)
    assert h1[1] == pytest.approx(h2[1], abs=1e-5)


def test_merge_lora_folds_the_trained_adapters_in(loaders, one_thread):
    lora = add_lora(_classifier(), scaling="alpha/rank")
    _trained(lora, loaders)
    assert any(torch.count_nonzero(layer.lora.B) for layer in lora_layers(lora).values())
    folded = merge_lora(lora)
    assert not lora_layers(folded) and isinstance(folded.out_head, nn.Linear)
    x = next(iter(loaders[2]))[0]
    with torch.no_grad():
        assert torch.allclose(folded(x), lora(x), atol=1e-5)
    assert set(folded.state_dict()) == set(_classifier().state_dict())  # a plain classifier again


def test_adapter_saved_alone_and_loaded_onto_the_base(tmp_path, loaders, one_thread):
    lora = add_lora(_classifier(), head="full")
    _trained(lora, loaders)
    path = save_lora(lora, tmp_path / "adapter.pt")
    whole = tmp_path / "whole.pt"
    torch.save(lora.state_dict(), whole)
    assert path.stat().st_size < whole.stat().st_size / 20  # the adapter is a small file
    again = load_lora(_classifier(), path)
    x = next(iter(loaders[2]))[0]
    with torch.no_grad():
        assert torch.equal(again(x), lora(x))
    assert "effective scale 16" in describe_lora(again)
    with pytest.raises(LoRAError, match="trained on other weights"):
        load_lora(_classifier(seed=7), path)  # another base model
    with pytest.raises(LoRAError, match="not a gptlib LoRA adapter"):
        load_lora(_classifier(), whole)
    with pytest.raises(LoRAError, match="not found"):
        load_lora(_classifier(), tmp_path / "missing.pt")


def test_settings_are_checked():
    with pytest.raises(LoRAError, match="lora_scaling"):
        add_lora(_classifier(), scaling="sqrt")
    with pytest.raises(LoRAError, match="rank"):
        add_lora(_classifier(), rank=0)
    with pytest.raises(LoRAError, match="already has LoRA"):
        add_lora(add_lora(_classifier()))


# ---------------------------------------------------------------- the book's package, side by side


def _book_lora(alpha: float, rank: int = 8):
    """The book's GPTModel and LoRA code, on our tiny model's weights, with the appendix's order."""
    from llms_from_scratch import appendix_e, ch04

    ours = _classifier()
    book = ch04.GPTModel(get_config(TINY))
    book.out_head = nn.Linear(64, 2)
    book.load_state_dict(ours.state_dict())
    book.eval()
    for p in book.parameters():
        p.requires_grad = False
    torch.manual_seed(321)
    appendix_e.replace_linear_with_lora(book, rank=rank, alpha=alpha)
    return book


def _our_lora(alpha: float, scaling: str, rank: int = 8):
    clf = _classifier()
    torch.manual_seed(321)
    return add_lora(clf, rank=rank, alpha=alpha, scaling=scaling, inplace=True)


@pytest.mark.parametrize("scaling, ours_alpha, book_alpha", [("alpha", 4.0, 4.0), ("alpha/rank", 16.0, 2.0)])
def test_equals_the_books_appendix_e_over_an_epoch(loaders, one_thread, scaling, ours_alpha, book_alpha):
    from llms_from_scratch import ch06

    book, ours = _book_lora(book_alpha), _our_lora(ours_alpha, scaling)
    book_a = [m.lora.A for m in book.modules() if type(m).__name__ == "LinearWithLoRA"]
    our_a = [layer.lora.A for layer in lora_layers(ours).values()]
    assert len(book_a) == len(our_a) == 13 and all(torch.equal(a, b) for a, b in zip(book_a, our_a))
    assert count_parameters(ours, trainable_only=True) == sum(p.numel() for p in book.parameters() if p.requires_grad)
    results = []
    for model, train in ((book, ch06.train_classifier_simple), (ours, train_classifier_simple)):
        torch.manual_seed(123)  # appendix E's notebook: AdamW, lr 8e-4, weight decay 0.1
        opt = torch.optim.AdamW(model.parameters(), lr=8e-4, weight_decay=0.1)
        results.append(train(model, loaders[0], loaders[1], opt, "cpu", 1, 1, 2))
    (b_train, b_val, *_), (o_train, o_val, *_) = results
    diff = max(abs(x - y) for x, y in zip(b_train + b_val, o_train + o_val))
    print(f"\nLoRA ({scaling}) vs llms_from_scratch.appendix_e: max loss difference {diff:.2e} "
          f"over {len(o_train)} evaluations")
    assert len(o_train) == len(b_train) == 5 and diff <= 1e-6
    assert isinstance(ours.out_head, LinearWithLoRA)
