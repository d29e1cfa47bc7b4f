"""gptlib.classifier: the new head, what trains, which token is read, checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gptlib.classifier import (
    add_classification_head,
    last_real_index,
    load_classifier,
    parameter_table,
    save_classifier,
    select_token_logits,
    trainable_summary,
)
from gptlib.model import GPTModel, count_parameters, get_config

pytestmark = pytest.mark.usefixtures("gptlib_home")

P = 50256  # the pad id


def block_params(d: int) -> int:
    """Parameters of one transformer block with qkv bias, from the shapes alone."""
    attention = 3 * (d * d + d) + (d * d + d)  # W_query, W_key, W_value, out_proj
    feed_forward = (d * 4 * d + 4 * d) + (4 * d * d + d)
    norms = 2 * (2 * d)  # norm1, norm2: scale and shift
    return attention + feed_forward + norms


def expected_trainable(cfg: dict, trainable: str, num_classes: int = 2) -> int:
    d = cfg["emb_dim"]
    head = d * num_classes + num_classes
    final_norm = 2 * d
    if trainable == "head":
        return head
    n = {"last_block": 1, "last_2_blocks": 2, "all": cfg["n_layers"]}[trainable]
    total = head + final_norm + n * block_params(d)
    if trainable == "all":
        total += cfg["vocab_size"] * d + cfg["context_length"] * d
    return total


@pytest.fixture(scope="module")
def small_meta():
    """gpt2-small (124M) on the meta device: shapes without memory or init time."""
    with torch.device("meta"):
        return GPTModel(get_config("gpt2-small (124M)"))


@pytest.fixture
def tiny():
    torch.manual_seed(123)
    return GPTModel(get_config("gpt2-tiny (test)")).eval()


def test_book_default_trainable_count(small_meta):
    clf = add_classification_head(small_meta)
    assert count_parameters(clf, trainable_only=True) == 7_090_946
    assert clf.out_head.in_features == 768 and clf.out_head.out_features == 2
    assert clf.out_head.bias is not None


@pytest.mark.parametrize("trainable", ["head", "last_block", "last_2_blocks", "all"])
def test_trainable_counts(small_meta, trainable):
    cfg = get_config("gpt2-small (124M)")
    clf = add_classification_head(small_meta, trainable=trainable)
    assert count_parameters(clf, trainable_only=True) == expected_trainable(cfg, trainable)
    total = count_parameters(clf)
    assert total == (cfg["vocab_size"] + cfg["context_length"]) * 768 + 12 * block_params(768) + 2 * 768 + 768 * 2 + 2


def test_trainable_by_name(small_meta):
    clf = add_classification_head(small_meta, trainable="last_2_blocks")
    trains = {name for name, p in clf.named_parameters() if p.requires_grad}
    assert all(n.startswith(("trf_blocks.10.", "trf_blocks.11.", "final_norm.", "out_head.")) for n in trains)
    assert any(n.startswith("trf_blocks.10.") for n in trains)
    assert "tok_emb.weight" not in trains and "trf_blocks.9.att.W_query.weight" not in trains
    assert add_classification_head(small_meta, trainable=2).state_dict().keys() == clf.state_dict().keys()
    assert count_parameters(add_classification_head(small_meta, trainable=2), trainable_only=True) == \
        count_parameters(clf, trainable_only=True)


@pytest.mark.parametrize("bad", ["some", "last_13_blocks", 13, -1])
def test_bad_trainable_choice(small_meta, bad):
    with pytest.raises(ValueError):
        add_classification_head(small_meta, trainable=bad)


def test_num_classes(small_meta):
    clf = add_classification_head(small_meta, num_classes=3, trainable="head")
    assert clf.out_head.out_features == 3
    assert count_parameters(clf, trainable_only=True) == 768 * 3 + 3
    with pytest.raises(ValueError, match="num_classes"):
        add_classification_head(small_meta, num_classes=1)


def test_original_model_unchanged(tiny):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    flags = {k: p.requires_grad for k, p in tiny.named_parameters()}
    clf = add_classification_head(tiny)
    assert clf is not tiny
    assert tiny.out_head.out_features == 50257 and tiny.out_head.bias is None
    assert {k: p.requires_grad for k, p in tiny.named_parameters()} == flags
    assert all(flags.values())
    after = tiny.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    # the classifier shares no tensors with the original
    assert clf.tok_emb.weight.data_ptr() != tiny.tok_emb.weight.data_ptr()
    assert torch.equal(clf.tok_emb.weight, tiny.tok_emb.weight)
    # inplace=True changes the model itself
    same = add_classification_head(tiny, inplace=True)
    assert same is tiny and tiny.out_head.out_features == 2


def test_head_initialisation_matches_the_book(tiny):
    clf = add_classification_head(tiny)
    torch.manual_seed(123)
    book_head = nn.Linear(64, 2)
    assert torch.equal(clf.out_head.weight, book_head.weight)
    assert torch.equal(clf.out_head.bias, book_head.bias)


def test_do_you_have_time(tiny, tokenizer):
    ids = tokenizer.encode("Do you have time")
    assert ids == [5211, 345, 423, 640]
    clf = add_classification_head(tiny)
    with torch.no_grad():
        out = clf(torch.tensor(ids).unsqueeze(0))
    assert out.shape == (1, 4, 2)


# --------------------------------------------------------------------------- which token is read


@pytest.fixture
def padded():
    input_ids = torch.tensor([
        [11, 12, 13, P, P],
        [21, P, P, P, P],
        [31, 32, 33, 34, 35],
        [P, P, P, P, P],
    ])
    # logits[b, t] = [10 b + t, -(10 b + t)]: every position is recognisable
    values = torch.tensor([[10.0 * b + t for t in range(5)] for b in range(4)])
    logits = torch.stack([values, -values], dim=-1)
    return input_ids, logits


def test_select_last_and_first(padded):
    input_ids, logits = padded
    assert select_token_logits(logits, input_ids, "last").tolist() == [[4, -4], [14, -14], [24, -24], [34, -34]]
    assert select_token_logits(logits, input_ids, "first").tolist() == [[0, -0], [10, -10], [20, -20], [30, -30]]


def test_select_last_real(padded):
    input_ids, logits = padded
    assert last_real_index(input_ids).tolist() == [2, 0, 4, 0]
    out = select_token_logits(logits, input_ids, "last_real")
    assert out.tolist() == [[2, -2], [10, -10], [24, -24], [30, -30]]


def test_select_mean(padded):
    input_ids, logits = padded
    out = select_token_logits(logits, input_ids, "mean")
    expected = [(0 + 1 + 2) / 3, 10, (20 + 21 + 22 + 23 + 24) / 5, 0]  # all-pad row: zeros
    assert torch.allclose(out[:, 0], torch.tensor(expected))
    assert torch.allclose(out[:, 1], -torch.tensor(expected))


def test_select_other_pad_id(padded):
    input_ids, logits = padded
    ids = torch.where(input_ids == P, torch.tensor(0), input_ids)
    assert select_token_logits(logits, ids, "last_real", pad_token_id=0).tolist() == \
        select_token_logits(logits, input_ids, "last_real").tolist()


def test_select_unknown_token(padded):
    with pytest.raises(ValueError, match="middle"):
        select_token_logits(padded[1], padded[0], "middle")


# --------------------------------------------------------------------------- checkpoints and tables


def test_save_load_round_trip(tiny, tmp_path):
    clf = add_classification_head(tiny, trainable="last_2_blocks")
    with torch.no_grad():  # weights no fresh model would have
        clf.out_head.weight.add_(torch.randn_like(clf.out_head.weight))
        clf.trf_blocks[-1].ff.layers[0].bias.add_(0.5)
    x = torch.tensor([[5211, 345, 423, 640, P, P], [40, 1101, 994, 13, 50, 60]])
    with torch.no_grad():
        expected = clf(x)
    path = save_classifier(clf, tmp_path / "ckpt" / "classifier.pth", max_length=6, token="last_real",
                           pad_token_id=P, class_names=["not spam", "spam"])
    assert path.is_file() and not list(path.parent.glob("*.part"))
    loaded, meta = load_classifier(path)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
    assert meta["max_length"] == 6 and meta["token"] == "last_real" and meta["pad_token_id"] == P
    assert meta["class_names"] == ["not spam", "spam"]
    assert meta["config"]["num_classes"] == 2 and meta["config"]["emb_dim"] == 64
    assert loaded.state_dict().keys() == clf.state_dict().keys()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_classifier(tmp_path / "missing.pth")
    torch.save({"weights": 1}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a gptlib classifier"):
        load_classifier(tmp_path / "other.pth")


def test_trainable_summary_and_parameter_table(tiny):
    clf = add_classification_head(tiny)
    total = count_parameters(clf)
    trainable = count_parameters(clf, trainable_only=True)
    assert trainable == expected_trainable(get_config("gpt2-tiny (test)"), "last_block")
    summary = trainable_summary(clf)
    assert f"trainable {trainable:,}" in summary
    assert f"frozen {total - trainable:,}" in summary
    assert f"total {total:,}" in summary
    assert f"{100 * trainable / total:.2f}%" in summary

    table = parameter_table(clf)
    assert list(table["part"]) == ["tok_emb", "pos_emb", "trf_blocks[0]", "trf_blocks[1]", "final_norm", "out_head"]
    assert table["parameters"].sum() == total
    assert table["trainable"].sum() == trainable
    assert (table["parameters"] == table["trainable"] + table["frozen"]).all()
    rows = table.set_index("part")
    assert rows.loc["trf_blocks[1]", "trainable"] == block_params(64)
    assert rows.loc["trf_blocks[0]", "trainable"] == 0
    assert rows.loc["out_head", "parameters"] == 64 * 2 + 2
    assert rows.loc["tok_emb", "frozen"] == 50257 * 64
