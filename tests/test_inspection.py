"""gptlib.study.inspection: read-out curve, padding probe, error analysis and the bag-of-words baseline."""

from __future__ import annotations

import ast
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch

from gptlib.classifier import add_classification_head
from gptlib.data import map_labels, random_split, read_sms_spam
from gptlib.model import GPTModel, get_config
from gptlib.study import inspection
from gptlib.study.inspection import (
    NATURAL_SPAM_RATE,
    misclassified,
    padding_probe,
    plot_error_analysis,
    plot_padding_probe,
    plot_readout_curve,
    readout_curve,
    score_messages,
    threshold_explorer,
    threshold_table,
    train_bow_baseline,
)
from gptlib.train import classify_review, predict_proba

SPAM = "Congratulations! You have won a free holiday. Call now to claim your prize."


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    model = add_classification_head(GPTModel(get_config("gpt2-tiny (test)")), seed=1)
    with torch.no_grad():  # a sharper head than the default init, so that P(spam) moves visibly
        model.out_head.weight.mul_(20)
    return model.eval()


@pytest.fixture(scope="module")
def splits(small_tsv):
    return random_split(map_labels(read_sms_spam(small_tsv, strict=True)), 0.7, 0.1)


@pytest.mark.parametrize("max_length", [None, 40])
def test_readout_curve_ends_at_predict_proba(classifier, tokenizer, one_thread, max_length):
    curve = readout_curve(SPAM, classifier, tokenizer, max_length=max_length)
    n_real = len(tokenizer.encode(SPAM))
    assert len(curve) == (max_length or n_real)
    assert curve["is_pad"].sum() == (max_length - n_real if max_length else 0)
    proba = predict_proba(SPAM, classifier, tokenizer, "cpu", max_length=max_length)[1]
    assert curve["p_spam"].iloc[-1] == pytest.approx(proba, abs=1e-6)
    label = classify_review(SPAM, classifier, tokenizer, "cpu", max_length=max_length)
    assert label == ("spam" if proba > 0.5 else "not spam")
    # the last real token is what token="last_real" reads, padded or not
    last_real = predict_proba(SPAM, classifier, tokenizer, "cpu", max_length=max_length, token="last_real")[1]
    assert curve["p_spam"].iloc[n_real - 1] == pytest.approx(last_real, abs=1e-6)
    plt.close(plot_readout_curve(curve, titles=["test"]))


def test_padding_probe_last_real_is_constant(classifier, tokenizer, one_thread):
    probe = padding_probe(SPAM, classifier, tokenizer, max_pads=8)
    assert list(probe["pads"]) == list(range(9))
    assert probe["p_spam_last_real"].max() - probe["p_spam_last_real"].min() < 1e-5
    assert probe["p_spam_last"].iloc[0] == pytest.approx(probe["p_spam_last_real"].iloc[0], abs=1e-6)
    assert probe["p_spam_last"].max() - probe["p_spam_last"].min() > 1e-3
    plt.close(plot_padding_probe(probe))


def test_error_analysis(classifier, tokenizer, splits, one_thread):
    _, _, test = splits
    scores = score_messages(test["Text"], test["Label"], classifier, tokenizer, max_length=30)
    assert len(scores) == len(test)
    assert scores["loss"].min() >= 0
    first = predict_proba(test["Text"].iloc[0], classifier, tokenizer, "cpu", max_length=30)[1]
    assert scores["p_spam"].iloc[0] == pytest.approx(first, abs=1e-5)
    wrong = misclassified(scores)
    assert (wrong["predicted"] != wrong["label"]).all()
    assert list(wrong["loss"]) == sorted(wrong["loss"], reverse=True)
    table = threshold_table(scores)
    assert table["recall"].iloc[0] == 1.0 or scores["p_spam"].min() == 0
    assert table["tp"].iloc[-1] + table["fp"].iloc[-1] == 0  # threshold 1: nothing flagged
    assert (table[["tp", "fp", "fn", "tn"]].sum(axis=1) == len(scores)).all()
    plt.close(plot_error_analysis(scores))


def test_precision_at_prior_matches_reweighting():
    scores = pd.DataFrame({"label": [1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
                           "p_spam": [0.9, 0.8, 0.6, 0.2, 0.7, 0.4, 0.3, 0.1, 0.1, 0.05]})
    row = threshold_table(scores, [0.5], prior=0.2).iloc[0]
    assert (row.tp, row.fp, row.fn, row.tn) == (3, 1, 1, 5)
    assert row.precision == pytest.approx(0.75) and row.recall == pytest.approx(0.75)
    w = (4 / 6) * (1 - 0.2) / 0.2  # each ham message weighted so that spam is 20% of the weight
    assert row.precision_at_prior == pytest.approx(3 / (3 + w * 1))
    assert row.accuracy_at_prior == pytest.approx((3 + w * 5) / (4 + w * 6))
    assert 0 < NATURAL_SPAM_RATE < 0.2


def test_threshold_explorer_headless(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "1")
    scores = pd.DataFrame({"label": [1, 0], "p_spam": [0.8, 0.3]})
    table = threshold_explorer(scores, thresholds=(0.5,))
    assert isinstance(table, pd.DataFrame) and table["recall"].iloc[0] == 1.0


@pytest.mark.parametrize("units", ["bpe", "words"])
def test_bow_baseline_is_deterministic_and_beats_chance(splits, units):
    train, val, test = splits
    a = train_bow_baseline(train, val, test, units=units, seed=7)
    b = train_bow_baseline(train, val, test, units=units, seed=7)
    assert a.accuracy == b.accuracy and a.losses == b.losses
    assert torch.equal(a.linear.weight, b.linear.weight)
    assert a.losses[-1] < a.losses[0]
    assert a.accuracy["train"] > 0.9
    assert a.accuracy["test"] >= 0.75  # 12 test messages, about half spam: chance is ~50%
    top = a.top_units(5)
    assert len(top) == 5


def test_module_does_not_import_ipywidgets_at_import():
    tree = ast.parse(Path(inspection.__file__).read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = [a.name for n in top for a in n.names] + [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert not [name for name in names if name.startswith(("ipywidgets", "IPython"))]
