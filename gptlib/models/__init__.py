"""Two newer open models beside GPT-2, written from scratch: Qwen3 (``qwen3``) and Llama 3.2
(``llama3``), with their shared parts in ``parts``, Hugging Face weights in ``hf_weights`` and
their own tokenizers in ``hf_tokenizer``.

Each keeps GPT-2's attribute names (``tok_emb``, ``trf_blocks``, ``final_norm``, ``out_head``),
so the chapter's recipe applies as it is::

    from gptlib.models import load_hf_model, load_hf_tokenizer
    model = load_hf_model("qwen3-0.6b")                # Qwen/Qwen3-0.6B, cached like GPT-2's
    tokenizer = load_hf_tokenizer("qwen3-0.6b")        # its own tokenizer.json; .pad_token_id
    clf = gptlib.classifier.add_classification_head(model)   # new 2-class head, last block trains

This registry says, once per family, where its code lives and what is true of all its models.
Importing it loads neither ``transformers``, ``tokenizers`` nor ``pandas``.
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass
from typing import Any

from torch import nn

# Where a tokenizer's pad id comes from, first match wins (``hf_tokenizer`` reads these):
# tokenizer_config.json's "pad_token", config.json's "pad_token_id", and when neither names one,
# the end-of-text token: tokenizer_config.json's "eos_token", then config.json's "eos_token_id".
PAD_SOURCES = (("tokenizer_config.json", "pad_token"), ("config.json", "pad_token_id"),
               ("tokenizer_config.json", "eos_token"), ("config.json", "eos_token_id"))


@dataclass(frozen=True)
class Family:
    """What holds for every model of one family. Whether the output head is tied to the token
    embedding is each model's own: its config's ``tie_embeddings`` (config.json's
    ``tie_word_embeddings``); a tied checkpoint has no ``lm_head.weight``."""

    name: str                   # "qwen3"
    module: str                 # the module with the architecture and the preset configs
    model_class: str            # the nn.Module in it
    configs: str                # the module's dict of preset configs
    model_type: str             # config.json's "model_type" for this family
    repos: dict[str, str | None]  # preset -> Hugging Face repo id (None: no released weights)
    pad_note: str               # what PAD_SOURCES finds in this family's real files
    embedding: str = "tok_emb"      # the token embedding
    blocks: str = "trf_blocks"      # the ModuleList of transformer blocks
    final_norm: str = "final_norm"  # the norm after the last block (trains with it)
    head: str = "out_head"          # the output head (the classifier replaces it)
    pad_sources: tuple[tuple[str, str], ...] = PAD_SOURCES

    def model_cls(self) -> type[nn.Module]:
        return getattr(importlib.import_module(self.module), self.model_class)

    def preset_configs(self) -> dict[str, dict[str, Any]]:
        return getattr(importlib.import_module(self.module), self.configs)

    def shared_setting(self, key: str) -> Any:
        """A config value every preset of the family shares (e.g. Qwen3's ``qk_norm``)."""
        values = {repr(cfg[key]) for cfg in self.preset_configs().values()}
        if len(values) != 1:
            raise ValueError(f"The {self.name} presets differ in {key!r}: {sorted(values)}.")
        return next(iter(self.preset_configs().values()))[key]

    def last_block(self, n_layers: int) -> str:
        """The parameter-name prefix of the last block, e.g. ``"trf_blocks.27"``."""
        return f"{self.blocks}.{n_layers - 1}"

    def trainable_prefixes(self, n_layers: int) -> tuple[str, ...]:
        """The chapter's choice: the last block, the final norm and the (new) head train."""
        return (f"{self.last_block(n_layers)}.", f"{self.final_norm}.", f"{self.head}.")


FAMILIES: dict[str, Family] = {
    "qwen3": Family(
        name="qwen3", module="gptlib.models.qwen3", model_class="Qwen3Model", configs="QWEN3_CONFIGS",
        model_type="qwen3", repos={"qwen3-0.6b": "Qwen/Qwen3-0.6B", "qwen3-tiny (test)": None},
        pad_note="tokenizer_config.json names a pad token: <|endoftext|> (151643).",
    ),
    "llama3": Family(
        name="llama3", module="gptlib.models.llama3", model_class="Llama3Model",
        configs="LLAMA3_CONFIGS", model_type="llama",
        repos={"llama3.2-1b": "meta-llama/Llama-3.2-1B", "llama3.2-tiny (test)": None},
        pad_note="no pad token in the files: the end-of-text token <|end_of_text|> (128001) pads.",
    ),
}


def family_of(name: str) -> Family:
    """The family of a preset name (``"qwen3-0.6b"``), a Hugging Face repo id
    (``"Qwen/Qwen3-0.6B"``), a family name (``"llama3"``) or a config.json ``model_type``."""
    low = str(name).lower().strip()
    for family in FAMILIES.values():
        names = {family.name, family.model_type, *family.repos}
        repos = {repo.lower() for repo in family.repos.values() if repo}
        if low in names or low in repos:
            return family
    presets = [p for f in FAMILIES.values() for p in f.repos]
    raise ValueError(f"Unknown model {name!r}. Models: {', '.join(repr(p) for p in presets)}; "
                     f"families: {list(FAMILIES)}.")


def preset_name(name: str) -> str:
    """The preset name for a preset or a repo id (``"Qwen/Qwen3-0.6B"`` -> ``"qwen3-0.6b"``)."""
    low = str(name).lower().strip()
    for preset, repo in family_of(name).repos.items():
        if low in (preset, (repo or "").lower()):
            return preset
    raise ValueError(f"{name!r} is a family, not a model; models are {list(family_of(name).repos)}.")


def hf_repo(name: str) -> str:
    """The Hugging Face repo id of a preset (ValueError for a test config)."""
    preset = preset_name(name)
    repo = family_of(preset).repos[preset]
    if repo is None:
        raise ValueError(f"{preset!r} has no released weights: use random ones (--weights random; in Python "
                         f"build_model({preset!r})).")
    return repo


def get_config(name: str, **overrides: Any) -> dict[str, Any]:
    """A fresh copy of a preset's config, with overrides (e.g. ``dtype="bfloat16"``)."""
    preset = preset_name(name)
    cfg = copy.deepcopy(family_of(preset).preset_configs()[preset])
    unknown = set(overrides) - set(cfg) - {"rope_freq"}
    if unknown:
        raise ValueError(f"Unknown config key(s) {sorted(unknown)}; valid keys are {sorted(cfg)}.")
    cfg.update(overrides)
    return cfg


def build_model(name_or_cfg: str | dict[str, Any], family: str | None = None, **overrides: Any) -> nn.Module:
    """A model with random weights from a preset name, or from a config dict and its family.

    Build on the meta device to count parameters without memory::

        with torch.device("meta"):
            model = build_model("qwen3-0.6b")
    """
    if isinstance(name_or_cfg, str):
        return family_of(name_or_cfg).model_cls()(get_config(name_or_cfg, **overrides))
    if family is None:
        raise ValueError("Give the family ('qwen3' or 'llama3') with a config dict.")
    return family_of(family).model_cls()({**name_or_cfg, **overrides})


OPEN_MODELS = tuple(preset for family in FAMILIES.values() for preset in family.repos)


def is_open_model(name: str) -> bool:
    """True for a Qwen3 or Llama preset (or repo id); False for GPT-2's presets."""
    try:
        preset_name(name)
        return True
    except ValueError:
        return False


def canonical_name(name: str) -> str:
    """The full preset name of any model gptlib runs: GPT-2's (``"small"`` ->
    ``"gpt2-small (124M)"``) or an open model's (``"Qwen/Qwen3-0.6B"`` -> ``"qwen3-0.6b"``).
    ValueError lists both kinds."""
    from gptlib.model import resolve_preset

    if is_open_model(name):
        return preset_name(name)
    try:
        return resolve_preset(name)
    except ValueError as err:
        raise ValueError(f"{err} Open models: {', '.join(repr(p) for p in OPEN_MODELS)}.") from None


def any_config(name: str) -> dict[str, Any]:
    """The config of any model gptlib runs (a GPT-2 preset or an open model's): what the
    settings' checks and the memory estimate read (``context_length``, ``n_layers``, ``emb_dim``)."""
    from gptlib.model import get_config as gpt2_config

    return get_config(name) if is_open_model(name) else gpt2_config(name)


def has_weights(name: str) -> bool:
    """Whether released weights exist for a preset (GPT-2's four sizes, Qwen3-0.6B, Llama 3.2 1B)."""
    from gptlib.weights import HF_REPOS

    if is_open_model(name):
        return family_of(name).repos[preset_name(name)] is not None
    return canonical_name(name) in HF_REPOS


# name -> the submodule that defines it, loaded on first use (PEP 562)
_EXPORTS = {"Qwen3Model": "qwen3", "QWEN3_CONFIGS": "qwen3", "Llama3Model": "llama3",
            "LLAMA3_CONFIGS": "llama3", "load_hf_model": "hf_weights", "load_hf_tokenizer": "hf_tokenizer",
            "open_base": "hf_weights", "run_tokenizer": "hf_tokenizer"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"gptlib.models.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'gptlib.models' has no attribute {name!r}")
