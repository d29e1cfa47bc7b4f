"""Llama 3.2, written from scratch in the book's style (the 1B model is loaded).

Llama 3 is GPT-2's decoder (``gptlib.model``) with RMSNorm, rotary positions, grouped-query
attention and a SwiGLU feed forward, the pieces written once in ``gptlib.models.parts``.
What is Llama 3's own is how RoPE's frequencies are stretched for a long context:

The model was first trained with an 8,192-token context, then extended to 131,072. Rather
than retrain every position, the slow frequencies (wavelength longer than
``original_context_length / low_freq_factor``) are divided by ``factor``, the fast ones (shorter
than ``original_context_length / high_freq_factor``) are kept, and the ones in between are
blended smoothly (:func:`llama3_inv_freq`).

``Llama3Model(cfg)`` maps token ids (batch, tokens) to logits (batch, tokens, vocab_size). The
weights (a gated repository: accept Meta's licence first) load with
:func:`gptlib.models.hf_weights.load_hf_model`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gptlib.models.parts import RopeDecoder, rope_inv_freq

# RoPE frequency scaling of Llama 3.1 and 3.2 (config.json's "rope_scaling", rope_type "llama3").
LLAMA3_ROPE_FREQ = {
    "factor": 32.0,                  # slow frequencies turn 32x slower
    "low_freq_factor": 1.0,          # wavelengths above 8192 / 1 tokens are slow
    "high_freq_factor": 4.0,         # wavelengths below 8192 / 4 tokens are fast, kept as they are
    "original_context_length": 8192,  # the context of the first round of training
}

LLAMA3_CONFIGS: dict[str, dict[str, Any]] = {
    # meta-llama/Llama-3.2-1B: 1,236M parameters (1,498M if the output head were not tied).
    "llama3.2-1b": {
        "vocab_size": 128_256,       # tiktoken-style BPE: 128,000 tokens + 256 special
        "context_length": 131_072,   # after the long-context extension
        "emb_dim": 2048,             # residual stream width
        "n_heads": 32,               # query heads
        "n_kv_groups": 8,            # key/value heads: 4 query heads share each
        "head_dim": 64,              # emb_dim / n_heads
        "n_layers": 16,              # transformer blocks
        "hidden_dim": 8192,          # SwiGLU's inner width
        "rope_base": 500_000.0,      # RoPE's theta before scaling
        "rope_freq": LLAMA3_ROPE_FREQ,  # the long-context frequency scaling above
        "qk_norm": False,            # no RMSNorm on queries and keys (that is Qwen3's)
        "norm_eps": 1e-5,            # RMSNorm's epsilon
        "tie_embeddings": True,      # out_head shares tok_emb's (vocab, emb) matrix
        "dtype": "float32",          # the file holds bfloat16; float32 trains on any CPU
    },
    # Not a Llama size: the same architecture in miniature, for tests and offline demos (its
    # vocabulary is GPT-2's rounded up, so GPT-2's tokenizer can stand in for one offline).
    "llama3.2-tiny (test)": {
        "vocab_size": 50_304, "context_length": 256, "emb_dim": 64, "n_heads": 4, "n_kv_groups": 2,
        "head_dim": 16, "n_layers": 2, "hidden_dim": 128, "rope_base": 500_000.0,
        "rope_freq": LLAMA3_ROPE_FREQ, "qk_norm": False, "norm_eps": 1e-5, "tie_embeddings": True,
        "dtype": "float32",
    },
}


def llama3_inv_freq(head_dim: int, base: float, freq: dict[str, float] | None) -> torch.Tensor:
    """RoPE's inverse frequencies (head_dim/2,), stretched as Llama 3 does for a long context."""
    inv_freq = rope_inv_freq(head_dim, base)
    if not freq:
        return inv_freq
    factor, low, high = freq["factor"], freq["low_freq_factor"], freq["high_freq_factor"]
    old_context = freq["original_context_length"]
    wavelen = 2 * math.pi / inv_freq  # tokens per full turn
    slow = torch.where(wavelen > old_context / low, inv_freq / factor, inv_freq)
    # Between the two limits: a linear blend from "divided by factor" to "kept".
    smooth = (old_context / wavelen - low) / (high - low)
    blended = (1 - smooth) * slow / factor + smooth * slow
    medium = (wavelen >= old_context / high) & (wavelen <= old_context / low)
    return torch.where(medium, blended, slow)


class Llama3Model(RopeDecoder):
    """Llama 3.2: ``tok_emb`` -> ``trf_blocks`` -> ``final_norm`` -> ``out_head``, scaled RoPE.

    The attribute names are GPT-2's, so the chapter's head swap and freezing work unchanged.
    """

    def rope_frequencies(self, cfg: dict[str, Any]) -> torch.Tensor:
        return llama3_inv_freq(cfg["head_dim"], cfg["rope_base"], cfg.get("rope_freq"))

