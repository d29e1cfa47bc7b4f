"""OpenAI's pretrained GPT-2 weights, without TensorFlow.

``load_pretrained("gpt2-small (124M)")`` downloads ``model.safetensors`` from the Hugging Face
Hub (``openai-community/gpt2`` and its larger siblings) into gptlib's cache and maps it onto
the book's layout. A local path works too, in either layout:

* Hugging Face: a folder from ``save_pretrained`` (with ``config.json``) or a single
  ``model.safetensors``/``pytorch_model.bin``. Tensor names may carry the ``transformer.``
  prefix or not; attention-mask buffers (``h.N.attn.bias``, ``h.N.attn.masked_bias``) are ignored.
* The book's own ``GPTModel`` state dict, saved as ``.pth`` or ``.safetensors``.

Hugging Face stores GPT-2's linear layers as ``Conv1D`` (weight shape in x out, the transpose
of ``nn.Linear``), keeps query, key and value side by side in ``c_attn``, and ties the output
head to the token embedding. The mapping below undoes each of these.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from gptlib.model import (
    BASE_CONFIG,
    MODEL_CONFIGS,
    GPTModel,
    check_config,
    get_config,
    register_weight_loader,
    resolve_preset,
)
from gptlib.support.download import DownloadError, download_file
from gptlib.support.files import cache_dir
from gptlib.support.meta import on_meta
from gptlib.support.weight_files import (
    WeightLoadError,
    check_safetensors,
    hf_cache_copy,
    read_state_dict,
)

HF_REPOS = {
    "gpt2-small (124M)": "openai-community/gpt2",
    "gpt2-medium (355M)": "openai-community/gpt2-medium",
    "gpt2-large (774M)": "openai-community/gpt2-large",
    "gpt2-xl (1558M)": "openai-community/gpt2-xl",
}
# The same OpenAI weights already converted to the book's layout (the book's own upload).
BOOK_LAYOUT_FILES = {
    "gpt2-small (124M)": "gpt2-small-124M.safetensors",
    "gpt2-medium (355M)": "gpt2-medium-355M.safetensors",
    "gpt2-large (774M)": "gpt2-large-774M.safetensors",
    "gpt2-xl (1558M)": "gpt2-xl-1558M.safetensors",
}
HEADS_BY_WIDTH = {cfg["emb_dim"]: cfg["n_heads"] for cfg in MODEL_CONFIGS.values()}
_IGNORED_HF = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")


def hub_endpoint() -> str:
    """The Hub's base URL; ``GPTLIB_HF_ENDPOINT`` (or ``HF_ENDPOINT``) points elsewhere."""
    return (os.environ.get("GPTLIB_HF_ENDPOINT") or os.environ.get("HF_ENDPOINT")
            or "https://huggingface.co").rstrip("/")


def weight_urls(name: str) -> list[str]:
    """Where a preset's weights live: the Hub's ``model.safetensors``, then mirrors."""
    key = resolve_preset(name)
    if key not in HF_REPOS:
        raise ValueError(
            f"{key!r} has no published weights; pretrained presets are {list(HF_REPOS)}. "
            "Use random weights for this preset (--weights random, or weights=\"random\")."
        )
    repo, book_file = HF_REPOS[key], BOOK_LAYOUT_FILES[key]
    return [
        f"{hub_endpoint()}/{repo}/resolve/main/model.safetensors",
        f"https://hf-mirror.com/{repo}/resolve/main/model.safetensors",
        f"{hub_endpoint()}/rasbt/gpt2-from-scratch-pytorch/resolve/main/{book_file}",
    ]


def weights_path(name: str, root: str | Path | None = None) -> Path:
    """The cache path of a preset's weight file (where a manual download should go)."""
    key = resolve_preset(name)
    slug = key.split(" ")[0]
    return Path(root or cache_dir()) / "weights" / slug / "model.safetensors"


def download_pretrained(name: str, root: str | Path | None = None, progress: bool = True,
                        timeout: float | None = None, verbose: bool = True) -> Path:
    """A preset's weight file: gptlib's cached copy; else a verified copy in the Hugging Face
    cache (``transformers`` keeps one there); else downloaded into gptlib's cache. Every
    file's safetensors header and size are checked before it is used or cached."""
    dest = weights_path(name, root)
    urls = weight_urls(name)
    if not dest.exists():
        found = hf_cache_copy(HF_REPOS[resolve_preset(name)])
        if found is not None:
            if verbose:
                print(f"Using the verified GPT-2 weights in the Hugging Face cache: {found}")
            return found
    try:
        return download_file(urls, dest, progress=progress, timeout=timeout,
                             check=lambda path: check_safetensors(path, advice="It was not kept."))
    except DownloadError as err:
        raise DownloadError(
            f"{err} Or train on random weights of the same shape: --weights random on the command line, "
            "GPTLIB_PROFILE=offline for the notebooks.", err.tried, err.http_status) from None


def is_hf_layout(state_dict: dict[str, torch.Tensor]) -> bool:
    return any(k.removeprefix("transformer.") == "wte.weight" for k in state_dict)


def hf_config(hf: dict[str, Any]) -> dict[str, Any]:
    """Our config from a Hugging Face GPT-2 ``config.json`` dict."""
    return {
        "vocab_size": hf["vocab_size"],
        "context_length": hf.get("n_positions", hf.get("n_ctx")),
        "emb_dim": hf["n_embd"],
        "n_heads": hf["n_head"],
        "n_layers": hf["n_layer"],
        "drop_rate": BASE_CONFIG["drop_rate"],
        "qkv_bias": True,
    }


def infer_config(state_dict: dict[str, torch.Tensor], n_heads: int | None = None) -> dict[str, Any]:
    """Read a config off tensor shapes (the head count comes from GPT-2's sizes or ``n_heads``)."""
    if is_hf_layout(state_dict):
        sd = {k.removeprefix("transformer."): v for k, v in state_dict.items()}
        vocab, emb = sd["wte.weight"].shape
        ctx = sd["wpe.weight"].shape[0]
        layers = {int(m.group(1)) for k in sd if (m := re.match(r"h\.(\d+)\.", k))}
        qkv_bias = True
    else:
        sd = state_dict
        if "tok_emb.weight" not in sd:
            raise WeightLoadError("Not a GPT-2 state dict: found neither 'wte.weight' nor 'tok_emb.weight'.")
        vocab, emb = sd["tok_emb.weight"].shape
        ctx = sd["pos_emb.weight"].shape[0]
        layers = {int(m.group(1)) for k in sd if (m := re.match(r"trf_blocks\.(\d+)\.", k))}
        # q/k/v biases: the book's qkv_bias=True; decided by any of them, so that one missing
        # bias is reported as missing rather than its siblings as extra
        qkv_bias = any(re.match(r"trf_blocks\.\d+\.att\.W_(query|key|value)\.bias$", k) for k in sd)
    heads = n_heads or HEADS_BY_WIDTH.get(int(emb))
    if heads is None:
        raise WeightLoadError(
            f"Cannot tell the number of attention heads for width {emb}; pass n_heads=..."
        )
    return {"vocab_size": int(vocab), "context_length": int(ctx), "emb_dim": int(emb),
            "n_heads": heads, "n_layers": len(layers), "drop_rate": BASE_CONFIG["drop_rate"],
            "qkv_bias": qkv_bias}


def hf_to_book(state_dict: dict[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
    """Map Hugging Face GPT-2 tensors to the book's names, shapes and split q/k/v.

    Shown in notebooks/03_replacing_the_output_head."""
    sd = {k.removeprefix("transformer."): v for k, v in state_dict.items()
          if not _IGNORED_HF.match(k.removeprefix("transformer."))}

    def take(name: str) -> torch.Tensor:
        if name not in sd:
            raise WeightLoadError(f"The Hugging Face weights lack tensor {name!r}.")
        return sd[name]

    out = {
        "tok_emb.weight": take("wte.weight"),
        "pos_emb.weight": take("wpe.weight"),
        "final_norm.scale": take("ln_f.weight"),
        "final_norm.shift": take("ln_f.bias"),
        # GPT-2 ties the output head to the token embedding.
        "out_head.weight": state_dict.get("lm_head.weight", take("wte.weight")),
    }
    for i in range(n_layers):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        q, k, v = take(h + "attn.c_attn.weight").chunk(3, dim=1)  # Conv1D: (in, 3*out)
        qb, kb, vb = take(h + "attn.c_attn.bias").chunk(3, dim=0)
        out.update({
            b + "att.W_query.weight": q.T, b + "att.W_query.bias": qb,
            b + "att.W_key.weight": k.T, b + "att.W_key.bias": kb,
            b + "att.W_value.weight": v.T, b + "att.W_value.bias": vb,
            b + "att.out_proj.weight": take(h + "attn.c_proj.weight").T,
            b + "att.out_proj.bias": take(h + "attn.c_proj.bias"),
            b + "ff.layers.0.weight": take(h + "mlp.c_fc.weight").T,
            b + "ff.layers.0.bias": take(h + "mlp.c_fc.bias"),
            b + "ff.layers.2.weight": take(h + "mlp.c_proj.weight").T,
            b + "ff.layers.2.bias": take(h + "mlp.c_proj.bias"),
            b + "norm1.scale": take(h + "ln_1.weight"), b + "norm1.shift": take(h + "ln_1.bias"),
            b + "norm2.scale": take(h + "ln_2.weight"), b + "norm2.shift": take(h + "ln_2.bias"),
        })
    return {k: v.contiguous() for k, v in out.items()}


def load_into(model: GPTModel, state_dict: dict[str, torch.Tensor], source: str = "the weights") -> GPTModel:
    """Copy book-layout tensors into ``model``, naming any missing or mis-shaped tensor."""
    sd = {k: v for k, v in state_dict.items() if not k.endswith(".att.mask")}
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith(".att.mask")}
    missing = [k for k in expected if k not in sd]
    if missing:
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise WeightLoadError(f"{source} lack(s) tensor(s) {', '.join(missing[:8])}{more}.")
    for k, v in expected.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise WeightLoadError(
                f"Tensor {k!r} in {source} has shape {tuple(sd[k].shape)}, "
                f"but the model expects {tuple(v.shape)}. Is the model size right?"
            )
    unexpected = [k for k in sd if k not in expected]
    if unexpected:
        raise WeightLoadError(f"{source} hold tensor(s) the model does not have: {unexpected[:5]}.")
    model.load_state_dict(sd, strict=True)
    return model


def load_pretrained(
    name_or_path: str | Path = "gpt2-small (124M)",
    *,
    device: str | torch.device = "cpu",
    drop_rate: float | None = None,
    n_heads: int | None = None,
    root: str | Path | None = None,
    progress: bool = True,
    timeout: float | None = None,
) -> GPTModel:
    """A ``GPTModel`` holding pretrained GPT-2 weights, from a preset name or a local path."""
    path = Path(name_or_path)
    if isinstance(name_or_path, Path) or path.exists():
        state_dict, cfg, source = _read_local(path, n_heads)
    else:
        cfg = get_config(str(name_or_path))
        file = download_pretrained(str(name_or_path), root=root, progress=progress, timeout=timeout)
        state_dict, source = read_state_dict(file), str(file)
    if drop_rate is not None:
        cfg["drop_rate"] = drop_rate
    check_config(cfg)
    if is_hf_layout(state_dict):
        state_dict = hf_to_book(state_dict, cfg["n_layers"])
    with on_meta():
        model = GPTModel(cfg)
    model = model.to_empty(device="cpu")
    load_into(model, state_dict, source)
    return model.to(device).eval()


register_weight_loader(load_pretrained)


def _read_local(path: Path, n_heads: int | None) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    if path.is_dir():
        for candidate in ("model.safetensors", "pytorch_model.bin"):
            if (path / candidate).exists():
                file = path / candidate
                break
        else:
            raise FileNotFoundError(f"{path} holds neither model.safetensors nor pytorch_model.bin.")
    else:
        file = path
    state_dict = read_state_dict(file)
    config_json = file.parent / "config.json"
    if is_hf_layout(state_dict) and config_json.exists():
        try:
            cfg = hf_config(json.loads(config_json.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as err:
            raise WeightLoadError(f"{config_json} is not a GPT-2 config.json ({type(err).__name__}: {err}).") from None
    else:
        cfg = infer_config(state_dict, n_heads)
    return state_dict, cfg, str(file)
