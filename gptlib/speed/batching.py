"""Batches of messages of similar length: with per-batch padding, few pads are computed.

Fast mode draws its training batches this way (``gptlib.speed.prepare`` decides when); the
book's shuffled batches mix short and long messages.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Sampler


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches of messages of similar length, so per-batch padding computes few pads.

    Each epoch: shuffle all indices, sort each window of ``batch_size * window`` by length,
    cut into batches, shuffle the batch order. Uses torch's global random state, so a seed
    makes it repeatable.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, drop_last: bool = True, window: int = 50):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.window = window

    def __iter__(self):
        perm = torch.randperm(len(self.lengths)).tolist()
        span = self.batch_size * self.window
        ordered = []
        for start in range(0, len(perm), span):
            ordered += sorted(perm[start: start + span], key=lambda i: -self.lengths[i])
        batches = [ordered[i: i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        for b in torch.randperm(len(batches)).tolist():
            yield batches[b]

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
