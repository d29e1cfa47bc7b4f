"""Qwen3, written from scratch in the book's style (the dense models; the 0.6B one is loaded).

Qwen3 is GPT-2's decoder (``gptlib.model``) with four modern parts, written once in
``gptlib.models.parts``: RMSNorm, rotary positions, grouped-query attention and a SwiGLU
feed forward. What is Qwen3's own:

* **QK-norm**: an RMSNorm over each head's queries and keys, right before RoPE.
* Wide heads: ``head_dim`` (128) is set on its own, not ``emb_dim / n_heads`` (64), so the
  attention works in a space twice the width of the residual stream.
* Plain RoPE with a large base (1,000,000) for a 40,960-token context.

``Qwen3Model(cfg)`` maps token ids (batch, tokens) to logits (batch, tokens, vocab_size). The
released weights load with :func:`gptlib.models.hf_weights.load_hf_model`.
"""

from __future__ import annotations

from typing import Any

from gptlib.models.parts import RopeDecoder

QWEN3_CONFIGS: dict[str, dict[str, Any]] = {
    # Qwen/Qwen3-0.6B: 596M parameters (751M if the output head were not tied).
    "qwen3-0.6b": {
        "vocab_size": 151_936,       # 151,643 byte-level BPE tokens + special ones, padded up
        "context_length": 40_960,    # the longest sequence it was trained on
        "emb_dim": 1024,             # residual stream width
        "n_heads": 16,               # query heads
        "n_kv_groups": 8,            # key/value heads: 2 query heads share each
        "head_dim": 128,             # per head; 16 * 128 = 2048 > emb_dim, W_query is 1024 -> 2048
        "n_layers": 28,              # transformer blocks
        "hidden_dim": 3072,          # SwiGLU's inner width
        "rope_base": 1_000_000.0,    # RoPE's theta: pair i turns by base^(-2i/head_dim) per token
        "qk_norm": True,             # RMSNorm on queries and keys (Qwen3's own)
        "norm_eps": 1e-6,            # RMSNorm's epsilon
        "tie_embeddings": True,      # out_head shares tok_emb's (vocab, emb) matrix
        "dtype": "float32",          # the file holds bfloat16; float32 trains on any CPU
    },
    # Not a Qwen3 size: the same architecture in miniature, for tests and offline demos (its
    # vocabulary is GPT-2's rounded up, so GPT-2's tokenizer can stand in for one offline).
    "qwen3-tiny (test)": {
        "vocab_size": 50_304, "context_length": 256, "emb_dim": 64, "n_heads": 4, "n_kv_groups": 2,
        "head_dim": 32, "n_layers": 2, "hidden_dim": 128, "rope_base": 1_000_000.0, "qk_norm": True,
        "norm_eps": 1e-6, "tie_embeddings": True, "dtype": "float32",
    },
}


class Qwen3Model(RopeDecoder):
    """Qwen3 (dense): ``tok_emb`` -> ``trf_blocks`` (with QK-norm) -> ``final_norm`` -> ``out_head``.

    The attribute names are GPT-2's, so the chapter's head swap and freezing work unchanged.
    """

    def __init__(self, cfg: dict[str, Any]):
        if not cfg.get("qk_norm", False):
            raise ValueError("A Qwen3 config has qk_norm=True (RMSNorm on queries and keys).")
        super().__init__(cfg)

