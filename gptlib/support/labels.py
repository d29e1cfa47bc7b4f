"""Labels against the classifier's head: every target must be one of the head's classes
(0 .. K-1), checked before the first step, so a wrong file ends in one sentence that names the
labels and the classes instead of ``IndexError: Target 2 is out of bounds`` from inside the loss."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def check_label_range(labels_by_split: Mapping[str, Iterable[int]], num_classes: int,
                      class_names: Sequence[str] | None = None, ignore_index: int | None = None) -> None:
    """Raise ValueError naming the split and its labels outside 0 .. ``num_classes`` - 1
    (``ignore_index``, the target the loss skips, is allowed)."""
    names = f" ({', '.join(class_names)})" if class_names else ""
    for split, labels in labels_by_split.items():
        bad = sorted({int(label) for label in labels if not 0 <= int(label) < num_classes and label != ignore_index})
        if bad:
            raise ValueError(f"The {split} data has label id(s) {bad[:5]}, but the classifier has {num_classes} "
                             f"classes{names}: ids must be 0..{num_classes - 1}. Give the head as many outputs "
                             "as the data has classes, or fix the labels.")


def head_classes(model: Any) -> int | None:
    """How many classes a classifier's head has (``out_head.out_features``; through a speed-up's
    wrapper too); None where the model has no such head."""
    for candidate in (model, getattr(model, "model", None)):
        features = getattr(getattr(candidate, "out_head", None), "out_features", None)
        if isinstance(features, int):
            return features
    return None


def check_loaders_fit_head(model: Any, loaders: Mapping[str, Any], ignore_index: int | None = None) -> None:
    """:func:`check_label_range` for loaders whose dataset lists its ``labels`` (the book's
    ``SpamDataset`` does), against the model's head; nothing to check otherwise."""
    k = head_classes(model)
    if k is None:
        return
    labels = {split: loader.dataset.labels for split, loader in loaders.items()
              if isinstance(getattr(getattr(loader, "dataset", None), "labels", None), (list, tuple))}
    check_label_range(labels, k, ignore_index=ignore_index)
