"""Fast fine-tuning: skip the work whose result is already known.

With the book's settings, blocks 0..10 are frozen and have no dropout, so they compute the
same activations for the same message in every epoch and every evaluation. And in the one
block that trains, only the read position needs its query, attention output, feed-forward,
final norm and head (keys and values are still needed for every position it sees).

:class:`CachedClassifier` wraps a classifier and applies each trick only where it is exact:

* **reuse**: the output of the frozen prefix (embeddings + the leading frozen blocks) is kept
  per message, when the prefix has no active dropout (``drop_rate == 0`` or eval mode).
  What is kept depends on the read token: the whole padded row for ``"last"`` and
  ``"mean_padded"``, only the real
  tokens for ``"last_real"``/``"mean"`` (pads come after them, and the causal mask means they
  cannot change them), one token for ``"first"``.
* **read position only**: in the last block, when its dropout is inactive and the token read
  is one position (``"last"``, ``"first"``, ``"last_real"``; not the two means).

Neither applies without the causal mask or with LoRA adapters (:func:`speed_blocker`).

Where a condition fails, that trick switches itself off and the plain computation runs;
``explain()`` says which tricks are on. All the gptlib training and evaluation functions work
with the wrapper unchanged: it is a :class:`gptlib.classifier.ClassifierRunner`, whose
``classify_logits`` they call. Whole sets of frozen activations go to :mod:`gptlib.speed.store`, so
the next run with the same frozen part (in this process or a later one) skips that work.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from gptlib.classifier import ClassifierRunner, select_token_logits
from gptlib.model import GPTModel
from gptlib.settings import SPEEDS
from gptlib.speed.kernels import bf16_is_fast, block_at_read, packed_attention
from gptlib.speed.plan import Plan, Survey, chunks, needed, row_lengths, speed_blocker
from gptlib.speed.reuse import PrefixReuse
from gptlib.speed.store import (
    ActivationSet,
    ActivationStore,
    default_store,
    set_digest,
    weights_fingerprint,
)
from gptlib.tokenizer import END_OF_TEXT_ID

_USE_DEFAULT_STORE = object()


@functools.lru_cache(maxsize=1)
def prefix_source_digest() -> str:
    """sha256 of the source that computes the frozen part: ``gptlib/model.py`` (the blocks),
    ``gptlib/speed/kernels.py`` and :meth:`CachedClassifier._prefix`. Part of every stored
    set's key, so an edit to any of them gives new entries instead of stale activations."""
    from gptlib import model as model_module
    from gptlib.speed import kernels

    digest = hashlib.sha256()
    for module in (model_module, kernels):
        digest.update(Path(inspect.getfile(module)).read_bytes())
    digest.update(inspect.getsource(CachedClassifier._prefix).encode())
    return digest.hexdigest()


class CachedClassifier(ClassifierRunner):
    """A classifier that reuses frozen activations and computes only the read position.

    ``cache_dtype`` is the dtype of the kept activations (float32 is exact; bfloat16 halves the
    memory). ``compute_dtype=torch.bfloat16`` runs the frozen prefix under bf16 autocast (fast
    on CPUs with AMX and on recent GPUs; not bit-exact). ``max_cache_bytes`` bounds the memory
    the kept activations may take; past it, new messages are computed without being kept.
    ``store``: where ``warm_up`` finds and leaves whole sets of activations for other runs
    (:mod:`gptlib.speed.store`; the process's default store unless given, ``None`` for none).
    ``read_with_dropout``: also compute only the read position when the last block has active
    dropout (the same distribution of dropout masks as the plain path, drawn from a different
    random stream, so not bit-exact: fast mode's choice).
    """

    def __init__(self, model: GPTModel, cache_dtype: torch.dtype = torch.float32,
                 compute_dtype: torch.dtype | None = None, max_cache_bytes: int = 4 * 2**30,
                 store: ActivationStore | None | object = _USE_DEFAULT_STORE, read_with_dropout: bool = False):
        super().__init__()
        self.model = model
        self.cache_dtype = cache_dtype
        self.compute_dtype = compute_dtype
        self.max_cache_bytes = max_cache_bytes
        self.store = default_store() if store is _USE_DEFAULT_STORE else store
        self.read_with_dropout = read_with_dropout
        self._cache: dict[tuple, torch.Tensor] = {}
        self._cache_bytes = 0
        self._stamp: tuple | None = None
        self.stats = {"hits": 0, "misses": 0, "not_kept": 0}
        self.warm_source: str | None = None  # where warm_up found the activations: computed/memory/disk
        self._blocked = speed_blocker(model) is not None
        self.plan = Plan(model, read_with_dropout)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["model"], name)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        return self.model(in_idx)

    # -- the frozen prefix -------------------------------------------------------------------
    def _check_stamp(self, survey: Survey) -> None:
        """Forget kept activations if a frozen weight was changed in place since they were made."""
        stamp = (survey.k, tuple((id(p), p._version) for p in survey.prefix_params))
        if stamp != self._stamp:
            self.clear_cache()
            self._stamp = stamp

    def clear_cache(self) -> None:
        self._cache.clear()
        self._cache_bytes = 0

    @property
    def cache_bytes(self) -> int:
        return self._cache_bytes

    def _autocast(self, device: torch.device):
        if self.compute_dtype in (None, torch.float32):
            return nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.compute_dtype)

    @torch.no_grad()
    def _prefix(self, rows: list[torch.Tensor], k: int) -> torch.Tensor:
        """The frozen prefix's output for the real tokens of ``rows``, packed: (sum of lengths, d).

        Each row's tokens are computed as the plain forward pass computes them, but the
        position-wise work (norms, projections, feed-forward: nearly all of it) runs on the
        packed real tokens, so no padding is computed; only attention sees the rows padded
        on the right, where the causal mask keeps every real token from seeing a pad.
        """
        m = self.model
        device = rows[0].device
        lengths = [len(r) for r in rows]
        width = max(lengths)
        ids = torch.cat(rows)
        positions = torch.cat([torch.arange(n, device=device) for n in lengths])
        slots = positions + torch.repeat_interleave(
            torch.arange(len(rows), device=device) * width, torch.tensor(lengths, device=device))
        with self._autocast(device):
            x = m.drop_emb(m.tok_emb(ids) + m.pos_emb(positions))
            for block in m.trf_blocks[:k]:
                x = x + block.drop_resid(packed_attention(block.att, block.norm1(x), slots, len(rows), width))
                x = x + block.drop_resid(block.ff(block.norm2(x)))
        return x

    def prefix_activations(self, input_ids: torch.Tensor, lengths: list[int],
                           survey: Survey | None = None) -> torch.Tensor:
        """Frozen-prefix output for each row's first ``lengths[i]`` tokens, right-padded with zeros
        (float32). ``survey``: ``_survey()`` when the caller has it already."""
        survey = survey or self.plan.survey()
        self._check_stamp(survey)
        rows = input_ids.tolist()
        keys = [tuple(row[:n]) for row, n in zip(rows, lengths, strict=True)]
        fresh = self._compute_missing(input_ids, lengths, keys, survey.k)
        acts = [fresh[i] if i in fresh else self._cache[key] for i, key in enumerate(keys)]
        x = torch.nn.utils.rnn.pad_sequence(acts, batch_first=True)
        return x.to(device=input_ids.device, dtype=torch.float32)

    def _compute_missing(self, input_ids: torch.Tensor, lengths: list[int], keys: list[tuple],
                         k: int) -> dict[int, torch.Tensor]:
        """Run the frozen prefix on the rows not kept yet and keep what fits under the bound;
        returns {row: its activations, in ``cache_dtype``} for those rows."""
        missing = [i for i, key in enumerate(keys) if key not in self._cache]
        self.stats["hits"] += len(keys) - len(missing)
        self.stats["misses"] += len(missing)
        if not missing:
            return {}
        # The rows' real tokens in one block of memory, kept as views: a few large allocations
        # instead of thousands of small ones, which fragment the heap and raise peak memory.
        slab = self._prefix([input_ids[i, : lengths[i]] for i in missing], k).to(self.cache_dtype)
        starts = [0]
        for i in missing:
            starts.append(starts[-1] + lengths[i])
        fresh = {i: slab[starts[j]: starts[j + 1]] for j, i in enumerate(missing)}
        kept, seen, used = [], set(), self._cache_bytes
        for i in missing:
            if keys[i] in seen:
                continue  # the same message twice in one batch
            seen.add(keys[i])
            size = fresh[i].numel() * fresh[i].element_size()
            if used + size <= self.max_cache_bytes:
                kept.append(i)
                used += size
            else:
                self.stats["not_kept"] += 1
        whole = len(kept) == len(missing)  # else copy out what is kept, so the slab can go
        for i in kept:
            self._cache[keys[i]] = fresh[i] if whole else fresh[i].clone()
        self._cache_bytes = used
        return fresh

    def prefix_identity(self, k: int) -> dict:
        """What decides the frozen part's output, for the store's key: a fingerprint of the
        frozen tensors, the architecture, the number of frozen blocks, the dtypes, the device."""
        m = self.model
        arch = {key: m.cfg.get(key) for key in ("vocab_size", "context_length", "emb_dim", "n_heads",
                                                 "n_layers", "qkv_bias")}
        return {"prefix_source": prefix_source_digest(), "weights": weights_fingerprint([m.tok_emb, m.pos_emb, *m.trf_blocks[:k]]),
                "config": arch, "n_frozen_blocks": k, "compute_dtype": str(self.compute_dtype),
                "cache_dtype": str(self.cache_dtype), "device": m.tok_emb.weight.device.type}

    def warm_up(self, datasets: Iterable, token: str = "last", batch_tokens: int = 4096,
                progress: bool = False) -> None:
        """Fill the cache from the datasets' token ids, without touching any DataLoader (so the
        global random state, and with it the book's run, is unchanged).

        The whole set is first looked up in the store (another run's, in this process or on
        disk); else each distinct message is computed once, and the set is left in the store.
        Messages are sorted by length and batched up to ``batch_tokens`` tokens, so the matrix
        products (which run on the packed real tokens, see ``_prefix``) are large enough to run
        near the machine's peak, and attention, the one step that sees the rows padded, has
        little padding to see.
        """
        if not self.plan.reuse_on() or self._blocked:
            return
        device = self.model.tok_emb.weight.device
        pads = {ds.pad_token_id for ds in datasets}
        if len(pads) != 1:
            raise ValueError(f"The datasets use different pad ids {sorted(pads)}; warm them up separately.")
        pad = pads.pop()
        unique = dict.fromkeys(tuple(needed(ids, token, pad)) for ds in datasets for ids in ds.encoded_texts)
        rows = sorted(unique, key=len, reverse=True)
        survey = self.plan.survey()
        k = survey.k
        self._check_stamp(survey)
        if all(row in self._cache for row in rows):
            return
        total = sum(len(r) for r in rows)
        dim = self.model.tok_emb.weight.shape[1]
        nbytes = total * dim * torch.tensor([], dtype=self.cache_dtype).element_size()
        if nbytes + self._cache_bytes > self.max_cache_bytes:  # not all fits: keep what does
            self._fill(rows, pad, k, batch_tokens, progress)
            return
        key = set_digest(self.prefix_identity(k), rows) if self.store is not None else None
        found = self.store.get(key) if key is not None else None
        if found is not None and found[0].messages == rows:
            entry, self.warm_source = found
            self._keep_set(ActivationSet(entry.messages, entry.slab.to(device)))
            return
        slab = torch.empty(total, dim, dtype=self.cache_dtype, device=device)
        offset = 0
        for chunk in tqdm(chunks(rows, batch_tokens), desc="frozen layers, once per message", unit="batch",
                          disable=not progress):
            n = sum(len(r) for r in chunk)
            slab[offset: offset + n] = self._prefix([torch.tensor(r, device=device) for r in chunk], k)
            offset += n
        computed = ActivationSet(rows, slab)
        self.stats["misses"] += len(rows)
        self._keep_set(computed)
        self.warm_source = "computed"
        if key is not None:  # the store keeps sets in host memory, whatever the device
            stored = computed if slab.device.type == "cpu" else ActivationSet(rows, slab.cpu())
            self.store.put(key, stored, meta={"messages": len(rows), "tokens": total, "k": k})

    def _keep_set(self, found: ActivationSet) -> None:
        for ids, act in found.rows().items():
            if ids not in self._cache:
                self._cache[ids] = act
                self._cache_bytes += act.numel() * act.element_size()

    def _fill(self, rows: list[tuple], pad: int, k: int, batch_tokens: int, progress: bool) -> None:
        """Compute and keep, message by message, as much as fits under ``max_cache_bytes``."""
        device = self.model.tok_emb.weight.device
        for chunk in tqdm(chunks(rows, batch_tokens), desc="frozen layers, once per message", unit="batch",
                          disable=not progress):
            batch = torch.full((len(chunk), len(chunk[0])), pad, dtype=torch.long)
            for i, ids in enumerate(chunk):
                batch[i, : len(ids)] = torch.tensor(ids)
            self._compute_missing(batch.to(device), [len(ids) for ids in chunk], list(chunk), k)
        self.warm_source = "computed"

    # -- the trainable top -------------------------------------------------------------------
    def classify_logits(self, input_ids: torch.Tensor, token: str = "last", pad_token_id: int = END_OF_TEXT_ID) -> torch.Tensor:
        """(batch, classes) logits of the read token; equal to the plain path's."""
        m = self.model
        survey = self.plan.survey()
        k = survey.k
        reuse, read_one = self.plan.reuse_on(survey), self.plan.read_position_on(token, survey)
        if self._blocked or not m.cfg.get("causal_mask", True) or (not reuse and not read_one):
            return select_token_logits(m(input_ids), input_ids, token, pad_token_id)
        m.check_input(input_ids)
        lengths = row_lengths(input_ids, token, pad_token_id)
        if reuse:
            x = self.prefix_activations(input_ids, lengths, survey)
        else:
            k = 0
            width = max(lengths)
            x = m.embed(input_ids[:, :width])
        top = m.trf_blocks[k:]
        if not read_one or len(top) == 0:
            for block in top:
                x = block(x)
            logits = m.out_head(m.final_norm(x))
            return select_token_logits(logits, input_ids[:, : x.shape[1]], token, pad_token_id)
        for block in top[:-1]:
            x = block(x)
        read = torch.tensor([n - 1 for n in lengths], device=x.device)
        h = block_at_read(top[-1], x, read)
        return m.out_head(m.final_norm(h))


def wrap_for_speed(model: nn.Module, speed: str) -> nn.Module:
    """``model`` for ``speed="book"``; a :class:`CachedClassifier` for "exact" (float32, exact)
    or "fast" (activations kept in bfloat16; the frozen part computed in bfloat16 where the
    hardware makes that fast, else in float32). ``model`` itself where the tricks do not apply
    (see :func:`speed_blocker`)."""
    if speed not in SPEEDS:
        raise ValueError(f"speed must be one of {SPEEDS}; got {speed!r}.")
    if speed == "book" or isinstance(model, ClassifierRunner) or speed_blocker(model):
        return model
    if not isinstance(model, GPTModel):  # Qwen3, Llama 3.2 (gptlib.models): the frozen part kept
        return PrefixReuse(model, cache_dtype=torch.bfloat16 if speed == "fast" else torch.float32,
                           store=default_store())
    if speed == "fast":  # keep activations in bf16 (half the memory); compute in bf16 where fast
        fast_bf16 = bf16_is_fast(model.tok_emb.weight.device)
        return CachedClassifier(model, cache_dtype=torch.bfloat16,
                                compute_dtype=torch.bfloat16 if fast_bf16 else None, read_with_dropout=True)
    return CachedClassifier(model)


