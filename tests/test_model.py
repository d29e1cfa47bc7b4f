"""gptlib.model against the book's own code (llms_from_scratch.ch04), plus config, tokenizer,
device and import checks. Everything here runs offline."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile

import pytest
import torch
from llms_from_scratch.ch04 import GPTModel as BookGPTModel

import gptlib
from gptlib.model import MODEL_CONFIGS, GPTModel, get_config
from gptlib.support.device import get_device
from gptlib.tokenizer import get_tokenizer

TOL = 1e-5


def small_cfg(**overrides):
    return get_config("gpt2-tiny (test)", **overrides)


def build_pair(cfg, seed=123):
    torch.manual_seed(seed)
    ours = GPTModel(cfg)
    torch.manual_seed(seed)
    book = BookGPTModel(cfg)
    return ours, book


def random_ids(cfg, batch=2, n_tokens=17, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg["vocab_size"], (batch, n_tokens), generator=g)


def assert_same_state(ours: torch.nn.Module, book: torch.nn.Module) -> None:
    # Parameters are created in the book's order (what makes same seed -> same weights).
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in book.named_parameters()]
    ours_sd, book_sd = ours.state_dict(), book.state_dict()
    # Same keys, the book's ``att.mask`` buffers included (ours writes them last per block).
    assert sorted(ours_sd) == sorted(book_sd)
    for key, value in book_sd.items():
        assert ours_sd[key].shape == value.shape, key
        assert torch.equal(ours_sd[key], value), key


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# --------------------------------------------------------------------------- book parity


def test_same_seed_same_weights_small():
    ours, book = build_pair(small_cfg())
    assert_same_state(ours, book)


def test_different_seed_gives_different_weights():
    # Guards the test above: the comparison does notice different weights.
    torch.manual_seed(1)
    a = GPTModel(small_cfg())
    torch.manual_seed(2)
    b = BookGPTModel(small_cfg())
    assert not torch.equal(a.state_dict()["tok_emb.weight"], b.state_dict()["tok_emb.weight"])


def test_logits_match_book_eval_small():
    cfg = small_cfg()
    ours, book = build_pair(cfg)
    ours.eval()
    book.eval()
    ids = random_ids(cfg, n_tokens=cfg["context_length"])  # full context, too
    with torch.no_grad():
        a, b = ours(ids), book(ids)
        a_short, b_short = ours(ids[:, :5]), book(ids[:, :5])
    diff = max(max_abs_diff(a, b), max_abs_diff(a_short, b_short))
    print(f"max |ours - book| logits (tiny, eval): {diff:.3e}")
    assert a.shape == (2, cfg["context_length"], cfg["vocab_size"])
    assert diff <= TOL


def test_logits_match_book_train_mode_with_dropout():
    cfg = small_cfg(drop_rate=0.1)
    ours, book = build_pair(cfg)
    ours.train()
    book.train()
    ids = random_ids(cfg, n_tokens=23)
    torch.manual_seed(7)
    a = ours(ids)
    torch.manual_seed(7)
    b = book(ids)
    diff = max_abs_diff(a, b)
    print(f"max |ours - book| logits (tiny, train, drop_rate=0.1): {diff:.3e}")
    assert diff <= TOL

    # Dropout really acted: another seed, or eval mode, gives other logits.
    torch.manual_seed(8)
    other_seed = ours(ids)
    assert max_abs_diff(a, other_seed) > 1e-3
    with torch.no_grad():
        evaluated = ours.eval()(ids)
    assert max_abs_diff(a.detach(), evaluated) > 1e-3


@pytest.mark.slow
def test_gpt2_small_same_seed_same_weights_and_logits():
    cfg = get_config("gpt2-small (124M)")
    ours, book = build_pair(cfg, seed=42)
    assert_same_state(ours, book)
    ours.eval()
    book.eval()
    ids = random_ids(cfg, batch=1, n_tokens=12)
    with torch.no_grad():
        diff = max_abs_diff(ours(ids), book(ids))
    print(f"max |ours - book| logits (gpt2-small 124M, eval): {diff:.3e}")
    assert diff <= TOL


# --------------------------------------------------------------------------- state dicts


def test_book_state_dict_loads_into_ours_strict(tmp_path):
    cfg = small_cfg()
    torch.manual_seed(1)
    book = BookGPTModel(cfg).eval()
    torch.save(book.state_dict(), tmp_path / "book.pth")
    state = torch.load(tmp_path / "book.pth", weights_only=True)
    assert "trf_blocks.0.att.mask" in state

    torch.manual_seed(2)  # other weights, so that loading must change them
    ours = GPTModel(cfg).eval()
    result = ours.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    ids = random_ids(cfg)
    with torch.no_grad():
        assert max_abs_diff(ours(ids), book(ids)) <= TOL


def test_our_state_dict_loads_into_book_strict(tmp_path):
    cfg = small_cfg()
    torch.manual_seed(1)
    ours = GPTModel(cfg).eval()
    state = ours.state_dict()
    # The book's mask buffer key is written, with the book's values.
    n = cfg["context_length"]
    for i in range(cfg["n_layers"]):
        mask = state[f"trf_blocks.{i}.att.mask"]
        assert torch.equal(mask, torch.triu(torch.ones(n, n), diagonal=1))
    torch.save(state, tmp_path / "ours.pth")

    torch.manual_seed(2)
    book = BookGPTModel(cfg).eval()
    book.load_state_dict(torch.load(tmp_path / "ours.pth", weights_only=True), strict=True)
    ids = random_ids(cfg)
    with torch.no_grad():
        assert max_abs_diff(ours(ids), book(ids)) <= TOL


def test_state_dict_without_mask_keys_also_loads():
    cfg = small_cfg()
    torch.manual_seed(1)
    ours = GPTModel(cfg)
    state = {k: v for k, v in ours.state_dict().items() if not k.endswith(".att.mask")}
    GPTModel(cfg).load_state_dict(state, strict=True)


def test_strict_load_still_rejects_a_missing_weight():
    cfg = small_cfg()
    state = GPTModel(cfg).state_dict()
    del state["trf_blocks.1.ff.layers.0.weight"]
    with pytest.raises(RuntimeError, match=r"trf_blocks\.1\.ff\.layers\.0\.weight"):
        GPTModel(cfg).load_state_dict(state, strict=True)


# --------------------------------------------------------------------------- input checks


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return GPTModel(small_cfg()).eval()


@pytest.mark.parametrize("bad", [50257, 60000])
def test_token_id_too_large(tiny_model, bad):
    ids = torch.tensor([[1, 2, bad, 3]])
    with pytest.raises(ValueError) as err:
        tiny_model(ids)
    msg = str(err.value)
    assert str(bad) in msg
    assert "50256" in msg  # the largest valid id


def test_negative_token_id(tiny_model):
    with pytest.raises(ValueError) as err:
        tiny_model(torch.tensor([[5, -1, 7]]))
    msg = str(err.value)
    assert "-1" in msg
    assert "50256" in msg


def test_largest_valid_id_is_accepted(tiny_model):
    with torch.no_grad():
        out = tiny_model(torch.tensor([[0, 50256]]))
    assert out.shape == (1, 2, 50257)


def test_sequence_longer_than_context(tiny_model):
    n = tiny_model.context_length  # 256
    ids = torch.zeros((1, n + 1), dtype=torch.long)
    with pytest.raises(ValueError) as err:
        tiny_model(ids)
    msg = str(err.value)
    assert str(n + 1) in msg
    assert str(n) in msg.replace(str(n + 1), "")
    with torch.no_grad():
        assert tiny_model(ids[:, :n]).shape == (1, n, 50257)


# --------------------------------------------------------------------------- configs


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError) as err:
        get_config("gpt3-huge")
    msg = str(err.value)
    assert "gpt3-huge" in msg
    for name in MODEL_CONFIGS:
        assert name in msg


@pytest.mark.parametrize(
    "short, full",
    [
        ("small", "gpt2-small (124M)"),
        ("124M", "gpt2-small (124M)"),
        ("gpt2-small", "gpt2-small (124M)"),
        ("medium", "gpt2-medium (355M)"),
        ("774M", "gpt2-large (774M)"),
        ("xl", "gpt2-xl (1558M)"),
        ("tiny", "gpt2-tiny (test)"),
    ],
)
def test_short_names_resolve(short, full):
    assert get_config(short) == get_config(full)


def test_preset_values_match_the_book():
    cfg = get_config("gpt2-small (124M)")
    assert cfg == {"vocab_size": 50257, "context_length": 1024, "drop_rate": 0.0,
                   "qkv_bias": True, "emb_dim": 768, "n_layers": 12, "n_heads": 12}
    # A fresh dict each time: changing one does not change the next.
    cfg["drop_rate"] = 0.5
    assert get_config("small")["drop_rate"] == 0.0


def test_ambiguous_short_name_is_rejected():
    with pytest.raises(ValueError, match="Valid names"):
        get_config("gpt2")


# --------------------------------------------------------------------------- tokenizer


def test_tokenizer_ids():
    tok = get_tokenizer()
    assert tok.encode("Hello, world. Is this-- a test?") == [
        15496, 11, 995, 13, 1148, 428, 438, 257, 1332, 30,
    ]
    assert tok.encode("<|endoftext|>", allowed_special="all") == [50256]
    assert tok.n_vocab == 50257
    assert tok.encode("Do you have time") == [5211, 345, 423, 640]
    assert tok.decode([5211, 345, 423, 640]) == "Do you have time"


def test_tokenizer_writes_no_files_and_opens_no_sockets(tmp_path, monkeypatch):
    cache = tmp_path / "tiktoken_cache"
    tmp = tmp_path / "tmp"
    cache.mkdir()
    tmp.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(cache))
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))

    def no_network(*args, **kwargs):
        raise AssertionError("the tokenizer tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)

    get_tokenizer.cache_clear()
    try:
        tok = get_tokenizer()
        assert tok.encode("Do you have time") == [5211, 345, 423, 640]
    finally:
        get_tokenizer.cache_clear()
    assert list(cache.iterdir()) == []
    assert list(tmp.iterdir()) == []


# --------------------------------------------------------------------------- device


def test_get_device_cpu():
    assert get_device("cpu") == torch.device("cpu")


def test_get_device_auto(monkeypatch):
    monkeypatch.delenv("GPTLIB_DEVICE", raising=False)
    device = get_device("auto")
    assert isinstance(device, torch.device)
    assert device.type in {"cpu", "cuda", "mps"}
    assert get_device(None) == device


def test_get_device_env(monkeypatch):
    monkeypatch.setenv("GPTLIB_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_get_device_cuda_unavailable():
    with pytest.raises(ValueError) as err:
        get_device("cuda")
    msg = str(err.value)
    assert "cuda" in msg.lower()
    assert "not available" in msg
    assert "cpu" in msg


# --------------------------------------------------------------------------- imports


def test_import_gptlib_does_not_import_ipywidgets():
    code = "import gptlib, sys; assert 'ipywidgets' not in sys.modules, 'ipywidgets imported'"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr


def test_package_exports():
    assert gptlib.GPTModel is GPTModel
    assert gptlib.get_tokenizer is get_tokenizer
