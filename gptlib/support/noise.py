"""How noisy an accuracy is, and whether two of them differ by more than noise.

Two sources of noise are in every accuracy the chapter prints:

* **the test sample**: 300 test messages; one message is 0.33 points, and at 95% accuracy
  the binomial 95% interval is about +-2.5 points;
* **the seed**: the head's initial weights and the batch order (and, with random weights,
  the model itself) change from seed to seed.

:func:`summarize` combines both for a setting run with N seeds: the seeds' mean and spread,
and a 95% interval ``mean +- 1.96 * sqrt(p(1-p)/n + s^2/N)`` (the test sample's variance, the
same 300 messages for every seed, plus the seeds' variance of the mean).
:func:`compare_with_book` asks whether a difference from a row of the book's bonus table is
within noise, counting the book's own test sample too.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

Z95 = 1.96


def binomial_halfwidth(accuracy: float, n: int) -> float:
    """Half-width of the normal-approximation 95% interval of an accuracy measured on ``n`` items."""
    if n <= 0 or not 0 <= accuracy <= 1:
        raise ValueError(f"Need 0 <= accuracy <= 1 and n >= 1; got accuracy={accuracy}, n={n}.")
    return Z95 * math.sqrt(accuracy * (1 - accuracy) / n)


def summarize(accuracies: Sequence[float], n: int) -> dict[str, Any]:
    """Mean, spread (sample standard deviation; 0 for one seed) and a 95% interval of the
    accuracies of one setting run with several seeds, each measured on the same ``n`` items."""
    values = [float(a) for a in accuracies]
    if not values:
        raise ValueError("No accuracies to summarize.")
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    half = Z95 * math.sqrt(mean * (1 - mean) / n + spread**2 / len(values))
    return {"seeds": len(values), "mean": mean, "std": spread, "low": max(0.0, mean - half),
            "high": min(1.0, mean + half), "halfwidth": half, "n": n}


def compare_with_book(accuracies: Sequence[float], n: int, book_accuracy: float,
                      book_n: int = 300) -> dict[str, Any]:
    """Difference between our mean and a book number, its 95% noise band, and whether the
    difference lies within it (the book's number is one seed on its own ``book_n`` messages)."""
    ours = summarize(accuracies, n)
    band = Z95 * math.sqrt(ours["mean"] * (1 - ours["mean"]) / n + ours["std"] ** 2 / ours["seeds"]
                           + book_accuracy * (1 - book_accuracy) / book_n)
    diff = ours["mean"] - book_accuracy
    within = abs(diff) <= band
    verdict = (f"{100 * diff:+.2f} points from the book's {100 * book_accuracy:.2f}%: "
               + ("within noise" if within else "more than noise")
               + f" (95% band +-{100 * band:.2f} points)")
    return {"difference": diff, "band": band, "within_noise": within, "verdict": verdict}
