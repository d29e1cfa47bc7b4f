"""gptlib.weights: Hugging Face and book-layout weight files, and preset downloads, offline.

The reference is ``transformers``' own GPT2LMHeadModel with a small random config; the
"Hub" is a local HTTP server."""

from __future__ import annotations

import collections
import json
import socket
import time

import pytest
import torch
from llms_from_scratch.ch04 import GPTModel as BookGPTModel
from safetensors.torch import save_file

from gptlib.model import GPTModel, get_config
from gptlib.support.download import DownloadError
from gptlib.support.files import sha256_of
from gptlib.weights import (
    WeightLoadError,
    download_pretrained,
    load_pretrained,
    weight_urls,
    weights_path,
)

transformers = pytest.importorskip("transformers")

TOL = 1e-5
HUB_PATH = "/openai-community/gpt2/resolve/main/model.safetensors"


# --------------------------------------------------------------------------- fixtures


def make_hf_model(n_head: int = 2, seed: int = 0):
    config = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=n_head, n_positions=128,
                                     vocab_size=50257)
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config)
    # GPT-2's init (std 0.02) makes attention nearly uniform; larger weights make every
    # mapping mistake (transposes, q/k/v order, heads) show in the logits.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def hf_model():
    return make_hf_model()


@pytest.fixture(scope="module")
def input_ids():
    return torch.randint(0, 50257, (2, 40), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def hf_logits(hf_model, input_ids):
    with torch.no_grad():
        return hf_model(input_ids).logits


def hub_state_dict(hf_model, *, prefix: str = "", mask_buffers: bool = False,
                   lm_head: bool = False) -> dict[str, torch.Tensor]:
    """The tensors as a Hub checkpoint holds them (Conv1D layout, fused c_attn, tied head)."""
    out = {}
    for key, value in hf_model.state_dict().items():
        if key.startswith("lm_head."):
            continue
        out[prefix + key.removeprefix("transformer.")] = value.detach().clone().contiguous()
    n_ctx = hf_model.config.n_positions
    if mask_buffers:  # what older transformers versions wrote into each block
        for i in range(hf_model.config.n_layer):
            out[f"{prefix}h.{i}.attn.bias"] = torch.tril(torch.ones(n_ctx, n_ctx)).view(
                1, 1, n_ctx, n_ctx)
            out[f"{prefix}h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    if lm_head:
        out["lm_head.weight"] = hf_model.lm_head.weight.detach().clone()
    return out


def logits_of(model: GPTModel, ids: torch.Tensor) -> torch.Tensor:
    assert not model.training
    with torch.no_grad():
        return model(ids)


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# --------------------------------------------------------------------------- Hugging Face


def test_save_pretrained_folder_matches_hf(tmp_path, hf_model, input_ids, hf_logits):
    hf_model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").exists()
    model = GPTModel.from_pretrained(tmp_path)
    assert model.cfg["n_heads"] == 2 and model.cfg["n_layers"] == 2
    assert model.cfg["context_length"] == 128 and model.cfg["emb_dim"] == 64
    diff = max_abs_diff(logits_of(model, input_ids), hf_logits)
    print(f"max |ours - HF| logits (save_pretrained folder): {diff:.3e}")
    assert diff <= TOL


def test_loaded_model_is_sensitive_to_weights(tmp_path, hf_model, input_ids, hf_logits):
    # Guards the comparisons here: one changed tensor moves the logits far past TOL.
    hf_model.save_pretrained(tmp_path)
    model = load_pretrained(tmp_path)
    with torch.no_grad():
        model.trf_blocks[1].att.W_key.weight.mul_(1.01)
    assert max_abs_diff(logits_of(model, input_ids), hf_logits) > 1e-3


@pytest.mark.parametrize("prefix", ["", "transformer."], ids=["hub-names", "transformer-prefix"])
def test_single_safetensors_file_with_mask_buffers(tmp_path, hf_model, input_ids, hf_logits,
                                                   prefix):
    state = hub_state_dict(hf_model, prefix=prefix, mask_buffers=True,
                           lm_head=bool(prefix))
    if not prefix:
        assert {"wte.weight", "h.0.attn.c_attn.weight", "ln_f.weight", "h.1.attn.bias",
                "h.1.attn.masked_bias"} <= set(state)
    file = tmp_path / "model.safetensors"
    save_file(state, str(file))
    assert not (tmp_path / "config.json").exists()
    model = load_pretrained(file, n_heads=2)
    assert model.cfg["n_heads"] == 2 and model.cfg["context_length"] == 128
    diff = max_abs_diff(logits_of(model, input_ids), hf_logits)
    print(f"max |ours - HF| logits (single file, prefix={prefix!r}): {diff:.3e}")
    assert diff <= TOL


def test_n_heads_argument_is_used(tmp_path, input_ids):
    # Width 64 alone would suggest 2 heads (the tiny preset); n_heads=4 must win.
    hf = make_hf_model(n_head=4, seed=3)
    with torch.no_grad():
        expected = hf(input_ids).logits
    file = tmp_path / "four_heads.safetensors"
    save_file(hub_state_dict(hf), str(file))
    model = load_pretrained(file, n_heads=4)
    assert model.cfg["n_heads"] == 4
    assert max_abs_diff(logits_of(model, input_ids), expected) <= TOL
    wrong = load_pretrained(file, n_heads=2)
    assert max_abs_diff(logits_of(wrong, input_ids), expected) > 1e-3


def test_unknown_width_asks_for_n_heads(tmp_path):
    state = {"wte.weight": torch.zeros(10, 48), "wpe.weight": torch.zeros(8, 48),
             "ln_f.weight": torch.ones(48), "ln_f.bias": torch.zeros(48)}
    file = tmp_path / "odd.safetensors"
    save_file(state, str(file))
    with pytest.raises(WeightLoadError, match="n_heads"):
        load_pretrained(file)


def test_pytorch_model_bin_folder(tmp_path, hf_model, input_ids, hf_logits):
    # The older Hub format: a torch pickle with the 'transformer.' prefix and lm_head.weight.
    torch.save(hf_model.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(hf_model.config.to_dict()))
    model = load_pretrained(tmp_path)
    assert max_abs_diff(logits_of(model, input_ids), hf_logits) <= TOL


def test_device_and_drop_rate_arguments(tmp_path, hf_model):
    hf_model.save_pretrained(tmp_path)
    model = load_pretrained(tmp_path, drop_rate=0.1, device="cpu")
    assert model.cfg["drop_rate"] == 0.1
    assert model.trf_blocks[0].att.dropout.p == 0.1
    assert not model.training
    assert all(p.device.type == "cpu" for p in model.parameters())


# --------------------------------------------------------------------------- book layout


@pytest.mark.parametrize("qkv_bias", [True, False])
def test_book_layout_pth_and_safetensors(tmp_path, input_ids, qkv_bias):
    cfg = get_config("tiny", context_length=64, qkv_bias=qkv_bias)
    torch.manual_seed(5)
    book = BookGPTModel(cfg).eval()
    state = book.state_dict()
    assert "trf_blocks.0.att.mask" in state
    torch.save(state, tmp_path / "book.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "book.safetensors"))

    ids = input_ids[:, :30]
    with torch.no_grad():
        expected = book(ids)
    from_pth = load_pretrained(tmp_path / "book.pth")
    from_st = load_pretrained(str(tmp_path / "book.safetensors"))
    for model in (from_pth, from_st):
        assert model.cfg == {**cfg, "drop_rate": 0.0}
    a, b = logits_of(from_pth, ids), logits_of(from_st, ids)
    assert torch.equal(a, b)
    diff = max_abs_diff(a, expected)
    print(f"max |ours - book| logits (book-layout file, qkv_bias={qkv_bias}): {diff:.3e}")
    assert diff <= TOL


def test_book_checkpoint_dict_with_model_state_dict(tmp_path, input_ids):
    # The book's chapter 5 checkpoints: {"model_state_dict": ..., "optimizer_state_dict": ...}.
    cfg = get_config("tiny")
    torch.manual_seed(6)
    book = BookGPTModel(cfg).eval()
    torch.save({"model_state_dict": book.state_dict(), "optimizer_state_dict": {}},
               tmp_path / "ckpt.pth")
    model = load_pretrained(tmp_path / "ckpt.pth")
    with torch.no_grad():
        assert max_abs_diff(logits_of(model, input_ids), book(input_ids)) <= TOL


# --------------------------------------------------------------------------- bad files


def book_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return BookGPTModel(get_config("tiny", context_length=32)).state_dict()


def test_book_file_missing_tensor(tmp_path):
    state = book_state()
    del state["trf_blocks.1.norm2.scale"]
    file = tmp_path / "missing.safetensors"
    save_file(state, str(file))
    with pytest.raises(WeightLoadError, match=r"trf_blocks\.1\.norm2\.scale"):
        load_pretrained(file)


def test_book_file_misshaped_tensor(tmp_path):
    state = book_state()
    state["trf_blocks.0.ff.layers.0.bias"] = torch.zeros(100)
    file = tmp_path / "misshaped.pth"
    torch.save(state, file)
    with pytest.raises(WeightLoadError) as err:
        load_pretrained(file)
    msg = str(err.value)
    assert "trf_blocks.0.ff.layers.0.bias" in msg
    assert "(100,)" in msg and "(256,)" in msg


def test_book_file_unexpected_tensor(tmp_path):
    state = book_state()
    state["trf_blocks.0.extra.weight"] = torch.zeros(3)
    file = tmp_path / "extra.pth"
    torch.save(state, file)
    with pytest.raises(WeightLoadError, match=r"trf_blocks\.0\.extra\.weight"):
        load_pretrained(file)


def test_hf_file_missing_tensor(tmp_path, hf_model):
    state = hub_state_dict(hf_model)
    del state["h.1.mlp.c_fc.bias"]
    file = tmp_path / "model.safetensors"
    save_file(state, str(file))
    with pytest.raises(WeightLoadError, match=r"h\.1\.mlp\.c_fc\.bias"):
        load_pretrained(file, n_heads=2)


def test_hf_file_misshaped_tensor(tmp_path, hf_model):
    state = hub_state_dict(hf_model)
    state["h.0.attn.c_proj.weight"] = torch.zeros(64, 32)
    file = tmp_path / "model.safetensors"
    save_file(state, str(file))
    with pytest.raises(WeightLoadError) as err:
        load_pretrained(file, n_heads=2)
    msg = str(err.value)
    assert "trf_blocks.0.att.out_proj.weight" in msg  # the book's name for h.0.attn.c_proj
    assert "(32, 64)" in msg and "(64, 64)" in msg


def test_not_a_gpt2_file(tmp_path):
    file = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(file))
    with pytest.raises(WeightLoadError, match="tok_emb.weight"):
        load_pretrained(file)


# --------------------------------------------------------------------------- presets, downloads


class Hub:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.hits: collections.Counter[str] = collections.Counter()
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def hub(serve_http):
    state = Hub()

    def handle(h):
        state.hits[h.path] += 1
        data = state.files.get(h.path)
        if data is None:
            h.send_error(404)
            return
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    state.port = serve_http(handle)
    return state


@pytest.fixture
def home(tmp_path, monkeypatch):
    root = tmp_path / "gptlib_home"
    monkeypatch.setenv("GPTLIB_HOME", str(root))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    return root


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def files_under(root) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_weight_urls_follow_endpoint(monkeypatch):
    monkeypatch.setenv("GPTLIB_HF_ENDPOINT", "http://127.0.0.1:9/")
    urls = weight_urls("small")
    assert urls[0] == "http://127.0.0.1:9" + HUB_PATH
    assert all(u.startswith("http") for u in urls) and len(urls) == len(set(urls))
    with pytest.raises(ValueError, match="no published weights"):
        weight_urls("tiny")


def test_download_pretrained_into_cache(hub, home, offline, monkeypatch, tmp_path):
    from safetensors.torch import save_file

    save_file({"wte.weight": torch.arange(600, dtype=torch.float32).reshape(20, 30)}, tmp_path / "w.safetensors")
    payload = (tmp_path / "w.safetensors").read_bytes()
    hub.files[HUB_PATH] = payload
    monkeypatch.setenv("GPTLIB_HF_ENDPOINT", hub.endpoint)

    path = download_pretrained("gpt2-small (124M)", progress=False)
    assert path == home / "weights" / "gpt2-small" / "model.safetensors"
    assert path == weights_path("small")
    assert path.read_bytes() == payload
    assert hub.hits[HUB_PATH] == 1
    assert files_under(home) == [path]  # nothing else left behind (no *.part)

    # Cached: the short name finds the same file without a request.
    assert download_pretrained("124M", progress=False) == path
    assert hub.hits[HUB_PATH] == 1


def test_load_pretrained_preset_maps_downloaded_hub_file(hub, home, offline, monkeypatch,
                                                         hf_model, input_ids, hf_logits):
    import gptlib.weights

    small = {"vocab_size": 50257, "context_length": 128, "emb_dim": 64, "n_heads": 2,
             "n_layers": 2, "drop_rate": 0.0, "qkv_bias": True}
    # A real gpt2-small file is 0.5 GB; let the preset name stand for the small model.
    monkeypatch.setattr(gptlib.weights, "get_config", lambda name, **kw: dict(small))
    file = home.parent / "served.safetensors"
    save_file(hub_state_dict(hf_model, mask_buffers=True), str(file))
    hub.files[HUB_PATH] = file.read_bytes()
    monkeypatch.setenv("GPTLIB_HF_ENDPOINT", hub.endpoint)

    model = load_pretrained("gpt2-small (124M)", progress=False)
    cached = weights_path("gpt2-small (124M)")
    assert sha256_of(cached) == sha256_of(file)
    diff = max_abs_diff(logits_of(model, input_ids), hf_logits)
    print(f"max |ours - HF| logits (preset download): {diff:.3e}")
    assert diff <= TOL

    # Second load: from the cache, no request.
    again = GPTModel.from_pretrained("gpt2-small (124M)", progress=False)
    assert hub.hits[HUB_PATH] == 1
    assert torch.equal(logits_of(again, input_ids), logits_of(model, input_ids))


def test_offline_preset_download_error(home, offline, monkeypatch):
    port = closed_port()
    monkeypatch.setenv("GPTLIB_HF_ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        load_pretrained("gpt2-small (124M)", progress=False)
    elapsed = time.monotonic() - start
    msg = str(err.value)
    url = f"http://127.0.0.1:{port}{HUB_PATH}"
    assert url in msg
    assert "model.safetensors" in msg
    assert str(weights_path("gpt2-small (124M)")) in msg
    assert str(home) in str(weights_path("gpt2-small (124M)"))
    for other in weight_urls("gpt2-small (124M)")[1:]:  # every mirror was tried
        assert any(t.startswith(other) for t in err.value.tried)
    assert files_under(home) == []
    assert elapsed < 30
