"""How noisy an accuracy is, and whether two of them differ by more than noise.

Two sources of noise are in every accuracy the chapter prints:

* **the test sample**: 300 test messages; one message is 0.33 points, and at 95% accuracy
  the 95% interval is about +-2.5 points;
* **the seed**: the head's initial weights and the batch order (and, with random weights,
  the model itself) change from seed to seed.

:func:`summarize` combines both for a setting run with N seeds: the seeds' mean and spread,
and a 95% interval ``mean +- 1.96 * sqrt(p(1-p)/n + s^2/N)`` (the test sample's variance, the
same 300 messages for every seed, plus the seeds' variance of the mean).

**One convention everywhere** (notebooks, lab, CLI, ``book_note``): the 95% interval, worked
out as Wilson's score interval (:func:`wilson_interval`). Unlike the textbook ``p +- 1.96 *
sqrt(p(1-p)/n)``, it never collapses to "+-0.0" at 0% or 100%: 1,040 of 1,040 right gives
99.63-100%, not 100 +- 0.
:func:`compare_with_book` asks whether a difference from a row of the book's bonus table is
within noise, counting the book's own test sample too.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

Z95 = 1.96


def wilson_interval(accuracy: float, n: int) -> tuple[float, float]:
    """The 95% interval (Wilson's score interval) of an accuracy measured on ``n`` items, as
    fractions (low, high). Never empty: at 100% on 1,040 items it is (0.9963, 1.0)."""
    if n <= 0 or not 0 <= accuracy <= 1:
        raise ValueError(f"Need 0 <= accuracy <= 1 and n >= 1; got accuracy={accuracy}, n={n}.")
    z2 = Z95**2
    centre = (accuracy + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 / (1 + z2 / n) * math.sqrt(accuracy * (1 - accuracy) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_halfwidth(accuracy: float, n: int) -> float:
    """Half the width of the 95% interval (:func:`wilson_interval`) of an accuracy measured on
    ``n`` items: the "+-" of the one convention (about 0.025 at 95% on 300 messages)."""
    low, high = wilson_interval(accuracy, n)
    return (high - low) / 2


def interval_text(accuracy: float, n: int, what: str = "messages") -> str:
    """``"95% interval 91.0-96.2% on 300 messages"``: how an accuracy's noise is printed."""
    low, high = wilson_interval(accuracy, n)
    return f"95% interval {100 * low:.1f}-{100 * high:.1f}% on {n:,} {what}"


def differ_beyond_noise(a: float, n_a: int, b: float, n_b: int) -> tuple[bool, float]:
    """Whether two accuracies (on ``n_a`` and ``n_b`` items) differ by more than their noise:
    (answer, the 95% band in fractions), the two half-widths combined in quadrature."""
    band = math.hypot(binomial_halfwidth(a, n_a), binomial_halfwidth(b, n_b))
    return abs(a - b) > band, band


def summarize(accuracies: Sequence[float], n: int) -> dict[str, Any]:
    """Mean, spread (sample standard deviation; 0 for one seed) and a 95% interval of the
    accuracies of one setting run with several seeds, each measured on the same ``n`` items."""
    values = [float(a) for a in accuracies]
    if not values:
        raise ValueError("No accuracies to summarize.")
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    half = math.hypot(binomial_halfwidth(mean, n), Z95 * spread / math.sqrt(len(values)))
    return {"seeds": len(values), "mean": mean, "std": spread, "low": max(0.0, mean - half),
            "high": min(1.0, mean + half), "halfwidth": half, "n": n}


def compare_with_book(accuracies: Sequence[float], n: int, book_accuracy: float,
                      book_n: int = 300) -> dict[str, Any]:
    """Difference between our mean and a book number, its 95% noise band, and whether the
    difference lies within it (the book's number is one seed on its own ``book_n`` messages)."""
    ours = summarize(accuracies, n)
    band = math.hypot(binomial_halfwidth(ours["mean"], n), Z95 * ours["std"] / math.sqrt(ours["seeds"]),
                      binomial_halfwidth(book_accuracy, book_n))
    diff = ours["mean"] - book_accuracy
    within = abs(diff) <= band
    verdict = (f"{100 * diff:+.2f} points from the book's {100 * book_accuracy:.2f}%: "
               + ("within noise" if within else "more than noise")
               + f" (95% band +-{100 * band:.2f} points)")
    return {"difference": diff, "band": band, "within_noise": within, "verdict": verdict}
