"""Speed for the open models (Qwen3, Llama 3.2; :mod:`gptlib.models`): the frozen blocks'
output is computed once per message and kept, as :mod:`gptlib.speed.cached` does for GPT-2.

The blocks below the first one that trains have no dropout and do not change, and attention
is causal, so a position's output after them depends only on the tokens up to it. What a
message needs is decided by the token read (:func:`gptlib.speed.plan.needed`): its real
tokens for ``last_real`` and ``mean``, its first for ``first``, the whole padded row for
``last`` and ``mean_padded``. That much is kept per message; the positions after it are
filled with zeros, which only positions that are never read can see. Everything above the
frozen part (the blocks that train, the final norm, the new head) runs as usual, so the
losses equal the plain computation's up to the rounding of batched matmuls (tested).

:meth:`PrefixReuse.warm_up` computes every message of the datasets once, in batches of
similar length, and leaves the set in the process's store (:mod:`gptlib.speed.store`, in
memory and on disk), keyed by a fingerprint of the frozen weights, the architecture, the
dtypes and this code: a second run with other training settings takes it from there. The
read-position-only top block of GPT-2's wrapper is not done here.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from gptlib.classifier import TOKENS, ClassifierRunner, select_token_logits
from gptlib.speed.plan import chunks, needed
from gptlib.speed.store import ActivationSet, ActivationStore, set_digest
from gptlib.support.fingerprint import weights_fingerprint
from gptlib.tokenizer import END_OF_TEXT_ID


def frozen_prefix(model: nn.Module) -> int:
    """How many of the lowest blocks (with the token embedding) are frozen: 0 when the
    embedding itself trains."""
    if any(p.requires_grad for p in model.tok_emb.parameters()):
        return 0
    n = 0
    for block in model.trf_blocks:
        if any(p.requires_grad for p in block.parameters()):
            break
        n += 1
    return n


class PrefixReuse(ClassifierRunner):
    """Runs an open model's classifier with the frozen blocks' output kept per message."""

    def __init__(self, model: nn.Module, pad_token_id: int = END_OF_TEXT_ID,
                 cache_dtype: torch.dtype = torch.float32, store: ActivationStore | None = None):
        super().__init__()
        self.model = model
        self.n_frozen = frozen_prefix(model)
        self.pad_token_id = pad_token_id
        self.cache_dtype = cache_dtype
        self.store = store
        self.kept: dict[tuple[int, ...], torch.Tensor] = {}  # needed token ids -> (positions, emb_dim)
        self.computed_rows = 0  # messages that went through the frozen blocks
        self.warm_source: str | None = None  # "computed", "memory" or "disk" after warm_up

    def _angles(self, n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from gptlib.models.parts import rope_angles

        return rope_angles(self.model.inv_freq, n, like.device, like.dtype)

    @torch.no_grad()
    def _compute(self, rows: list[tuple[int, ...]]) -> list[torch.Tensor]:
        """The frozen part's output for each row (its own length), in one padded batch."""
        longest = max(map(len, rows))
        ids = torch.full((len(rows), longest), self.pad_token_id, dtype=torch.long,
                         device=self.model.tok_emb.weight.device)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row)
        x = self.model.tok_emb(ids)
        cos, sin = self._angles(longest, x)
        for block in self.model.trf_blocks[: self.n_frozen]:
            x = block(x, cos, sin)
        self.computed_rows += len(rows)
        return [x[i, :len(row)].to(self.cache_dtype) for i, row in enumerate(rows)]

    def _prefix(self, in_idx: torch.Tensor, token: str) -> torch.Tensor:
        """(b, T, emb_dim): each row's kept positions, zeros after them."""
        keys = [tuple(needed(row, token, self.pad_token_id)) for row in in_idx.tolist()]
        missing = [k for k in dict.fromkeys(keys) if k not in self.kept]
        if missing:
            self.kept.update(zip(missing, self._compute(missing), strict=True))
        weight = self.model.tok_emb.weight
        x = torch.zeros(in_idx.shape[0], in_idx.shape[1], weight.shape[1], dtype=weight.dtype, device=weight.device)
        for i, key in enumerate(keys):
            x[i, :len(key)] = self.kept[key]
        return x

    def run(self, in_idx: torch.Tensor, token: str = "last") -> torch.Tensor:
        """Logits (b, T, classes), exact at every position the ``token`` choice reads."""
        self.model.check_input(in_idx)
        if self.n_frozen == 0:
            return self.model(in_idx)
        x = self._prefix(in_idx, token)
        cos, sin = self._angles(in_idx.shape[1], x)
        for block in self.model.trf_blocks[self.n_frozen:]:
            x = block(x, cos, sin)
        return self.model.out_head(self.model.final_norm(x))

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        return self.run(in_idx, "mean_padded")  # every position exact: the whole row is kept

    def classify_logits(self, input_ids: torch.Tensor, token: str = "last",
                        pad_token_id: int = END_OF_TEXT_ID) -> torch.Tensor:
        return select_token_logits(self.run(input_ids, token), input_ids, token, pad_token_id)

    def identity(self) -> dict:
        """What decides the frozen output, for the store's key (as GPT-2's wrapper has it)."""
        import gptlib.models.parts as parts

        source = inspect.getsource(parts) + inspect.getsource(type(self.model)) + inspect.getsource(PrefixReuse)
        return {"family": type(self.model).__name__, "source": hashlib.sha256(source.encode()).hexdigest(),
                "weights": weights_fingerprint([self.model.tok_emb, *self.model.trf_blocks[: self.n_frozen]]),
                "config": {k: v for k, v in self.model.cfg.items() if k != "num_classes"},
                "n_frozen_blocks": self.n_frozen, "cache_dtype": str(self.cache_dtype),
                "device": self.model.tok_emb.weight.device.type}

    def warm_up(self, datasets: Iterable, token: str = "last", batch_tokens: int = 4096,
                progress: bool = False) -> None:
        """Compute what every message of the datasets needs once (or take the set from the
        store) before the loop. Rows padded per batch that the token reads whole (``last``)
        depend on their batch: those are computed as batches come, and kept."""
        datasets = list(datasets)
        if self.n_frozen == 0 or (TOKENS[token].depends_on == "row" and
                                  any(getattr(ds, "padding", "max_length") == "batch" for ds in datasets)):
            return
        rows = sorted(dict.fromkeys(tuple(needed(ids, token, self.pad_token_id))
                                    for ds in datasets for ids in ds.encoded_texts), key=len, reverse=True)
        key = set_digest(self.identity(), rows) if self.store is not None else None
        found = self.store.get(key) if key is not None else None
        if found is not None and found[0].messages == rows:
            entry, self.warm_source = found
            self.kept.update(entry.rows())
            return
        for chunk in tqdm(chunks(rows, batch_tokens), desc="frozen layers, once per message", unit="batch",
                          disable=not progress):
            self.kept.update(zip(chunk, self._compute(chunk), strict=True))
        self.warm_source = "computed"
        if key is not None:
            slab = torch.cat([self.kept[r] for r in rows]).cpu()
            self.store.put(key, ActivationSet(rows, slab), meta={"messages": len(rows), "k": self.n_frozen})

    def explain(self) -> str:
        n = len(self.model.trf_blocks)
        if self.n_frozen == 0:
            return "nothing is frozen below the first block that trains, so nothing is reused"
        return (f"reusing the output of the embedding + {self.n_frozen} frozen block(s) of {n}, kept per message "
                f"({self.cache_dtype}); the blocks that train, the final norm and the head run as usual")
