"""A model's own tokenizer, read from its ``tokenizer.json`` with the ``tokenizers`` package.

GPT-2's tokenizer ships with gptlib (``gptlib.tokenizer``); Qwen3's and Llama's are the models'
own files, fetched and cached like their weights (:func:`load_hf_tokenizer`). The object
answers as the chapter's tokenizer does: ``encode(text) -> list[int]``, ``decode(ids)``, and
the ids the data pipeline needs, read from the model's files, never assumed:

* ``eos_token_id``: tokenizer_config.json's ``eos_token``, else config.json's ``eos_token_id``.
* ``pad_token_id``: tokenizer_config.json's ``pad_token``, else config.json's ``pad_token_id``,
  else the end-of-text token (``gptlib.models.PAD_SOURCES``). Qwen3 names a pad token,
  ``<|endoftext|>`` (151643). Llama 3.2 has none, so its end-of-text token,
  ``<|end_of_text|>`` (128001), pads, as the chapter's GPT-2 pads with ``<|endoftext|>``.

A token named by its text is looked up among tokenizer.json's tokens (its special tokens
included); ``pad_source`` and ``eos_source`` say which file and key gave each id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from gptlib.models import PAD_SOURCES, family_of, hf_repo, is_open_model, preset_name
from gptlib.models.hf_weights import HubFileMissing, fetch_hub_file, model_dir, read_json

EOS_SOURCES = tuple(source for source in PAD_SOURCES if "eos" in source[1])
BOS_SOURCES = (("tokenizer_config.json", "bos_token"), ("config.json", "bos_token_id"))


class HFTokenizer:
    """``tokenizer.json`` plus the special-token facts of ``tokenizer_config.json`` and ``config.json``."""

    def __init__(self, tokenizer_json: str | Path, tokenizer_config: dict[str, Any] | None = None,
                 config: dict[str, Any] | None = None,
                 pad_sources: Sequence[tuple[str, str]] = PAD_SOURCES):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ImportError("Qwen3's and Llama's tokenizers need the 'tokenizers' package: "
                              "pip install tokenizers") from None
        self.path = Path(tokenizer_json)
        self._tok = Tokenizer.from_file(str(self.path))
        self.files = {"tokenizer_config.json": tokenizer_config or {}, "config.json": config or {}}
        self.eos_token_id, self.eos_source = self._find(EOS_SOURCES)
        self.pad_token_id, self.pad_source = self._find(pad_sources)
        self.bos_token_id, _ = self._find(BOS_SOURCES, required=False)

    def _find(self, sources: Iterable[tuple[str, str]], required: bool = True) -> tuple[int | None, str]:
        """The first id the (file, key) sources give, and which one gave it."""
        sources = list(sources)
        for file, key in sources:
            value = self.files[file].get(key)
            if isinstance(value, dict):  # tokenizer_config.json may store {"content": "<|...|>", ...}
                value = value.get("content")
            if isinstance(value, list):  # config.json may list several eos ids; the first is the main one
                value = value[0] if value else None
            if isinstance(value, str):
                token_id = self._tok.token_to_id(value)
                if token_id is None:
                    raise ValueError(f"{file} names {key}={value!r}, which {self.path} does not hold.")
                return token_id, f"{file}: {key}={value!r}"
            if isinstance(value, int):
                return value, f"{file}: {key}={value}"
        if required:
            raise ValueError(f"None of {[f'{f}: {k}' for f, k in sources]} names a token; put the model's "
                             f"tokenizer_config.json and config.json beside {self.path}.")
        return None, ""

    @property
    def n_vocab(self) -> int:
        """Number of token ids, special tokens included (the model's vocab_size may be padded above it)."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def special_tokens(self) -> dict[str, int]:
        """tokenizer.json's special tokens, text -> id."""
        return {t.content: i for i, t in self._tok.get_added_tokens_decoder().items() if t.special}

    def encode(self, text: str, *, allowed_special: str | set[str] = frozenset(),
               disallowed_special: Any = (), add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text``.

        ``add_special_tokens`` adds what the model's files say every sequence starts with
        (Llama: ``<|begin_of_text|>``; Qwen3: nothing), as ``transformers`` does. Special-token
        text inside ``text`` (an SMS that says ``<|endoftext|>``) stays plain text unless
        ``allowed_special`` is ``"all"`` or names special tokens (then every special token is
        read as one). ``disallowed_special`` is accepted for tiktoken's signature and ignored."""
        self._tok.encode_special_tokens = not allowed_special
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def __repr__(self) -> str:
        return (f"HFTokenizer({str(self.path)!r}, n_vocab={self.n_vocab}, eos_token_id={self.eos_token_id}, "
                f"pad_token_id={self.pad_token_id} from {self.pad_source})")


def load_hf_tokenizer(name_or_path: str | Path, *, root: str | Path | None = None, progress: bool = True,
                      timeout: float | None = None) -> HFTokenizer:
    """A model's tokenizer: a preset (``"qwen3-0.6b"``) or repo id, fetched like its weights
    (``tokenizer.json``, then ``tokenizer_config.json`` and ``config.json`` where the repo has
    them); or a local folder holding them, or a ``tokenizer.json`` path (its folder is read)."""
    path = Path(name_or_path)
    if isinstance(name_or_path, Path) or path.exists():
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.exists():
            raise FileNotFoundError(f"{path} holds no tokenizer.json.")
        extra = {name: read_json(file.parent / name) if (file.parent / name).exists() else {}
                 for name in ("tokenizer_config.json", "config.json")}
    else:
        repo, folder = hf_repo(str(name_or_path)), model_dir(str(name_or_path), root)

        def fetch(filename: str) -> Path:
            return fetch_hub_file(repo, filename, folder / filename, progress=progress, timeout=timeout)

        file, extra = fetch("tokenizer.json"), {}
        for name in ("tokenizer_config.json", "config.json"):
            try:
                extra[name] = read_json(fetch(name))
            except HubFileMissing:
                extra[name] = {}
    try:
        sources = family_of(extra["config.json"].get("model_type", "")).pad_sources
    except ValueError:  # another family, or no config.json: the documented order
        sources = PAD_SOURCES
    return HFTokenizer(file, extra["tokenizer_config.json"], extra["config.json"], pad_sources=sources)


def run_tokenizer(name: str, weights: str = "random", timeout: float | None = None
                  ) -> tuple[Any, int, str, str | None]:
    """The tokenizer a run of ``name`` uses, its pad id, whose it is ("gpt2" or the preset), and
    a line saying so (None for GPT-2's own). GPT-2's presets take GPT-2's BPE. An open model takes

    its own (``tokenizer.json``; the pad id from its files) with released weights, or offline
    when its files are already cached. Random weights with no files here take GPT-2's
    BPE instead: its ids fit every preset's vocabulary, and weights that learned nothing read
    any consistent tokenization alike, so the run still shows the recipe; its pad id is GPT-2's.
    """
    from gptlib.tokenizer import END_OF_TEXT_ID, get_tokenizer

    if not is_open_model(name):
        return get_tokenizer(), END_OF_TEXT_ID, "gpt2", None
    preset = preset_name(name)
    have = (model_dir(preset) / "tokenizer.json").is_file()
    if weights == "pretrained" or have:
        tok = load_hf_tokenizer(preset, progress=False, timeout=timeout)
        return tok, tok.pad_token_id, preset, f"Tokenizer: {preset}'s own; pad id {tok.pad_token_id} ({tok.pad_source})"
    return get_tokenizer(), END_OF_TEXT_ID, "gpt2", (
        f"Tokenizer: {preset}'s tokenizer.json is not here (random weights, nothing downloaded), so GPT-2's BPE "
        f"stands in (its ids fit the vocabulary); pad id {END_OF_TEXT_ID}. With released weights the model's "
        "own tokenizer and pad id are used.")
