"""The GPT-2 tokenizer, offline.

``get_tokenizer()`` returns the same ``tiktoken.Encoding`` as ``tiktoken.get_encoding("gpt2")``,
built from the BPE ranks shipped inside this package (``assets/gpt2.tiktoken``, MIT, from the
``openai-whisper==20250625`` sdist). It never touches the network and writes no cache files.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from importlib import resources

import tiktoken

GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
END_OF_TEXT = "<|endoftext|>"
END_OF_TEXT_ID = 50256
GPT2_VOCAB_SIZE = 50257
# GPT-2's pre-tokenizer: contractions, letters, digits, other symbols, whitespace.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _load_ranks() -> dict[bytes, int]:
    data = resources.files("gptlib").joinpath("assets/gpt2.tiktoken").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != GPT2_RANKS_SHA256:
        raise RuntimeError(
            f"The bundled GPT-2 BPE file gptlib/assets/gpt2.tiktoken has sha256 {digest}, "
            f"expected {GPT2_RANKS_SHA256}. The installation is damaged: reinstall gptlib."
        )
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@lru_cache(maxsize=1)
def get_tokenizer() -> tiktoken.Encoding:
    """GPT-2's byte-pair encoding (50,257 tokens; ``<|endoftext|>`` is 50256)."""
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=_load_ranks(),
        special_tokens={END_OF_TEXT: END_OF_TEXT_ID},
        explicit_n_vocab=GPT2_VOCAB_SIZE,
    )
