"""The bonus table's options: causal mask off, averaged logits, gradient accumulation,
ignore_index, no padding, and the memory check before a run."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from gptlib.classifier import (
    add_classification_head,
    select_token_logits,
    set_causal_mask,
    set_trainable,
)
from gptlib.data import SpamDataset
from gptlib.finetune import FinetuneConfig, run_finetune
from gptlib.model import GPTModel, get_config
from gptlib.speed.memory import NotEnoughMemory, estimate_run_memory
from gptlib.train import calc_loss_batch, train_classifier_simple

TINY = "gpt2-tiny (test)"
pytestmark = pytest.mark.usefixtures("gptlib_home")


def _classifier() -> GPTModel:
    torch.manual_seed(123)
    return add_classification_head(GPTModel(get_config(TINY)).eval())


def _ids(rows: int = 3, tokens: int = 10) -> torch.Tensor:
    torch.manual_seed(0)
    ids = torch.randint(0, 50000, (rows, tokens))
    ids[0, 6:] = 50256  # a padded row
    return ids


def test_causal_mask_off_equals_the_books_model_without_its_mask():
    from llms_from_scratch import ch04

    ours = set_causal_mask(_classifier(), False)
    book = ch04.GPTModel(get_config(TINY))
    book.out_head = nn.Linear(64, 2)
    book.load_state_dict(_classifier().state_dict())
    for block in book.trf_blocks:
        block.att.mask.zero_()  # nothing masked: every token sees every token
    book.eval()
    x = _ids()
    with torch.no_grad():
        assert torch.allclose(ours(x), book(x), atol=1e-5)
        assert not torch.allclose(_classifier()(x), book(x), atol=1e-3)  # the mask did matter
    assert ours.cfg["causal_mask"] is False
    assert _classifier().cfg.get("causal_mask", True) is True  # the input was not changed


def test_causal_mask_off_survives_save_and_load(tmp_path):
    from gptlib.classifier import load_classifier, save_classifier

    model = set_causal_mask(_classifier(), False)
    path = save_classifier(model, tmp_path / "c.pth", max_length=10, token="last", pad_token_id=50256)
    again, _ = load_classifier(path)
    x = _ids()
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


def test_mean_padded_is_the_bonus_scripts_average_over_every_position():
    model, x = _classifier(), _ids()
    with torch.no_grad():
        logits = model(x)
        assert torch.equal(select_token_logits(logits, x, "mean_padded"), logits.mean(dim=1))
        real_only = select_token_logits(logits, x, "mean")
    assert torch.equal(real_only[1:], logits[1:].mean(dim=1))  # rows without pads agree
    assert not torch.allclose(real_only[0], logits[0].mean(dim=0))  # the padded row does not


@pytest.fixture
def sixteen(tiny_csvs, tokenizer):
    return torch.utils.data.Subset(SpamDataset(tiny_csvs.train, tokenizer), range(16))


def _train(dataset, batch_size: int, steps: int):
    model = _classifier()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(5))
    torch.manual_seed(123)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    history = train_classifier_simple(model, loader, loader, opt, "cpu", 2, 1000, 1, verbose=False,
                                      accumulation_steps=steps)
    return model, history


def test_batch_1_with_8_accumulation_steps_makes_batch_8s_updates(sixteen, one_thread):
    big, h_big = _train(sixteen, 8, 1)
    small, h_small = _train(sixteen, 1, 8)
    assert h_big[4] == h_small[4] == 32  # examples seen
    # W_key's bias shifts every score of a row alike, so softmax cancels it: its gradient is zero
    # up to rounding, and Adam, which divides by the gradient's size, turns rounding into steps.
    trained = [n for n, p in big.named_parameters() if p.requires_grad and not n.endswith("W_key.bias")]
    changed = dict(_classifier().named_parameters())
    for name in trained:
        a, b = dict(big.named_parameters())[name], dict(small.named_parameters())[name]
        assert torch.allclose(a, b, atol=1e-6), name
        assert not torch.equal(a, changed[name])  # training did move them
    without, _ = _train(sixteen, 1, 1)  # no accumulation: 32 smaller updates, another model
    assert not torch.allclose(dict(without.named_parameters())[trained[0]],
                              dict(big.named_parameters())[trained[0]], atol=1e-4)


def test_ignore_index_leaves_those_targets_out_of_the_loss():
    model, x = _classifier(), _ids()
    targets = torch.tensor([0, 1, 1])
    with torch.no_grad():
        every = torch.nn.functional.cross_entropy(model(x)[:, -1], targets, reduction="none")
        kept = calc_loss_batch(x, targets, model, "cpu", ignore_index=1)
        same = calc_loss_batch(x, targets, model, "cpu", ignore_index=50256)  # row 18: no target is 50256
    assert kept.item() == pytest.approx(every[0].item())
    assert same.item() == pytest.approx(every.mean().item())


def test_trainable_lora_is_not_a_freezing_choice():
    with pytest.raises(ValueError, match="add_lora"):
        set_trainable(_classifier(), "lora")


@pytest.mark.parametrize("settings, message", [
    ({"padding": "none", "batch_size": 8}, "batch_size 1"),
    ({"accumulation_steps": 0}, "accumulation_steps"),
    ({"lora_rank": 0}, "lora_rank"),
    ({"lora_alpha": float("nan")}, "lora_alpha"),
    ({"lora_scaling": "sqrt"}, "lora_scaling"),
    ({"train_csv": "a.csv"}, "all three"),
])
def test_bad_settings_are_refused_by_name(settings, message):
    with pytest.raises(ValueError, match=message):
        FinetuneConfig(**settings).check()


def test_memory_estimates_follow_what_trains():
    small = {t: estimate_run_memory("gpt2-small (124M)", t, batch_size=8, tokens=120) for t in ("last_block", "lora", "all")}
    assert small["last_block"].trainable_params == 7_090_946
    assert small["lora"].trainable_params == 2_666_528
    assert small["all"].trainable_params == 124_441_346
    assert small["last_block"].total < small["lora"].total < small["all"].total
    xl = estimate_run_memory("gpt2-xl (1558M)", "all", batch_size=8, tokens=120)
    assert xl.total > 30 * 2**30  # weights, gradients and AdamW's two averages for 1.5B numbers


def test_a_run_that_cannot_fit_is_refused_before_anything_loads(small_tsv, tmp_path, monkeypatch):
    import gptlib.speed.memory

    monkeypatch.setattr(gptlib.speed.memory, "available_bytes", lambda device: 2**20)  # 1 MiB free
    cfg = FinetuneConfig(model_size=TINY, weights="random", data=str(small_tsv), output=str(tmp_path / "run"),
                         figures=None, epochs=1)
    with pytest.raises(NotEnoughMemory, match="MiB free"):
        run_finetune(cfg, progress=False, verbose=False)
    assert not (tmp_path / "run" / "classifier.pth").exists()


@pytest.mark.parametrize("settings", [
    {"trainable": "lora", "lora_rank": 4},
    {"trainable": "lora", "lora_head": "full", "lora_merged": True, "lora_scaling": "alpha/rank"},
    {"causal_mask": False},
    {"token": "mean_padded"},
    {"padding": "none", "batch_size": 1, "accumulation_steps": 8},
    {"ignore_index": 50256},
])
def test_each_option_runs_end_to_end(settings, small_tsv, tmp_path, one_thread):
    cfg = FinetuneConfig(model_size=TINY, weights="random", data=str(small_tsv), output=str(tmp_path / "run"),
                         figures=None, epochs=1, eval_freq=2, **settings)
    result = run_finetune(cfg, progress=False, verbose=False)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["config"]["token"] == cfg.token and 0 <= result.test_accuracy <= 1
    if settings.get("trainable") == "lora":  # the adapters alone, and a plain checkpoint with them folded in
        assert (tmp_path / "run" / "lora_adapter.pt").stat().st_size < (tmp_path / "run" / "classifier.pth").stat().st_size
        from gptlib.classifier import load_classifier

        model, _ = load_classifier(tmp_path / "run" / "classifier.pth")
        assert isinstance(model.out_head, nn.Linear)
