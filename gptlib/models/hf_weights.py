"""Qwen3 and Llama 3.2 weights from the Hugging Face Hub, loaded into ``gptlib.models``.

``load_hf_model("qwen3-0.6b")`` fetches ``config.json`` and ``model.safetensors`` (or the shards
that ``model.safetensors.index.json`` lists) from ``{hub}/{repo}/resolve/main/{file}`` into
gptlib's cache, beside GPT-2's weights (``<cache>/weights/qwen3-0.6b/``), unless a verified
copy is already there or in the Hugging Face cache. A local folder (``save_pretrained``'s) or
file works too. The model's config is read from ``config.json``, never assumed.

The names differ only in spelling (table :data:`BLOCK_NAMES`); no tensor is transposed or
split. A checkpoint with tied embeddings has no ``lm_head.weight``: the output head is the
token embedding. Llama's repository is gated: without a token the Hub answers 401 or 403, and
the error says how to get access (``HF_TOKEN``, sent only to the Hub and only then).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gptlib.models import build_model, family_of, hf_repo, is_open_model, preset_name
from gptlib.support.download import DownloadError, download_file
from gptlib.support.files import cache_dir, sha256_of
from gptlib.support.meta import on_meta
from gptlib.support.weight_files import (
    check_safetensors,
    describe_content,
    hf_cache_copy,
    hf_cache_root,
)
from gptlib.weights import WeightLoadError, hub_endpoint, weights_path

INDEX = "model.safetensors.index.json"
TOP_NAMES = {  # ours -> Hugging Face
    "tok_emb.weight": "model.embed_tokens.weight",
    "final_norm.scale": "model.norm.weight",
    "out_head.weight": "lm_head.weight",
}
BLOCK_NAMES = {  # ours, inside trf_blocks.N. -> Hugging Face, inside model.layers.N.
    "att.W_query.weight": "self_attn.q_proj.weight",
    "att.W_key.weight": "self_attn.k_proj.weight",
    "att.W_value.weight": "self_attn.v_proj.weight",
    "att.out_proj.weight": "self_attn.o_proj.weight",
    "att.q_norm.scale": "self_attn.q_norm.weight",  # Qwen3 only
    "att.k_norm.scale": "self_attn.k_norm.weight",  # Qwen3 only
    "norm1.scale": "input_layernorm.weight",
    "ff.fc1.weight": "mlp.gate_proj.weight",
    "ff.fc2.weight": "mlp.up_proj.weight",
    "ff.fc3.weight": "mlp.down_proj.weight",
    "norm2.scale": "post_attention_layernorm.weight",
}
_IGNORED = re.compile(r"^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$")  # older Llama files


class GatedRepoError(DownloadError):
    """The Hub answered 401/403: the repository needs an accepted licence and a token."""


class HubFileMissing(DownloadError):
    """The Hub answered 404: the repository has no such file."""


# ----------------------------------------------------------------------------- names and config


def hf_name(ours: str) -> str:
    """Hugging Face's name for one of our parameter names (``trf_blocks.3.ff.fc1.weight`` ->
    ``model.layers.3.mlp.gate_proj.weight``)."""
    if ours in TOP_NAMES:
        return TOP_NAMES[ours]
    m = re.fullmatch(r"trf_blocks\.(\d+)\.(.+)", ours)
    if m and m.group(2) in BLOCK_NAMES:
        return f"model.layers.{m.group(1)}.{BLOCK_NAMES[m.group(2)]}"
    raise KeyError(f"{ours!r} has no Hugging Face name (a replaced head is not in the checkpoint).")


def config_from_hf(config: dict[str, Any]) -> dict[str, Any]:
    """Our config from a Hugging Face ``config.json`` dict (transformers 4's ``rope_theta`` and
    ``rope_scaling`` or 5's ``rope_parameters``). The dtype stays float32."""
    family = family_of(config.get("model_type", "?"))
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    unsupported = {"hidden_act": config.get("hidden_act", "silu") != "silu",
                   "attention_bias": bool(config.get("attention_bias")), "mlp_bias": bool(config.get("mlp_bias")),
                   "use_sliding_window": bool(config.get("use_sliding_window")),
                   "rope type": rope_type not in ("default", "llama3")}
    if any(unsupported.values()):
        raise WeightLoadError(f"config.json asks for what gptlib's {family.name} does not have: "
                              f"{[k for k, bad in unsupported.items() if bad]}.")
    try:
        cfg = {
            "vocab_size": config["vocab_size"],
            "context_length": config["max_position_embeddings"],
            "emb_dim": config["hidden_size"],
            "n_heads": config["num_attention_heads"],
            "n_kv_groups": config.get("num_key_value_heads") or config["num_attention_heads"],
            "head_dim": config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"],
            "n_layers": config["num_hidden_layers"],
            "hidden_dim": config["intermediate_size"],
            "rope_base": float(rope.get("rope_theta", config.get("rope_theta"))),
            "qk_norm": family.shared_setting("qk_norm"),
            "norm_eps": config["rms_norm_eps"],
            "tie_embeddings": bool(config.get("tie_word_embeddings", False)),
            "dtype": "float32",
        }
        if rope_type == "llama3":
            cfg["rope_freq"] = {k: float(rope[k]) for k in ("factor", "low_freq_factor", "high_freq_factor")}
            cfg["rope_freq"]["original_context_length"] = int(rope["original_max_position_embeddings"])
    except (KeyError, TypeError) as err:
        raise WeightLoadError(f"config.json lacks {err} (or holds null): it is not a {family.name} config.") from None
    return cfg


def to_ours(model: nn.Module, hf_state: dict[str, torch.Tensor], source: str = "the weights") -> dict[str, torch.Tensor]:
    """Rename Hugging Face tensors to ``model``'s names; name every missing, extra or misshapen one."""
    ours = model.state_dict()
    tied = model.cfg["tie_embeddings"]
    wanted = {hf_name(k): k for k in ours if not (tied and k == "out_head.weight")}
    # Tied: the head is the embedding; a file that also holds lm_head.weight has it as a copy.
    state = {k: v for k, v in hf_state.items() if not _IGNORED.match(k) and not (tied and k == "lm_head.weight")}
    missing = [k for k in wanted if k not in state]
    extra = [k for k in state if k not in wanted]
    if missing or extra:
        hint = " (config.json says tie_word_embeddings=false)" if "lm_head.weight" in missing else ""
        problems = [f"missing {_some(missing)}{hint}"] * bool(missing) + [f"unexpected {_some(extra)}"] * bool(extra)
        raise WeightLoadError(f"{source} do not fit {type(model).__name__}: {'; '.join(problems)}.")
    out = {}
    for hf, name in wanted.items():
        if tuple(state[hf].shape) != tuple(ours[name].shape):
            raise WeightLoadError(f"Tensor {hf!r} in {source} has shape {tuple(state[hf].shape)}, but "
                                  f"{name!r} has {tuple(ours[name].shape)}.")
        out[name] = state[hf]
    if tied:
        out["out_head.weight"] = out["tok_emb.weight"]
    return out


def _some(names: list[str]) -> str:
    more = f" and {len(names) - 6} more" if len(names) > 6 else ""
    return ", ".join(names[:6]) + more


# ----------------------------------------------------------------------------- reading files


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        with open(path, "rb") as f:
            raise WeightLoadError(f"{path} is not JSON: {describe_content(f.read(512))}.") from None
    if not isinstance(value, dict):
        raise WeightLoadError(f"{path} holds JSON, but not an object.")
    return value


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checked safetensors file, whatever its name (a Hugging Face cache blob has no suffix)."""
    from safetensors.torch import load_file

    check_safetensors(path)
    return load_file(str(path))


def read_shards(index_path: Path, locate: Callable[[str], Path]) -> dict[str, torch.Tensor]:
    """One state dict from the shards an index lists (``locate(shard)`` finds or fetches each);
    every tensor the index names must be there."""
    weight_map = read_json(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise WeightLoadError(f"{index_path} has no weight_map.")
    shards = [locate(shard) for shard in sorted(set(weight_map.values()))]
    state = {k: v for path in shards for k, v in read_safetensors(path).items()}
    missing = [k for k in weight_map if k not in state]
    if missing:
        raise WeightLoadError(f"The shards of {index_path} lack tensor(s) {_some(missing)}.")
    return state


def read_hf_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a folder (``model.safetensors`` or an index and its shards) or one file."""
    path = Path(path)
    if path.is_dir():
        single, index = path / "model.safetensors", path / INDEX
        if not single.exists() and not index.exists():
            raise FileNotFoundError(f"{path} holds neither model.safetensors nor {INDEX}.")
        path = single if single.exists() else index
    if path.name.endswith(".index.json"):
        return read_shards(path, lambda shard: path.parent / shard)
    return read_safetensors(path)


# ----------------------------------------------------------------------------- the Hub


def model_dir(name: str, root: str | Path | None = None) -> Path:
    """Where a preset's files are cached: beside GPT-2's (``<cache>/weights/<preset>``)."""
    return Path(root or cache_dir()) / "weights" / preset_name(name)


def weights_file(name: str) -> Path:
    """Where any model's weights are cached: GPT-2's ``weights_path``, or an open model's
    ``model.safetensors`` in :func:`model_dir` (what a check for "already downloaded" looks at)."""
    return model_dir(name) / "model.safetensors" if is_open_model(name) else weights_path(name)


def hf_token() -> tuple[str, str] | None:
    """(token, where it came from): ``$HF_TOKEN``, ``$HUGGING_FACE_HUB_TOKEN``, or the file
    ``hf auth login`` writes (``$HF_TOKEN_PATH``, else ``$HF_HOME/token``); None if none."""
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(var, "").strip():
            return os.environ[var].strip(), var
    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface").expanduser()
    file = Path(os.environ.get("HF_TOKEN_PATH") or home / "token").expanduser()
    token = file.read_text(encoding="utf-8").strip() if file.is_file() else ""
    return (token, str(file)) if token else None


def _check(filename: str) -> Callable[[Path], object]:
    """What a fetched file must pass before it is cached: a sound safetensors header, or JSON."""
    if filename.endswith(".safetensors"):
        return lambda path: check_safetensors(path, advice="It was not kept.")
    return read_json


def hf_cache_file(repo: str, filename: str) -> Path | None:
    """A verified copy of a repo's file in the Hugging Face cache, or None. A blob is named by
    its sha256 (large files) or its git blob sha1 (small ones); the bytes must match the name."""
    if filename.endswith(".safetensors"):
        return hf_cache_copy(repo, filename)
    folder = hf_cache_root() / f"models--{repo.replace('/', '--')}" / "snapshots"
    for candidate in sorted(folder.glob(f"*/{filename}")) if folder.is_dir() else []:
        blob = candidate.resolve()
        data = blob.read_bytes()
        git_sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        if blob.name in (git_sha1, sha256_of(blob)):
            return blob
    return None


def fetch_hub_file(repo: str, filename: str, dest: Path, *, progress: bool = True,
                   timeout: float | None = None, verbose: bool = True) -> Path:
    """``repo``'s file: ``dest`` when it is there and checks; else a verified copy in the Hugging
    Face cache; else downloaded to ``dest``. On 401/403 it tries again with the Hub token (see
    :func:`hf_token`); :class:`GatedRepoError` says what to do when that is missing or refused,
    :class:`HubFileMissing` reports a 404."""
    if not dest.exists() and (found := hf_cache_file(repo, filename)) is not None:
        if verbose:
            print(f"Using the verified {filename} in the Hugging Face cache: {found}")
        return found
    url = f"{hub_endpoint()}/{repo}/resolve/main/{filename}"
    try:
        return download_file(url, dest, progress=progress, timeout=timeout, check=_check(filename))
    except DownloadError as err:
        codes = set(err.http_status)
        if not codes & {401, 403}:
            if 404 in codes:
                raise HubFileMissing(f"{repo} has no {filename} ({url}: HTTP 404).") from None
            raise
        token = hf_token()
        if token is None:
            raise GatedRepoError(_gated_advice(repo, url, min(codes & {401, 403}), None)) from None
    try:  # a gated file: again, with the token (sent to the Hub only, never to a host it redirects to)
        return download_file(url, dest, progress=progress, timeout=timeout, check=_check(filename),
                             headers={"Authorization": f"Bearer {token[0]}"})
    except DownloadError as err:
        refused = set(err.http_status) & {401, 403}
        if refused:
            raise GatedRepoError(_gated_advice(repo, url, min(refused), token[1])) from None
        if 404 in err.http_status:
            raise HubFileMissing(f"{repo} has no {filename} ({url}: HTTP 404).") from None
        raise


def _gated_advice(repo: str, url: str, code: int, token_source: str | None) -> str:
    page = f"https://huggingface.co/{repo}"
    if token_source is None:
        return (f"{repo} is a gated repository: the Hub answered HTTP {code} for {url}.\n"
                f"  1. Sign in at {page} and accept the licence there (access may take a while to be granted).\n"
                "  2. Create a 'read' token at https://huggingface.co/settings/tokens and give it to gptlib:\n"
                "       export HF_TOKEN=hf_...\n"
                "  3. Run again: gptlib sends the token to the Hub only, and only for gated files.\n"
                "Or download the files elsewhere and pass their folder (load_hf_model('/path/to/folder')).")
    return (f"The Hub refused the token from {token_source} for {repo} (HTTP {code} for {url}). Accept the "
            f"licence at {page} with the account the token belongs to, wait until access is granted, and check "
            "that the token may read (https://huggingface.co/settings/tokens).")


def fetch_model(name: str, root: str | Path | None = None, progress: bool = True,
                timeout: float | None = None) -> tuple[dict[str, Any], Path, Callable[[str], Path] | None]:
    """A preset's files on disk, none read beyond ``config.json`` (what ``download weights`` needs):
    the config, the weights file or the shards' index, and for shards how to find each (fetched)."""
    repo, folder = hf_repo(name), model_dir(name, root)

    def fetch(filename: str) -> Path:
        return fetch_hub_file(repo, filename, folder / filename, progress=progress, timeout=timeout)

    config = read_json(fetch("config.json"))
    index_path = folder / INDEX if (folder / INDEX).exists() else hf_cache_file(repo, INDEX)
    if index_path is None:
        try:
            return config, fetch("model.safetensors"), None
        except HubFileMissing:
            index_path = fetch(INDEX)
    weight_map = read_json(index_path).get("weight_map")
    shards = {s: fetch(s) for s in sorted(set(weight_map.values()))} if isinstance(weight_map, dict) else {}
    return config, index_path, lambda shard: shards.get(shard) or fetch(shard)


def download_model(name: str, root: str | Path | None = None, progress: bool = True,
                   timeout: float | None = None) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """A preset's ``config.json`` (as a dict), its tensors (Hugging Face names), and where they came from."""
    config, source, locate = fetch_model(name, root, progress, timeout)
    state = read_safetensors(source) if locate is None else read_shards(source, locate)
    return config, state, str(source)


def load_hf_model(name_or_path: str | Path, *, device: str | torch.device = "cpu",
                  dtype: str | torch.dtype | None = None, root: str | Path | None = None,
                  progress: bool = True, timeout: float | None = None) -> nn.Module:
    """A ``Qwen3Model`` or ``Llama3Model`` with released weights, in eval mode.

    ``name_or_path``: a preset (``"qwen3-0.6b"``, ``"llama3.2-1b"``) or a repo id, fetched as the
    module docstring says; or a local folder with ``config.json`` and the weights. ``dtype``
    (default float32) is what the model computes in; the files hold bfloat16."""
    path = Path(name_or_path)
    if isinstance(name_or_path, Path) or path.exists():
        folder = path if path.is_dir() else path.parent
        config, state, source = read_json(folder / "config.json"), read_hf_weights(path), str(path)
    else:
        config, state, source = download_model(str(name_or_path), root, progress, timeout)
    cfg = config_from_hf(config)
    if dtype is not None:
        cfg["dtype"] = str(dtype).removeprefix("torch.")
    with on_meta():  # no memory, no random init: every tensor is then loaded
        model = family_of(config["model_type"]).model_cls()(cfg)
    model = model.to_empty(device="cpu")
    model.tie_weights()
    model.load_state_dict(to_ours(model, state, source), strict=True)
    return model.to(device).eval()


def open_base(name: str, weights: str = "random", seed: int = 123, progress: bool = True,
              timeout: float | None = None) -> nn.Module:
    """An open model with its language-model head: released weights (downloaded and cached like
    GPT-2's), or random ones created right after ``torch.manual_seed(seed)``."""
    if weights == "pretrained":
        return load_hf_model(name, progress=progress, timeout=timeout)
    torch.manual_seed(seed)
    return build_model(name)
