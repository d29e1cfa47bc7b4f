"""What the speed-ups may skip for one model, asked again at every batch: the plan.

Two tricks, each applied only where it is exact (``gptlib.speed.cached`` does the work):

* **reuse**: the frozen prefix (embeddings + the leading frozen blocks) computes the same
  activations for the same message every time when none of its dropout is active;
* **read position only**: in the last block, when its dropout is inactive and one position
  is read (``gptlib.classifier.TOKENS`` says which choices read one position).

Which leading positions of a row a token choice depends on is read from the same table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from gptlib.classifier import TOKENS, last_real_index
from gptlib.lora import lora_layers
from gptlib.model import GPTModel


def _depends_on(token: str) -> str:
    if token not in TOKENS:
        raise ValueError(f"Unknown token choice {token!r}; use one of {tuple(TOKENS)}.")
    return TOKENS[token].depends_on


def row_lengths(input_ids: torch.Tensor, token: str, pad_token_id: int) -> list[int]:
    """How many leading positions of each row the read token depends on."""
    depends = _depends_on(token)
    if depends == "row":
        return [input_ids.shape[1]] * input_ids.shape[0]
    if depends == "first":
        return [1] * input_ids.shape[0]
    return (last_real_index(input_ids, pad_token_id) + 1).tolist()


def needed(ids: list[int], token: str, pad_token_id: int) -> list[int]:
    """The leading token ids of one row that the read token depends on."""
    depends = _depends_on(token)
    if depends == "row":
        return list(ids)
    if depends == "first":
        return list(ids[:1])
    n = len(ids)
    while n > 1 and ids[n - 1] == pad_token_id:
        n -= 1
    return list(ids[:n])


def one_position(token: str) -> bool:
    """Whether ``token`` reads the logits of one position (else it averages positions)."""
    return TOKENS[token].one_position


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


def _dropouts(*roots: nn.Module) -> list[nn.Dropout]:
    return [m for m in _submodules(*roots) if isinstance(m, nn.Dropout) and m.p > 0]


@dataclass
class Survey:
    """What the plan needs to know of the model at one call (see ``Plan.survey``)."""

    k: int  # leading frozen blocks; -1 when the embeddings train
    prefix_params: list[nn.Parameter]  # the embeddings' and those blocks' parameters
    prefix_dropout: list[nn.Dropout]  # dropout layers with p > 0 in the frozen part
    last_dropout: list[nn.Dropout]  # ... in the last block


class Plan:
    """Which tricks apply to ``model`` now; ``read_with_dropout``: also compute only the read
    position when the last block has active dropout (fast mode's choice, not bit-exact)."""

    def __init__(self, model: GPTModel, read_with_dropout: bool = False):
        self.model = model
        self.read_with_dropout = read_with_dropout

    def survey(self) -> Survey:
        """One walk over the model: how many leading blocks are frozen, their parameters, and
        where dropout with p > 0 sits. Every batch asks, so it is one plain pass over
        ``_modules`` (``Module.modules()``/``parameters()`` cost milliseconds)."""
        m = self.model
        emb = _params(m.tok_emb, m.pos_emb)
        if any(p.requires_grad for p in emb):
            return Survey(-1, [], _dropouts(m.drop_emb), [])  # even the embeddings train: no reuse
        prefix, dropouts, k = list(emb), _dropouts(m.drop_emb), 0
        blocks = list(m.trf_blocks)
        for block in blocks:
            mods = _submodules(block)
            params = [p for x in mods for p in x._parameters.values() if p is not None]
            if any(p.requires_grad for p in params):
                break
            prefix += params
            dropouts += [x for x in mods if isinstance(x, nn.Dropout) and x.p > 0]
            k += 1
        last = [x for x in _submodules(blocks[-1]) if isinstance(x, nn.Dropout) and x.p > 0] if blocks else []
        return Survey(k, prefix, dropouts, last)

    def n_frozen_blocks(self) -> int:
        """Leading blocks whose parameters (and the embeddings') are all frozen (-1: the embeddings train)."""
        return self.survey().k

    def reuse_on(self, survey: Survey | None = None) -> bool:
        """Whether the frozen part's kept output is used now (in the model's present mode)."""
        s = survey or self.survey()
        return s.k >= 0 and not any(d.training for d in s.prefix_dropout)

    def reuse_in_training(self) -> bool:
        """Whether reuse also stays on while training (no dropout with p > 0 in the frozen part)."""
        s = self.survey()
        return s.k >= 0 and not s.prefix_dropout

    def padding_is_cheap_in_training(self, token: str) -> bool:
        """True when training computes, over kept activations, only the last block's read
        position: padded positions then cost next to nothing (grouping by length saves no work)."""
        s = self.survey()
        return (s.k >= 0 and not s.prefix_dropout and s.k == len(self.model.trf_blocks) - 1
                and one_position(token) and (self.read_with_dropout or not s.last_dropout))

    def read_position_on(self, token: str, survey: Survey | None = None) -> bool:
        s = survey or self.survey()
        return one_position(token) and (
            self.read_with_dropout or not any(d.training for d in s.last_dropout))

    def explain(self, token: str = "last") -> str:
        k = self.n_frozen_blocks()
        reuse = (f"reusing the output of the embeddings + {k} frozen block(s)" if self.reuse_on()
                 else "no reuse (the embeddings train or the frozen part has active dropout)")
        read = ("computing only the read position in the last block" if self.read_position_on(token)
                else "computing every position in the last block (a mean token or active dropout)")
        if self.read_position_on(token) and self.read_with_dropout and self.survey().last_dropout:
            read += " (its dropout masks drawn there, not bit-exact)"
        return f"{reuse}; {read}."


def speed_blocker(model: nn.Module) -> str | None:
    """Why the tricks cannot apply to ``model`` (None: they can). Both rest on the causal mask
    and on frozen plain blocks: without the mask a pad changes every position; LoRA puts
    something that trains into every block."""
    if not getattr(model, "cfg", {}).get("causal_mask", True):
        return "the causal mask is off, so every position depends on the whole padded row"
    if lora_layers(model):
        return "LoRA adapters train in every block, so no block is frozen"
    return None


def chunks(rows: list[tuple], batch_tokens: int) -> list[list[tuple]]:
    """Rows (sorted longest first) in consecutive batches of about ``batch_tokens`` padded tokens."""
    chunks, start = [], 0
    while start < len(rows):
        size = max(1, batch_tokens // max(len(rows[start]), 1))
        chunks.append(rows[start: start + size])
        start += size
    return chunks


def estimate_cache_bytes(datasets: Iterable, token: str, emb_dim: int,
                         dtype: torch.dtype = torch.float32) -> int:
    """Memory the kept activations of these datasets need (duplicates counted once)."""
    size = torch.tensor([], dtype=dtype).element_size()
    unique = {tuple(needed(ids, token, ds.pad_token_id)) for ds in datasets for ids in ds.encoded_texts}
    return sum(len(key) for key in unique) * emb_dim * size
