"""Sentences about a run are computed from it (gptlib.study.describe), the one noise convention
(gptlib.support.noise, Wilson), and the time estimate a notebook prints above a slow cell
(gptlib.study.cost)."""

from __future__ import annotations

import pytest

from gptlib.notebook import load_profile
from gptlib.study.cost import estimate_time, run_forwards
from gptlib.study.describe import compare_runs, describe_examples, describe_run
from gptlib.support.noise import (
    binomial_halfwidth,
    differ_beyond_noise,
    interval_text,
    wilson_interval,
)

# The stored offline run of notebook 05 (the review's reading of it).
VAL_LOSSES = [0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.18, 0.16, 0.15, 0.145, 0.14, 0.139, 0.185]


def stored_run(**changes):
    args = dict(train_accs=[0.85, 0.95, 0.95, 0.975, 1.0], val_accs=[0.85, 0.85, 0.85, 0.825, 0.875],
                val_losses=VAL_LOSSES, eval_freq=50, batches_per_epoch=130, messages_per_eval=40,
                final={"train": 1.0, "validation": 0.9262}, sizes={"train": 1040, "validation": 149})
    return describe_run(**{**args, **changes})


def test_the_stored_run_reads_as_overfitting_with_a_flat_validation_curve():
    d = stored_run()
    assert d.facts["gap_beyond_noise"] and "overfits" in str(d)
    assert d.facts["flat"] and "cannot tell which epoch" in str(d)
    assert d.facts["best_loss_step"] == 550 and d.facts["best_loss_epoch"] == 5
    assert "levels off" not in str(d)


def test_a_rising_curve_and_a_small_gap_read_otherwise():
    d = stored_run(val_accs=[0.5, 0.7, 0.9, 0.95, 0.95], final={"train": 0.96, "validation": 0.95},
                   val_losses=[0.7, 0.5, 0.3, 0.2], messages_per_eval=400)
    assert not d.facts["gap_beyond_noise"] and "no overfitting" in str(d)
    assert d.facts["flat"] is False and d.facts["levels_off_at"] == 4
    assert "still falling" in str(d)


def test_compare_runs_says_within_noise_only_when_it_is():
    assert not compare_runs("LoRA", 0.70, "last block", 0.77, 300).facts["beyond_noise"]
    far = compare_runs("LoRA", 0.97, "last block", 0.77, 300)
    assert far.facts["beyond_noise"] and "above" in str(far)


def test_examples_name_the_one_that_came_out_wrong_with_its_probability():
    d = describe_examples([("You are a winner", "spam", "not spam", 0.22), ("Dinner?", "not spam", "not spam", 0.01)])
    assert d.facts["wrong"] == 1 and "P(spam) 0.22" in str(d) and "where spam was expected" in str(d)
    assert "All 2 come out as expected" in str(describe_examples([("a", "spam", "spam", 0.9)] * 2))


def test_the_interval_never_collapses_at_100_percent():
    low, high = wilson_interval(1.0, 1040)
    assert high == 1.0 and 0.995 < low < 0.998
    assert "99.6-100.0%" in interval_text(1.0, 1040)
    assert binomial_halfwidth(0.95, 300) == pytest.approx(0.0252, abs=2e-4)
    assert differ_beyond_noise(0.95, 300, 0.80, 300)[0] and not differ_beyond_noise(0.95, 300, 0.94, 300)[0]
    with pytest.raises(ValueError):
        wilson_interval(1.2, 10)


def test_the_counted_work_matches_the_benchmarks_within_a_fifth():
    """benchmarks/results/full.txt counted 190 (book), 32.2 (exact) and 8.1 (fast) TFLOP for the
    chapter's run; one batch of 8 x 120 tokens through gpt2-small's blocks is 163 GFLOP."""
    sizes = dict(n_layers=12, train=1045, validation=149, test=300, epochs=5, batch_size=8, eval_freq=50, eval_iter=5)
    for kind, tflop in (("book", 190), ("exact", 32.2), ("fast", 8.1)):
        counted = run_forwards(kind, **sizes)[0] * 0.163
        assert abs(counted - tflop) / tflop < 0.2, (kind, counted, tflop)
    assert run_forwards("lora", **sizes)[0] > run_forwards("book", **sizes)[0]
    with pytest.raises(ValueError):
        run_forwards("turbo", **sizes)


def test_estimate_time_prints_minutes_here_and_scales_with_epochs():
    profile = load_profile("offline")
    one, five = (estimate_time(profile.replace(epochs=e).config, "exact") for e in (1, 5))
    assert five.seconds > 1.1 * one.seconds  # exact: the frozen part, run once, is most of the work
    assert "minutes here" in five.text() or "seconds here" in five.text()
    fast = estimate_time(profile.config, "fast")
    assert fast.warm_seconds is not None and fast.warm_seconds < fast.seconds and "warm" in fast.text()


def test_validation_above_training_beyond_noise_is_not_called_within_noise():
    d = stored_run(final={"train": 0.55, "validation": 0.90}, sizes={"train": 200, "validation": 149})
    assert "ends above training" in str(d) and "within" not in str(d).split("\n")[0]


def test_an_evaluation_only_cell_counts_one_pass_per_batch():
    total, warm = run_forwards("evaluate", n_layers=12, train=0, validation=149, test=300, epochs=5, batch_size=8,
                               eval_freq=50, eval_iter=5)
    assert total == 57 and warm == 0
    assert "evaluation only" in estimate_time(load_profile("offline").config, "evaluate").text()
