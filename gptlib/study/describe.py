"""Sentences about a run, worked out from the run itself.

A notebook stored as a document must never say one thing while its output shows another. So
where the prose would state what a result shows (the train/validation gap, whether validation
levels off, the best epoch, whether two runs differ, whether an example came out right), the
notebook prints one of these instead, computed from the numbers of the run it describes:

* :func:`describe_run`: the gap, the per-epoch validation curve against its noise, and where
  validation loss was lowest (ideas 8 and 9 of the chapter, read from the run just made);
* :func:`compare_runs`: whether two accuracies differ by more than noise;
* :func:`describe_examples`: each example's label with its P(spam), against the expected one.

Every noise figure is the one convention of :mod:`gptlib.support.noise` (the 95% interval).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gptlib.support.noise import binomial_halfwidth, differ_beyond_noise, wilson_interval


@dataclass(frozen=True)
class Description:
    """Sentences (shown as a bullet list in a notebook) and the numbers they were worked out from."""

    sentences: tuple[str, ...]
    facts: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return "\n".join(f"- {s}" for s in self.sentences)

    def _repr_markdown_(self) -> str:
        return "\n".join(f"- {s}" for s in self.sentences)

    __repr__ = __str__


def _points(x: float) -> str:
    return f"{100 * x:.2f}%"


def describe_run(train_accs: Sequence[float], val_accs: Sequence[float], val_losses: Sequence[float],
                 *, eval_freq: int, batches_per_epoch: int, messages_per_eval: int,
                 final: Mapping[str, float] | None = None, sizes: Mapping[str, int] | None = None) -> Description:
    """What one training run shows, in sentences computed from it.

    ``train_accs``/``val_accs`` are the per-epoch accuracies and ``val_losses`` the validation
    losses every ``eval_freq`` steps (``train_classifier_simple``'s lists); ``messages_per_eval``
    is how many messages each per-epoch accuracy counts (``eval_iter * batch_size``);
    ``final``/``sizes`` the accuracies on whole splits and their sizes (keys train, validation).
    """
    if not val_accs or not val_losses:
        raise ValueError("describe_run needs at least one epoch's accuracy and one validation loss.")
    said: list[str] = []
    facts: dict = {}
    if final and sizes and "train" in final and "validation" in final:
        gap = final["train"] - final["validation"]
        beyond, band = differ_beyond_noise(final["train"], sizes["train"], final["validation"], sizes["validation"])
        facts.update(gap=gap, gap_beyond_noise=beyond)
        if beyond and gap > 0:
            said.append(f"Training accuracy ends at {_points(final['train'])} and validation at "
                        f"{_points(final['validation'])}: a gap of {100 * gap:.1f} points, more than the "
                        f"±{100 * band:.1f} points of noise. The model fits the messages it trained on better "
                        "than new ones: it overfits a little (idea 9: dropout or weight decay push back).")
        elif beyond:
            said.append(f"Validation accuracy ({_points(final['validation'])}) ends above training "
                        f"({_points(final['train'])}) by {-100 * gap:.1f} points, more than the ±{100 * band:.1f} "
                        "points of noise: the validation messages happen to be easier for this model, which "
                        "small splits allow; it is no sign of overfitting.")
        else:
            said.append(f"Training accuracy ends at {_points(final['train'])} and validation at "
                        f"{_points(final['validation'])}: a gap of {100 * gap:+.1f} points, within the "
                        f"±{100 * band:.1f} points of noise, so this run shows no overfitting to speak of.")
    low, high = min(val_accs), max(val_accs)
    noise = binomial_halfwidth(sum(val_accs) / len(val_accs), messages_per_eval)
    curve = ", ".join(f"{100 * a:.1f}" for a in val_accs)
    facts.update(val_range=high - low, val_noise=noise)
    if len(val_accs) == 1:
        said.append(f"Validation accuracy after the one epoch: {curve}% on {messages_per_eval} messages; "
                    "one point says nothing about where it levels off.")
    elif high - low <= 2 * noise:
        facts["flat"] = True
        said.append(f"Validation accuracy per epoch ({curve}%) moves by {100 * (high - low):.1f} points, within "
                    f"the ±{100 * noise:.1f} points of noise of the {messages_per_eval} messages it counts: flat, "
                    "so on its own this curve cannot tell which epoch was best.")
    else:
        facts["flat"] = False
        first_top = next(i for i, a in enumerate(val_accs) if a >= high - noise) + 1
        facts["levels_off_at"] = first_top
        said.append(f"Validation accuracy per epoch ({curve}%) rises by {100 * (high - low):.1f} points, more than "
                    f"the ±{100 * noise:.1f} points of noise of its {messages_per_eval} messages, and is within "
                    f"noise of its best from epoch {first_top} on.")
    best = min(range(len(val_losses)), key=val_losses.__getitem__)
    step = best * eval_freq  # train_classifier_simple evaluates at steps 0, eval_freq, 2 * eval_freq, ...
    epoch = step // max(batches_per_epoch, 1) + 1
    facts.update(best_loss=val_losses[best], best_loss_step=step, best_loss_epoch=epoch)
    last = val_losses[-1]
    if best == len(val_losses) - 1:
        said.append(f"Validation loss was lowest at the end ({last:.3f}, step {step}, epoch {epoch}): it was "
                    "still falling, so more epochs might still help (idea 8: watch this curve to choose them).")
    else:
        said.append(f"Validation loss was lowest at step {step} (epoch {epoch}: {val_losses[best]:.3f}) and ends at "
                    f"{last:.3f}: after that, more training no longer helped new messages (idea 8: the epoch where "
                    "validation loss is lowest is a good place to stop).")
    return Description(tuple(said), facts)


def compare_runs(name_a: str, acc_a: float, name_b: str, acc_b: float, n: int,
                 what: str = "test accuracy") -> Description:
    """Whether run A's accuracy differs from run B's (each on ``n`` messages) by more than noise."""
    beyond, band = differ_beyond_noise(acc_a, n, acc_b, n)
    diff = 100 * (acc_a - acc_b)
    if beyond:
        word = "above" if diff > 0 else "below"
        sentence = (f"{name_a} ends {abs(diff):.2f} points {word} {name_b} in {what} ({_points(acc_a)} against "
                    f"{_points(acc_b)} on {n} messages), more than the ±{100 * band:.1f} points of noise.")
    else:
        sentence = (f"{name_a} and {name_b} differ by {diff:+.2f} points in {what} ({_points(acc_a)} against "
                    f"{_points(acc_b)} on {n} messages), within the ±{100 * band:.1f} points of noise: "
                    "this comparison cannot tell them apart.")
    return Description((sentence,), {"difference": acc_a - acc_b, "band": band, "beyond_noise": beyond})


def describe_examples(rows: Sequence[tuple[str, str, str, float]]) -> Description:
    """Each example as ``label (P(spam) 0.97) <- text``, then which came out as expected.

    ``rows`` holds (text, expected label, predicted label, P(spam)) per example."""
    said = [f"{predicted} (P(spam) {p_spam:.2f}) <- {text}" for text, _, predicted, p_spam in rows]
    wrong = [(text, expected, predicted, p) for text, expected, predicted, p in rows if predicted != expected]
    if not wrong:
        said.append(f"All {len(rows)} come out as expected.")
    for text, expected, predicted, p in wrong:
        said.append(f"'{text[:40]}...' comes out {predicted} here (P(spam) {p:.2f}), where {expected} was expected.")
    return Description(tuple(said), {"wrong": len(wrong)})


def accuracy_with_interval(accuracy: float, n: int) -> str:
    """``"94.00% (95% interval 90.7-96.2%, 300 messages)"``."""
    low, high = wilson_interval(accuracy, n)
    return f"{_points(accuracy)} (95% interval {100 * low:.1f}-{100 * high:.1f}%, {n:,} messages)"
