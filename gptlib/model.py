"""GPT-2, written out in one readable file.

The layout (module names, creation order, parameter names) is the book's, so that

* ``torch.manual_seed(s); GPTModel(cfg)`` holds exactly the book's initial weights, and
* a state dict saved by the book's code loads here unchanged, and ours loads in the book's.

Inside, the arithmetic uses PyTorch's fused kernels (``F.layer_norm``, ``F.gelu``,
``F.scaled_dot_product_attention``); the outputs match the book's model to 1e-5.
This module knows nothing of data, downloads or training.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# The book's configurations (chapter 5/6: ``BASE_CONFIG`` updated with ``model_configs``).
BASE_CONFIG: dict[str, Any] = {
    "vocab_size": 50257,
    "context_length": 1024,
    "drop_rate": 0.0,
    "qkv_bias": True,
}

MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    "gpt2-small (124M)": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},
    "gpt2-medium (355M)": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},
    "gpt2-large (774M)": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},
    "gpt2-xl (1558M)": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},
    # Not a GPT-2 size: a small model with GPT-2's vocabulary, for tests and offline demos.
    "gpt2-tiny (test)": {"emb_dim": 64, "n_layers": 2, "n_heads": 2, "context_length": 256},
}

CONFIG_KEYS = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "drop_rate", "qkv_bias")
# Keys a config may hold beyond the book's: "causal_mask" (default True; False lets every
# token attend to every token, the bonus table's row 17).
OPTIONAL_KEYS = ("causal_mask",)


def get_config(name: str = "gpt2-small (124M)", **overrides: Any) -> dict[str, Any]:
    """Return a fresh config dict for a preset name, with optional overrides.

    Short names work too: ``"gpt2-small"``, ``"small"``, ``"124M"``, ``"tiny"``.
    """
    key = resolve_preset(name)
    cfg = {**BASE_CONFIG, **MODEL_CONFIGS[key]}
    unknown = set(overrides) - set(CONFIG_KEYS) - set(OPTIONAL_KEYS)
    if unknown:
        raise ValueError(f"Unknown config key(s) {sorted(unknown)}; valid keys are "
                         f"{list(CONFIG_KEYS + OPTIONAL_KEYS)}.")
    cfg.update(overrides)
    return cfg


def resolve_preset(name: str) -> str:
    """Map a preset name or an unambiguous short form ("small", "124M") to its full name."""
    if name in MODEL_CONFIGS:
        return name
    low = name.lower().strip()
    matches = [k for k in MODEL_CONFIGS if low and (k.lower().startswith(low) or low in k.lower())]
    if len(matches) == 1:
        return matches[0]
    raise ValueError(
        f"Unknown model preset {name!r}. Valid names: {', '.join(repr(k) for k in MODEL_CONFIGS)}."
    )


def check_config(cfg: dict[str, Any]) -> None:
    """Raise a clear ValueError when a config dict is missing keys or is inconsistent."""
    missing = [k for k in CONFIG_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"Model config is missing {missing}; a GPT-2 config needs {list(CONFIG_KEYS)}.")
    if cfg["emb_dim"] % cfg["n_heads"]:
        raise ValueError(
            f"emb_dim ({cfg['emb_dim']}) must be divisible by n_heads ({cfg['n_heads']})."
        )
    if not 0.0 <= cfg["drop_rate"] < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1); got {cfg['drop_rate']}.")


class LayerNorm(nn.Module):
    """Layer normalization with the book's parameter names ``scale`` and ``shift``."""

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (x - mean) / sqrt(var + eps) * scale + shift, biased variance, in one fused kernel.
        return F.layer_norm(x, (x.shape[-1],), self.scale, self.shift, self.eps)


class GELU(nn.Module):
    """GELU with GPT-2's tanh approximation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        return F.gelu(x, approximate="tanh")


class FeedForward(nn.Module):
    """Position-wise MLP: emb_dim -> 4*emb_dim -> GELU -> emb_dim."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
            GELU(),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention.

    softmax(Q K^T / sqrt(head_dim) + causal mask) V, per head, then ``out_proj``.
    ``causal=False`` drops the mask: every token attends to every token.
    The book keeps a (context x context) ``mask`` buffer; we build the causal mask on the
    fly instead (no memory), but still write and accept the ``mask`` key in state dicts so
    that checkpoints move freely between the book's code and ours.
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float,
                 num_heads: int, qkv_bias: bool = False, causal: bool = True):
        super().__init__()
        self.causal = causal
        if d_out % num_heads:
            raise ValueError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads}).")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self._register_state_dict_hook(_add_book_mask)
        self._register_load_state_dict_pre_hook(_drop_book_mask, with_module=True)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(b, T, d_out) -> (b, heads, T, head_dim)."""
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

    def attend(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Causal attention of (b, h, T, hd) queries over (b, h, T, hd) keys/values: query i
        sees keys 0..i (every key where the mask is off). Returns the merged, projected context
        vectors, shape (b, T, d_out)."""
        b, _, t, _ = queries.shape
        p = self.dropout.p if self.training else 0.0
        if p == 0.0:  # PyTorch's fused kernel
            context = F.scaled_dot_product_attention(queries, keys, values, is_causal=self.causal)
        else:
            # Dropout on the attention weights, written out so that random numbers are
            # drawn exactly as in the book (same call, same shape, same order).
            scores = queries @ keys.transpose(2, 3) / math.sqrt(self.head_dim)
            if self.causal:
                later = torch.triu(torch.ones(t, t, dtype=torch.bool, device=scores.device), diagonal=1)
                scores = scores.masked_fill(later, -torch.inf)
            context = self.dropout(torch.softmax(scores, dim=-1)) @ values
        context = context.transpose(1, 2).reshape(b, t, self.d_out)
        return self.out_proj(context)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.split_heads(self.W_query(x))
        k = self.split_heads(self.W_key(x))
        v = self.split_heads(self.W_value(x))
        return self.attend(q, k, v)


def _add_book_mask(module: MultiHeadAttention, state_dict: dict, prefix: str, local_metadata) -> None:
    n = module.context_length
    state_dict[prefix + "mask"] = torch.triu(torch.ones(n, n), diagonal=1)


def _drop_book_mask(module: MultiHeadAttention, state_dict: dict, prefix: str, *args) -> None:
    state_dict.pop(prefix + "mask", None)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer block: x + att(norm1(x)), then x + ff(norm2(x))."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            num_heads=cfg["n_heads"],
            dropout=cfg["drop_rate"],
            qkv_bias=cfg["qkv_bias"],
            causal=cfg.get("causal_mask", True),
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_resid = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_resid(self.att(self.norm1(x)))
        x = x + self.drop_resid(self.ff(self.norm2(x)))
        return x


class GPTModel(nn.Module):
    """GPT-2: token + position embeddings, ``n_layers`` blocks, final norm, output head.

    ``forward(in_idx)`` maps token ids of shape (batch, tokens) to logits of shape
    (batch, tokens, out_features), where out_features is the vocabulary size, or the number
    of classes once the head is replaced (``gptlib.classifier``).
    """

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        check_config(cfg)
        self.cfg = dict(cfg)
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    @property
    def context_length(self) -> int:
        return self.pos_emb.weight.shape[0]

    def check_input(self, in_idx: torch.Tensor) -> None:
        """Raise ValueError for ids outside the vocabulary or a sequence that is too long."""
        if in_idx.dim() != 2:
            raise ValueError(
                f"Expected token ids of shape (batch, tokens); got shape {tuple(in_idx.shape)}. "
                "For one message use ids.unsqueeze(0)."
            )
        if in_idx.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"Token ids must be integers (torch.long); got dtype {in_idx.dtype}.")
        n_tokens = in_idx.shape[1]
        if n_tokens > self.context_length:
            raise ValueError(
                f"Sequence of {n_tokens} tokens is longer than the model's context_length "
                f"({self.context_length}); truncate it, e.g. ids[:, -{self.context_length}:]."
            )
        if in_idx.numel():
            lo, hi = int(in_idx.min()), int(in_idx.max())
            vocab = self.tok_emb.weight.shape[0]
            if lo < 0 or hi >= vocab:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"Token id {bad} is outside the vocabulary (valid ids are 0..{vocab - 1})."
                )

    def embed(self, in_idx: torch.Tensor) -> torch.Tensor:
        """Token plus position embeddings (with embedding dropout), shape (b, T, emb_dim)."""
        self.check_input(in_idx)
        positions = torch.arange(in_idx.shape[1], device=in_idx.device)
        return self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions))

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(in_idx)
        x = self.trf_blocks(x)
        x = self.final_norm(x)
        return self.out_head(x)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "gpt2-small (124M)", **kwargs: Any) -> GPTModel:
        """A model holding OpenAI's GPT-2 weights; see :func:`gptlib.weights.load_pretrained`.

        This module knows nothing of weight files: ``gptlib.weights`` (which sits on it)
        registers the loader with :func:`register_weight_loader` when it is imported, and
        ``import gptlib`` imports it."""
        if _weight_loader is None:
            raise RuntimeError("No weight loader is registered: import gptlib.weights first.")
        return _weight_loader(name_or_path, **kwargs)


_weight_loader: Callable[..., GPTModel] | None = None


def register_weight_loader(loader: Callable[..., GPTModel]) -> None:
    """Declare how :meth:`GPTModel.from_pretrained` turns a name or a path into a model."""
    global _weight_loader
    _weight_loader = loader


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (each shared tensor counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total
