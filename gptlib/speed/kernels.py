"""The arithmetic behind :mod:`gptlib.speed.cached`, each step written out once:

* :func:`packed_attention`: causal self-attention for messages packed end to end (no padding
  computed in the projections), as the frozen blocks run it once per message;
* :func:`block_at_read`: a transformer block's output at one position per row (the read
  token), with the keys and values folded into two small products;
* :func:`bf16_is_fast`: whether bfloat16 matmuls are fast on a device: on a CPU, measured
  once per process (a small timed product in each dtype), not read from CPU flags: AMD's
  AVX512-BF16 runs them fast without the Intel AMX tiles that flags would look for.
"""

from __future__ import annotations

import functools
import os
import time

import torch
from torch import nn

BF16_ENV = "GPTLIB_BF16"  # auto (measure; the default), on, off
BF16_MIN_SPEEDUP = 1.3  # bfloat16 must beat float32 by this much to be worth its rounding


def packed_attention(att: nn.Module, a: torch.Tensor, slots: torch.Tensor, rows: int, width: int) -> torch.Tensor:
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


def block_at_read(block: nn.Module, x: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
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
    weights = att.dropout(weights)  # the read row's attention dropout (identity when inactive)
    mixed = torch.einsum("bht,btd->bhd", weights, a)  # sum_j w_j a_j, per head
    w_value = att.W_value.weight.view(heads, head_dim, d)
    context = torch.einsum("bhd,hed->bhe", mixed, w_value)
    if att.W_value.bias is not None:  # b_v times the weights' sum: 1, or less after dropout
        dropped = att.dropout.training and att.dropout.p > 0
        scale = weights.sum(-1, keepdim=True) if dropped else 1.0
        context = context + scale * att.W_value.bias.view(heads, head_dim)
    h = x[rows, read] + block.drop_resid(att.out_proj(context.reshape(b, d)))
    return h + block.drop_resid(block.ff(block.norm2(h)))


def _matmul_seconds(dtype: torch.dtype, repeats: int = 5) -> float:
    """The best of ``repeats`` timings of one (512 x 768) @ (768 x 3072) product: a feed-forward
    layer of gpt2-small on a batch's worth of tokens."""
    a, b = torch.randn(512, 768, dtype=dtype), torch.randn(768, 3072, dtype=dtype)
    a @ b  # warm up (first call picks the kernel)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return best


@functools.lru_cache(maxsize=1)
def cpu_bf16_speedup() -> float:
    """How many times faster a bfloat16 product runs than a float32 one on this CPU (measured
    once per process, about a tenth of a second)."""
    return _matmul_seconds(torch.float32) / _matmul_seconds(torch.bfloat16)


def bf16_is_fast(device: torch.device | str) -> bool:
    """True where bfloat16 matmuls are fast: CUDA GPUs with bf16; a CPU where a timed product
    runs at least :data:`BF16_MIN_SPEEDUP` times float32's speed. ``GPTLIB_BF16=on|off``
    overrides the measurement."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    choice = os.environ.get(BF16_ENV, "auto").strip().lower()
    if choice in ("on", "1", "true", "yes"):
        return True
    if choice in ("off", "0", "false", "no"):
        return False
    return cpu_bf16_speedup() >= BF16_MIN_SPEEDUP


def bf16_choice(device: torch.device | str) -> str:
    """One line saying which dtype fast mode computes the frozen part in, and why."""
    device = torch.device(device)
    chosen = "bfloat16" if bf16_is_fast(device) else "float32"
    forced = os.environ.get(BF16_ENV, "auto").strip().lower() not in ("", "auto")
    if device.type != "cpu":
        why = "the device supports bfloat16" if chosen == "bfloat16" else "no fast bfloat16 here"
    elif forced:
        why = f"{BF16_ENV}={os.environ[BF16_ENV]}"
    else:
        why = f"measured: bfloat16 products run {cpu_bf16_speedup():.1f}x float32's speed here"
    return f"Fast mode computes the frozen part in {chosen} ({why})."
