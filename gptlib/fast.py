"""Fast fine-tuning: skip the work whose result is already known.

With the book's settings, blocks 0..10 are frozen and have no dropout, so they compute the
same activations for the same message in every epoch and every evaluation. And in the one
block that trains, only the read position needs its query, attention output, feed-forward,
final norm and head (keys and values are still needed for every position it sees).

:class:`CachedClassifier` wraps a classifier and applies each trick only where it is exact:

* **reuse**: the output of the frozen prefix (embeddings + the leading frozen blocks) is kept
  per message, when the prefix has no active dropout (``drop_rate == 0`` or eval mode).
  What is kept depends on the read token: the whole padded row for ``"last"``, only the real
  tokens for ``"last_real"``/``"mean"`` (pads come after them, and the causal mask means they
  cannot change them), one token for ``"first"``.
* **read position only**: in the last block, when its dropout is inactive and the token read
  is one position (``"last"``, ``"first"``, ``"last_real"``; not ``"mean"``).

Where a condition fails, that trick switches itself off and the plain computation runs;
``explain()`` says which tricks are on. All the gptlib training and evaluation functions work
with the wrapper unchanged (they call ``classify_logits`` when a model has it).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext

import torch
from torch import nn
from tqdm.auto import tqdm

from gptlib.classifier import last_real_index, select_token_logits
from gptlib.model import GPTModel


def _row_lengths(input_ids: torch.Tensor, token: str, pad_token_id: int) -> list[int]:
    """How many leading positions of each row the read token depends on."""
    if token == "last":
        return [input_ids.shape[1]] * input_ids.shape[0]
    if token == "first":
        return [1] * input_ids.shape[0]
    return (last_real_index(input_ids, pad_token_id) + 1).tolist()


def _submodules(*roots: nn.Module) -> list[nn.Module]:
    """The modules under ``roots`` (themselves included). A plain walk over ``_modules``: these
    checks run for every batch, and ``Module.modules()``/``parameters()`` cost milliseconds."""
    out, stack = [], list(reversed(roots))
    while stack:
        module = stack.pop()
        out.append(module)
        stack.extend(reversed([m for m in module._modules.values() if m is not None]))
    return out


def _params(*roots: nn.Module) -> list[nn.Parameter]:
    return [p for m in _submodules(*roots) for p in m._parameters.values() if p is not None]


def _trains(*roots: nn.Module) -> bool:
    return any(p.requires_grad for p in _params(*roots))


class CachedClassifier(nn.Module):
    """A classifier that reuses frozen activations and computes only the read position.

    ``cache_dtype`` is the dtype of the kept activations (float32 is exact; bfloat16 halves the
    memory). ``compute_dtype=torch.bfloat16`` runs the frozen prefix under bf16 autocast (fast
    on CPUs with AMX and on recent GPUs; not bit-exact). ``max_cache_bytes`` bounds the memory
    the kept activations may take; past it, new messages are computed without being kept.
    """

    def __init__(self, model: GPTModel, cache_dtype: torch.dtype = torch.float32,
                 compute_dtype: torch.dtype | None = None, max_cache_bytes: int = 4 * 2**30):
        super().__init__()
        self.model = model
        self.cache_dtype = cache_dtype
        self.compute_dtype = compute_dtype
        self.max_cache_bytes = max_cache_bytes
        self._cache: dict[tuple, torch.Tensor] = {}
        self._cache_bytes = 0
        self._stamp: tuple | None = None
        self.stats = {"hits": 0, "misses": 0, "not_kept": 0}

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["model"], name)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        return self.model(in_idx)

    # -- which tricks apply ------------------------------------------------------------------
    def n_frozen_blocks(self) -> int:
        """Leading blocks whose parameters (and the embeddings') are all frozen."""
        m = self.model
        if _trains(m.tok_emb, m.pos_emb):
            return -1  # even the embeddings train: nothing to reuse
        n = 0
        for block in m.trf_blocks:
            if _trains(block):
                break
            n += 1
        return n

    def _dropout_active(self, modules: Iterable[nn.Module], training: bool | None = None) -> bool:
        """Any dropout with p > 0 that is on: in the modules' present mode, or in ``training`` mode."""
        return any(isinstance(x, nn.Dropout) and x.p > 0 and (x.training if training is None else training)
                   for x in _submodules(*modules))

    def _frozen_part(self, k: int | None = None) -> list[nn.Module]:
        k = self.n_frozen_blocks() if k is None else k
        return [self.model.drop_emb, *self.model.trf_blocks[:max(k, 0)]]

    def reuse_on(self, k: int | None = None) -> bool:
        """Whether the frozen part's kept output is used now (in the model's present mode).
        ``k``: ``n_frozen_blocks()`` when the caller has it already."""
        k = self.n_frozen_blocks() if k is None else k
        return k >= 0 and not self._dropout_active(self._frozen_part(k))

    def reuse_in_training(self) -> bool:
        """Whether reuse also stays on while training (no dropout with p > 0 in the frozen part)."""
        return self.n_frozen_blocks() >= 0 and not self._dropout_active(self._frozen_part(), training=True)

    def padding_is_cheap_in_training(self, token: str) -> bool:
        """True when training computes, over kept activations, only the last block's read
        position: padded positions then cost next to nothing (grouping by length saves no work)."""
        last = self.model.trf_blocks[-1]
        return (self.reuse_in_training() and self.n_frozen_blocks() == len(self.model.trf_blocks) - 1
                and token != "mean" and not self._dropout_active([last], training=True))

    def read_position_on(self, token: str) -> bool:
        last = self.model.trf_blocks[-1]
        return token != "mean" and not self._dropout_active([last])

    def explain(self, token: str = "last") -> str:
        k = self.n_frozen_blocks()
        reuse = (f"reusing the output of the embeddings + {k} frozen block(s)" if self.reuse_on()
                 else "no reuse (the embeddings train or the frozen part has active dropout)")
        read = ("computing only the read position in the last block" if self.read_position_on(token)
                else "computing every position in the last block (token 'mean' or active dropout)")
        return f"{reuse}; {read}."

    # -- the frozen prefix -------------------------------------------------------------------
    def _check_stamp(self, k: int) -> None:
        """Forget kept activations if a frozen weight was changed in place since they were made."""
        m = self.model
        k = max(k, 0)
        params = _params(m.tok_emb, m.pos_emb, *m.trf_blocks[:k])
        stamp = (k, tuple((id(p), p._version) for p in params))
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
                x = x + block.drop_resid(_packed_attention(block.att, block.norm1(x), slots, len(rows), width))
                x = x + block.drop_resid(block.ff(block.norm2(x)))
        return x

    def prefix_activations(self, input_ids: torch.Tensor, lengths: list[int], k: int | None = None) -> torch.Tensor:
        """Frozen-prefix output for each row's first ``lengths[i]`` tokens, right-padded with zeros.
        ``k``: ``n_frozen_blocks()`` when the caller has it already."""
        k = self.n_frozen_blocks() if k is None else k
        self._check_stamp(k)
        keys = [tuple(input_ids[i, :n].tolist()) for i, n in enumerate(lengths)]
        fresh = self._compute_missing(input_ids, lengths, keys, k)
        width = max(lengths)
        dim = self.model.tok_emb.weight.shape[1]
        x = torch.zeros(len(keys), width, dim, device=input_ids.device)
        for i, key in enumerate(keys):
            act = fresh[i] if i in fresh else self._cache[key]
            x[i, : lengths[i]] = act.to(device=x.device, dtype=x.dtype)
        return x

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

    def warm_up(self, datasets: Iterable, token: str = "last", batch_tokens: int = 4096,
                progress: bool = False) -> None:
        """Fill the cache from the datasets' token ids, without touching any DataLoader (so the
        global random state, and with it the book's run, is unchanged).

        Each distinct message is computed once; messages are sorted by length and batched up to
        ``batch_tokens`` tokens, so the matrix products (which run on the packed real tokens, see
        ``_prefix``) are large enough to run near the machine's peak, and attention, the one
        step that sees the rows padded, has little padding to see.
        """
        if not self.reuse_on():
            return
        device = self.model.tok_emb.weight.device
        pads = {ds.pad_token_id for ds in datasets}
        if len(pads) != 1:
            raise ValueError(f"The datasets use different pad ids {sorted(pads)}; warm them up separately.")
        pad = pads.pop()
        unique = dict.fromkeys(tuple(_needed(ids, token, pad)) for ds in datasets for ids in ds.encoded_texts)
        rows = sorted(unique, key=len, reverse=True)
        chunks, start = [], 0
        while start < len(rows):
            size = max(1, batch_tokens // len(rows[start]))
            chunks.append(rows[start: start + size])
            start += size
        k = self.n_frozen_blocks()
        self._check_stamp(k)
        for chunk in tqdm(chunks, desc="frozen layers, once per message", unit="batch", disable=not progress):
            batch = torch.full((len(chunk), len(chunk[0])), pad, dtype=torch.long)
            for i, ids in enumerate(chunk):
                batch[i, : len(ids)] = torch.tensor(ids)
            self._compute_missing(batch.to(device), [len(ids) for ids in chunk], list(chunk), k)

    # -- the trainable top -------------------------------------------------------------------
    def classify_logits(self, input_ids: torch.Tensor, token: str = "last", pad_token_id: int = 50256) -> torch.Tensor:
        """(batch, classes) logits of the read token; equal to the plain path's."""
        m = self.model
        k = self.n_frozen_blocks()
        reuse, read_one = self.reuse_on(k), self.read_position_on(token)
        if not reuse and not read_one:
            return select_token_logits(m(input_ids), input_ids, token, pad_token_id)
        m.check_input(input_ids)
        lengths = _row_lengths(input_ids, token, pad_token_id)
        if reuse:
            x = self.prefix_activations(input_ids, lengths, k)
        else:
            k = 0
            width = max(lengths)
            x = m.embed(input_ids[:, :width])
        top = m.trf_blocks[k:]
        if not read_one or len(top) == 0:
            for block in top:
                x = block(x)
            logits = m.out_head(m.final_norm(x))
            trimmed = input_ids[:, : x.shape[1]]
            if token == "last":
                return logits[:, -1, :]
            return select_token_logits(logits, trimmed, token, pad_token_id)
        for block in top[:-1]:
            x = block(x)
        read = torch.tensor([n - 1 for n in lengths], device=x.device)
        h = _block_at(top[-1], x, read)
        return m.out_head(m.final_norm(h))


def _packed_attention(att: nn.Module, a: torch.Tensor, slots: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    """Causal self-attention of packed tokens ``a`` (n, d): token j sits at ``slots[j]`` of a
    (rows x width) right-padded layout. Projections run packed; attention runs padded."""
    def padded(t: torch.Tensor) -> torch.Tensor:
        out = t.new_zeros(rows * width, t.shape[-1])
        out[slots] = t
        return att.split_heads(out.view(rows, width, -1))

    context = torch.nn.functional.scaled_dot_product_attention(
        padded(att.W_query(a)), padded(att.W_key(a)), padded(att.W_value(a)), is_causal=True)
    context = context.transpose(1, 2).reshape(rows * width, -1)[slots]
    return att.out_proj(context)


def _block_at(block: nn.Module, x: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
    """A transformer block's output at one position per row (``read[i]``), shape (b, d).

    Only the read position needs a query, an attention output, the feed-forward and the
    residuals. Its attention needs every visible position's key and value, but not as
    separate vectors: with a_j = norm1(x_j), per head h,

        q . k_j = q . (W_k a_j + b_k) = (W_k^T q) . a_j + q . b_k
        sum_j w_j v_j = W_v (sum_j w_j a_j) + b_v                    (the weights w_j sum to 1)

    so a (T x d) @ (d x d) projection of all positions becomes two (d x d) products for the
    read position plus two length-T weighted sums: the same numbers, a fraction of the work.
    """
    att = block.att
    b, t, d = x.shape
    heads, head_dim = att.num_heads, att.head_dim
    rows = torch.arange(b, device=x.device)
    a = block.norm1(x)  # (b, T, d)
    query = att.W_query(a[rows, read]).view(b, heads, head_dim)
    w_key = att.W_key.weight.view(heads, head_dim, d)
    u = torch.einsum("bhe,hed->bhd", query, w_key)  # W_k^T q, per head
    scores = torch.einsum("bhd,btd->bht", u, a)
    if att.W_key.bias is not None:  # q . b_k shifts all of a row's scores alike; kept so that
        # b_k gets its (zero) gradient and weight decay exactly as in the plain computation
        scores = scores + (query * att.W_key.bias.view(heads, head_dim)).sum(-1, keepdim=True)
    scores = scores / head_dim**0.5
    hidden = torch.arange(t, device=x.device)[None, None, :] > read[:, None, None]  # causal, per row
    weights = torch.softmax(scores.masked_fill(hidden, -torch.inf), dim=-1)
    mixed = torch.einsum("bht,btd->bhd", weights, a)  # sum_j w_j a_j, per head
    w_value = att.W_value.weight.view(heads, head_dim, d)
    context = torch.einsum("bhd,hed->bhe", mixed, w_value)
    if att.W_value.bias is not None:
        context = context + att.W_value.bias.view(heads, head_dim)
    h = x[rows, read] + block.drop_resid(att.out_proj(context.reshape(b, d)))
    return h + block.drop_resid(block.ff(block.norm2(h)))


SPEEDS = ("book", "exact", "fast")


def bf16_is_fast(device: torch.device | str) -> bool:
    """True where bfloat16 matmuls are fast: CUDA GPUs with bf16, CPUs with AMX tiles."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        amx = getattr(torch._C._cpu, "_is_amx_tile_supported", None)
        return bool(amx and amx())
    return False


def wrap_for_speed(model: nn.Module, speed: str) -> nn.Module:
    """``model`` for ``speed="book"``; a :class:`CachedClassifier` for "exact" (float32, exact)
    or "fast" (activations kept in bfloat16; the frozen part computed in bfloat16 where the
    hardware makes that fast, else in float32)."""
    if speed not in SPEEDS:
        raise ValueError(f"speed must be one of {SPEEDS}; got {speed!r}.")
    if speed == "book" or hasattr(model, "classify_logits"):
        return model
    if speed == "fast":  # keep activations in bf16 (half the memory); compute in bf16 where fast
        fast_bf16 = bf16_is_fast(model.tok_emb.weight.device)
        return CachedClassifier(model, cache_dtype=torch.bfloat16,
                                compute_dtype=torch.bfloat16 if fast_bf16 else None)
    return CachedClassifier(model)


def _needed(ids: list[int], token: str, pad_token_id: int) -> list[int]:
    """The leading token ids of one row that the read token depends on."""
    if token == "last":
        return list(ids)
    if token == "first":
        return list(ids[:1])
    n = len(ids)
    while n > 1 and ids[n - 1] == pad_token_id:
        n -= 1
    return list(ids[:n])


def estimate_cache_bytes(datasets: Iterable, token: str, emb_dim: int,
                         dtype: torch.dtype = torch.float32) -> int:
    """Memory the kept activations of these datasets need (duplicates counted once)."""
    size = torch.tensor([], dtype=dtype).element_size()
    unique = {tuple(_needed(ids, token, ds.pad_token_id)) for ds in datasets for ids in ds.encoded_texts}
    return sum(len(key) for key in unique) * emb_dim * size
