"""The pieces Qwen3 and Llama 3 share, each written once: RMSNorm, rotary positions (RoPE),
grouped-query attention, the SwiGLU feed forward, the pre-norm block and the model around it.

Against GPT-2 (``gptlib.model``), four things change and nothing else:

* **RMSNorm** instead of LayerNorm: no mean is subtracted and there is no shift, only a scale.
* **Rotary positions** instead of a learned position embedding: queries and keys are rotated
  by an angle that grows with the position, so attention scores depend on relative distance.
* **Grouped-query attention**: several query heads share one key/value head, which shrinks
  ``W_key`` and ``W_value`` (and a generation cache) without losing query heads.
* **SwiGLU** feed forward: ``fc3(silu(fc1(x)) * fc2(x))``, no biases anywhere.

The names (``tok_emb``, ``trf_blocks``, ``att.W_query``, ``ff.fc1``, ``norm1``, ``final_norm``,
``out_head``) are GPT-2's and the book's, so that the chapter's head swap
(``model.out_head = nn.Linear(emb_dim, 2)``) and ``gptlib.classifier.set_trainable`` ("the last
block and the final norm train") work unchanged. Shapes: b = batch, T = tokens, h = query
heads, g = key/value groups, hd = head_dim.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Every config of this package holds these keys (qwen3.py and llama3.py comment their values).
CONFIG_KEYS = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_kv_groups", "head_dim",
               "n_layers", "hidden_dim", "rope_base", "qk_norm", "norm_eps", "tie_embeddings", "dtype")
# Optional: "rope_freq" (Llama 3's frequency scaling; None or absent means plain RoPE).


def resolve_dtype(value: str | torch.dtype) -> torch.dtype:
    """``torch.float32`` from ``"float32"`` (configs keep dtypes as strings so they stay JSON)."""
    if isinstance(value, torch.dtype):
        return value
    dtype = getattr(torch, str(value).removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"Unknown dtype {value!r}; use e.g. 'float32' or 'bfloat16'.")
    return dtype


def check_config(cfg: dict[str, Any]) -> None:
    """Raise a clear ValueError when a config misses keys or does not add up."""
    missing = [k for k in CONFIG_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"Model config is missing {missing}; it needs {list(CONFIG_KEYS)}.")
    if cfg["n_heads"] % cfg["n_kv_groups"]:
        raise ValueError(f"n_heads ({cfg['n_heads']}) must be divisible by n_kv_groups ({cfg['n_kv_groups']}).")
    if cfg["head_dim"] % 2:
        raise ValueError(f"head_dim ({cfg['head_dim']}) must be even: RoPE rotates pairs of numbers.")
    resolve_dtype(cfg["dtype"])


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * scale, computed in float32 whatever the input dtype."""

    def __init__(self, dim: int, eps: float = 1e-6, dtype: torch.dtype | None = None):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.scale * normed.to(x.dtype)


def rope_inv_freq(head_dim: int, base: float) -> torch.Tensor:
    """RoPE's frequencies, shape (hd/2,): pair i of a head turns by base^(-2i/hd) per position."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device="cpu").float() / head_dim
    return 1.0 / (base ** exponents)


def rope_angles(inv_freq: torch.Tensor, n_tokens: int, device: torch.device,
                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position * frequency, each (T, hd); both halves of a head share them."""
    positions = torch.arange(n_tokens, dtype=torch.float32, device=device)
    angles = positions[:, None] * inv_freq.to(device)[None, :]  # (T, hd/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, hd)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (b, heads, T, hd): element j of the first half pairs with element j of the second."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class GroupedQueryAttention(nn.Module):
    """Causal attention with ``n_heads`` query heads sharing ``n_kv_groups`` key/value heads.

    Qwen3 adds ``qk_norm``: an RMSNorm over each head's queries and keys before RoPE, which
    keeps attention logits in range. The scale is 1/sqrt(head_dim) as in GPT-2.
    """

    def __init__(self, d_in: int, n_heads: int, n_kv_groups: int, head_dim: int,
                 qk_norm: bool = False, eps: float = 1e-6, dtype: torch.dtype | None = None):
        super().__init__()
        self.n_heads, self.n_kv_groups, self.head_dim = n_heads, n_kv_groups, head_dim
        self.group_size = n_heads // n_kv_groups  # query heads per key/value head
        self.W_query = nn.Linear(d_in, n_heads * head_dim, bias=False, dtype=dtype)
        self.W_key = nn.Linear(d_in, n_kv_groups * head_dim, bias=False, dtype=dtype)
        self.W_value = nn.Linear(d_in, n_kv_groups * head_dim, bias=False, dtype=dtype)
        self.out_proj = nn.Linear(n_heads * head_dim, d_in, bias=False, dtype=dtype)
        self.q_norm = RMSNorm(head_dim, eps, dtype) if qk_norm else None
        self.k_norm = RMSNorm(head_dim, eps, dtype) if qk_norm else None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.W_query(x).view(b, t, self.n_heads, self.head_dim)  # (b, T, h, hd)
        k = self.W_key(x).view(b, t, self.n_kv_groups, self.head_dim)  # (b, T, g, hd)
        v = self.W_value(x).view(b, t, self.n_kv_groups, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # heads first
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # Each key/value head serves group_size query heads: repeat it for them.
        k = k.repeat_interleave(self.group_size, dim=1)  # (b, h, T, hd)
        v = v.repeat_interleave(self.group_size, dim=1)
        context = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                 scale=1.0 / math.sqrt(self.head_dim))
        return self.out_proj(context.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))


class FeedForward(nn.Module):
    """SwiGLU: fc3(silu(fc1(x)) * fc2(x)), emb_dim -> hidden_dim -> emb_dim, no biases.

    Hugging Face calls fc1, fc2, fc3 ``gate_proj``, ``up_proj``, ``down_proj``."""

    def __init__(self, emb_dim: int, hidden_dim: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.fc1 = nn.Linear(emb_dim, hidden_dim, bias=False, dtype=dtype)
        self.fc2 = nn.Linear(emb_dim, hidden_dim, bias=False, dtype=dtype)
        self.fc3 = nn.Linear(hidden_dim, emb_dim, bias=False, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(F.silu(self.fc1(x)) * self.fc2(x))


class TransformerBlock(nn.Module):
    """Pre-norm block, as GPT-2's: x + att(norm1(x)), then x + ff(norm2(x)); no dropout.

    Shown in notebooks/09_the_recipe_on_a_modern_model.
    """

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        dtype = resolve_dtype(cfg["dtype"])
        self.att = GroupedQueryAttention(
            cfg["emb_dim"], cfg["n_heads"], cfg["n_kv_groups"], cfg["head_dim"],
            qk_norm=cfg["qk_norm"], eps=cfg["norm_eps"], dtype=dtype)
        self.ff = FeedForward(cfg["emb_dim"], cfg["hidden_dim"], dtype=dtype)
        self.norm1 = RMSNorm(cfg["emb_dim"], cfg["norm_eps"], dtype)
        self.norm2 = RMSNorm(cfg["emb_dim"], cfg["norm_eps"], dtype)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.att(self.norm1(x), cos, sin)
        return x + self.ff(self.norm2(x))


class RopeDecoder(nn.Module):
    """Token embedding, ``n_layers`` blocks, final RMSNorm, output head; positions come from RoPE.

    ``forward(in_idx)`` maps token ids (b, T) to logits (b, T, out_features): the vocabulary
    size, or the number of classes once ``out_head`` is replaced. With ``tie_embeddings`` the
    output head *is* the token embedding (one tensor, as in the released checkpoints).
    Subclasses say how RoPE's frequencies are made (:meth:`rope_frequencies`).
    """

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        check_config(cfg)
        self.cfg = dict(cfg)
        dtype = resolve_dtype(cfg["dtype"])
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"], dtype=dtype)
        self.trf_blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg["n_layers"]))
        self.final_norm = RMSNorm(cfg["emb_dim"], cfg["norm_eps"], dtype)
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False, dtype=dtype)
        self.tie_weights()
        # A plain CPU tensor, not a buffer: it survives building on the meta device.
        self.inv_freq = self.rope_frequencies(cfg)

    def tie_weights(self) -> None:
        """With ``tie_embeddings``, make ``out_head.weight`` the very tensor of ``tok_emb.weight``
        (again: ``to_empty``, used to load onto a model built on the meta device, unties them)."""
        if self.cfg["tie_embeddings"] and self.out_head.weight.shape == self.tok_emb.weight.shape:
            self.out_head.weight = self.tok_emb.weight

    def rope_frequencies(self, cfg: dict[str, Any]) -> torch.Tensor:
        """RoPE's inverse frequencies, shape (head_dim/2,); plain RoPE unless overridden."""
        return rope_inv_freq(cfg["head_dim"], cfg["rope_base"])

    @property
    def context_length(self) -> int:
        return self.cfg["context_length"]

    def check_input(self, in_idx: torch.Tensor) -> None:
        """Raise ValueError for a tensor that is not (batch, tokens) of ids the model can take."""
        if in_idx.dim() != 2 or in_idx.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"Expected integer token ids of shape (batch, tokens); got "
                             f"{in_idx.dtype} of shape {tuple(in_idx.shape)}.")
        if in_idx.shape[1] > self.context_length:
            raise ValueError(f"Sequence of {in_idx.shape[1]} tokens is longer than the model's "
                             f"context_length ({self.context_length}).")

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        self.check_input(in_idx)
        x = self.tok_emb(in_idx)  # (b, T, emb_dim)
        cos, sin = rope_angles(self.inv_freq, in_idx.shape[1], x.device, x.dtype)  # (T, hd) each
        for block in self.trf_blocks:
            x = block(x, cos, sin)
        return self.out_head(self.final_norm(x))  # (b, T, vocab_size or classes)
