"""Qwen3 and Llama 3.2 from scratch (gptlib.models): logits equal to transformers' and to the
book's models on tiny random checkpoints; the Hub path (single file, shards, a gated repo, the
Hugging Face cache) and the models' own tokenizers against a server on 127.0.0.1; the
chapter's head swap and freezing; parameter counts of the real sizes on the meta device."""

from __future__ import annotations

import collections
import hashlib
import json
import subprocess
import sys
import urllib.request

import pytest
import torch
from safetensors.torch import save_file

from gptlib.model import count_parameters
from gptlib.models import FAMILIES, build_model, family_of, get_config, hf_repo, preset_name
from gptlib.models.hf_tokenizer import load_hf_tokenizer
from gptlib.models.hf_weights import (
    GatedRepoError,
    config_from_hf,
    hf_name,
    load_hf_model,
    model_dir,
)
from gptlib.support.download import DownloadError
from gptlib.weights import WeightLoadError

TINY = {"qwen3": "qwen3-tiny (test)", "llama3": "llama3.2-tiny (test)"}
TOL = 1e-4


# ============================================================================ helpers


def hf_config(cfg: dict, family: str) -> dict:
    """A config.json for one of our configs, in the released files' (transformers 4) style."""
    out = {"model_type": FAMILIES[family].model_type, "vocab_size": cfg["vocab_size"],
           "hidden_size": cfg["emb_dim"], "intermediate_size": cfg["hidden_dim"],
           "num_hidden_layers": cfg["n_layers"], "num_attention_heads": cfg["n_heads"],
           "num_key_value_heads": cfg["n_kv_groups"], "head_dim": cfg["head_dim"],
           "max_position_embeddings": cfg["context_length"], "rms_norm_eps": cfg["norm_eps"],
           "rope_theta": cfg["rope_base"], "tie_word_embeddings": cfg["tie_embeddings"], "hidden_act": "silu"}
    if cfg.get("rope_freq"):
        f = cfg["rope_freq"]
        out["rope_scaling"] = {"rope_type": "llama3", "factor": f["factor"], "low_freq_factor": f["low_freq_factor"],
                               "high_freq_factor": f["high_freq_factor"],
                               "original_max_position_embeddings": f["original_context_length"]}
    return out


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights large enough that every part (RoPE scaling, QK-norm) shows in the logits."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1 + 0.2 * noise if p.dim() == 1 else 0.15 * noise)
    return model


def hf_state(model) -> dict[str, torch.Tensor]:
    """Our model's tensors under Hugging Face's names, as a tied checkpoint stores them."""
    tied = model.cfg["tie_embeddings"]
    return {hf_name(k): v.clone().contiguous() for k, v in model.state_dict().items()
            if not (tied and k == "out_head.weight")}


def tiny_model(family: str, tie: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    return randomize(build_model(TINY[family], tie_embeddings=tie), seed).eval()


def logits(model, ids) -> torch.Tensor:
    with torch.no_grad():
        out = model(ids)
    return getattr(out, "logits", out)


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return torch.randint(0, 512, (2, 40), generator=torch.Generator().manual_seed(1))


# ============================================================================ against transformers and the book


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """transformers' own model for each family, tied and untied, saved with save_pretrained."""
    transformers = pytest.importorskip("transformers")
    classes = {"qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM),
               "llama3": (transformers.LlamaConfig, transformers.LlamaForCausalLM)}
    out = {}
    for family, (config_cls, model_cls) in classes.items():
        for tie in (True, False):
            kwargs = hf_config(get_config(TINY[family], tie_embeddings=tie), family)
            kwargs.pop("model_type")
            torch.manual_seed(0)
            model = randomize(model_cls(config_cls(**kwargs)), seed=3).eval()
            folder = tmp_path_factory.mktemp(f"{family}-{'tied' if tie else 'untied'}")
            model.save_pretrained(folder)  # model.safetensors + config.json (transformers 5 style)
            out[family, tie] = (model, folder)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("family", ["qwen3", "llama3"])
def test_logits_match_transformers(hf_models, family, tie, ids):
    from safetensors import safe_open

    hf, folder = hf_models[family, tie]
    with safe_open(folder / "model.safetensors", "pt") as f:
        assert ("lm_head.weight" in f.keys()) is not tie  # a tied checkpoint has no head
    ours = load_hf_model(folder)
    assert type(ours).__name__ == FAMILIES[family].model_class
    assert (ours.out_head.weight is ours.tok_emb.weight) is tie
    diff = (logits(ours, ids) - logits(hf, ids)).abs().max().item()
    print(f"{family} tied={tie}: max |ours - transformers| = {diff:.2e}")
    assert diff <= TOL
    assert logits(hf, ids).std() > 0.5  # not a trivially flat output


@pytest.mark.slow
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("family", ["qwen3", "llama3"])
def test_logits_equal_the_books_models(hf_models, family, tie, ids):
    book_mod = pytest.importorskip(f"llms_from_scratch.{family}")
    from safetensors.torch import load_file

    _, folder = hf_models[family, tie]
    cfg = {**get_config(TINY[family], tie_embeddings=tie), "dtype": torch.float32}
    params = load_file(str(folder / "model.safetensors"))
    torch.manual_seed(0)
    if family == "qwen3":
        book = book_mod.Qwen3Model(cfg)
        book_mod.load_weights_into_qwen(book, cfg, params)
    else:
        book = book_mod.Llama3Model(cfg)
        book_mod.load_weights_into_llama(book, cfg, params)
    ours = load_hf_model(folder)
    diff = (logits(ours, ids) - logits(book.eval(), ids)).abs().max().item()
    print(f"{family} tied={tie}: max |ours - book| = {diff:.2e}")
    assert diff <= TOL
    if family == "qwen3":  # the same layout: our state dict loads into the book's model as it is
        fresh = book_mod.Qwen3Model(cfg)
        fresh.load_state_dict(ours.state_dict(), strict=True)
        assert (logits(fresh.eval(), ids) - logits(ours, ids)).abs().max().item() <= TOL


# ============================================================================ configs and names


REAL_CONFIGS = {  # the fields gptlib reads from the released config.json files
    "qwen3-0.6b": {"model_type": "qwen3", "vocab_size": 151936, "hidden_size": 1024, "intermediate_size": 3072,
                   "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
                   "max_position_embeddings": 40960, "rms_norm_eps": 1e-06, "rope_scaling": None,
                   "rope_theta": 1000000, "tie_word_embeddings": True, "hidden_act": "silu",
                   "attention_bias": False, "use_sliding_window": False, "bos_token_id": 151643,
                   "eos_token_id": 151645},
    "llama3.2-1b": {"model_type": "llama", "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
                    "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                    "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
                    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                    "tie_word_embeddings": True, "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
                    "bos_token_id": 128000, "eos_token_id": 128001},
}


@pytest.mark.parametrize("name", list(REAL_CONFIGS))
def test_presets_are_the_released_config_files(name):
    assert config_from_hf(REAL_CONFIGS[name]) == get_config(name)
    assert family_of(hf_repo(name)) is family_of(name)
    assert preset_name(hf_repo(name)) == name


def test_registry_and_light_import():
    assert family_of("qwen3-0.6b").name == "qwen3" and family_of("Meta-Llama/Llama-3.2-1B").name == "llama3"
    assert family_of("llama").name == "llama3"  # config.json's model_type
    with pytest.raises(ValueError, match="no released weights"):
        hf_repo("qwen3-tiny (test)")
    with pytest.raises(ValueError, match="Unknown model"):
        family_of("gpt2-small")
    code = ("import sys, gptlib.models; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'transformers', 'tokenizers', 'pandas', 'ipywidgets'}))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_meta_device_parameter_counts():
    from gptlib.classifier import add_classification_head

    expected = {"qwen3-0.6b": (596_049_920, 15_734_018), "llama3.2-1b": (1_235_814_400, 60_827_650)}
    for name, (total, trainable) in expected.items():
        with torch.device("meta"):
            model = build_model(name)
            assert count_parameters(model) == total
            clf = add_classification_head(model, num_classes=2, inplace=True)
        assert count_parameters(clf, trainable_only=True) == trainable


@pytest.mark.parametrize("family", ["qwen3", "llama3"])
def test_missing_extra_and_misshapen_tensors_are_named(family, tmp_path):
    model = tiny_model(family, tie=False)
    (tmp_path / "config.json").write_text(json.dumps(hf_config(model.cfg, family)))
    state = hf_state(model)
    for broken, words in [
        ({k: v for k, v in state.items() if k != "model.layers.1.mlp.up_proj.weight"},
         ["missing", "model.layers.1.mlp.up_proj.weight"]),
        ({k: v for k, v in state.items() if k != "lm_head.weight"}, ["lm_head.weight", "tie_word_embeddings"]),
        ({**state, "model.layers.2.mlp.up_proj.weight": state["model.layers.1.mlp.up_proj.weight"].clone()},
         ["unexpected", "model.layers.2.mlp.up_proj.weight"]),
        ({**state, "model.norm.weight": torch.ones(3)}, ["model.norm.weight", "(3,)", "final_norm.scale"]),
    ]:
        save_file(broken, str(tmp_path / "model.safetensors"))
        with pytest.raises(WeightLoadError) as err:
            load_hf_model(tmp_path)
        assert all(w in str(err.value) for w in words), str(err.value)


# ============================================================================ the chapter's head swap and freezing


@pytest.mark.parametrize("family", ["qwen3", "llama3"])
def test_head_swap_and_last_block_training(family, ids):
    from gptlib.classifier import add_classification_head

    model = tiny_model(family, tie=True)
    clf = add_classification_head(model, num_classes=2)
    assert model.out_head.weight is model.tok_emb.weight  # the original is untouched (a copy)
    assert clf.out_head.out_features == 2 and clf.out_head.weight is not clf.tok_emb.weight
    prefixes = FAMILIES[family].trainable_prefixes(len(clf.trf_blocks))
    assert prefixes[0] == f"trf_blocks.{clf.cfg['n_layers'] - 1}."
    clf.train()
    loss = torch.nn.functional.cross_entropy(clf(ids)[:, -1, :], torch.tensor([0, 1]))
    loss.backward()
    for name, p in clf.named_parameters():
        trains = name.startswith(prefixes)
        assert p.requires_grad is trains, name
        assert (p.grad is not None and bool(p.grad.abs().sum() > 0)) is trains, name


# ============================================================================ the Hub, on 127.0.0.1


class FakeHub:
    token = "hf_test_token"

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.gated: set[str] = set()
        self.hits: collections.Counter[str] = collections.Counter()
        self.auth: list[str | None] = []
        self.port = 0

    def put(self, repo: str, filename: str, data: bytes) -> None:
        self.files[f"/{repo}/resolve/main/{filename}"] = data


@pytest.fixture
def hub(serve_http, offline, tmp_path, monkeypatch):
    state = FakeHub()

    def handle(h):
        state.hits[h.path] += 1
        auth = h.headers.get("Authorization")
        state.auth.append(auth)
        if "/".join(h.path.split("/")[1:3]) in state.gated and auth != f"Bearer {state.token}":
            h.send_error(401 if auth is None else 403)
            return
        data = state.files.get(h.path)
        if data is None:
            h.send_error(404)
            return
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    state.port = serve_http(handle)
    monkeypatch.setenv("GPTLIB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GPTLIB_HF_ENDPOINT", f"http://127.0.0.1:{state.port}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache, no token file
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_CACHE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    return state


def checkpoint_bytes(model, tmp_path, family: str) -> tuple[bytes, bytes]:
    save_file(hf_state(model), str(tmp_path / "w.safetensors"))
    return json.dumps(hf_config(model.cfg, family)).encode(), (tmp_path / "w.safetensors").read_bytes()


def test_download_single_file_then_cached(hub, tmp_path, ids):
    repo = hf_repo("qwen3-0.6b")
    model = tiny_model("qwen3")  # the real repo's name, a tiny checkpoint: the config comes from the file
    config, weights = checkpoint_bytes(model, tmp_path, "qwen3")
    hub.put(repo, "config.json", config)
    hub.put(repo, "model.safetensors", weights)
    loaded = load_hf_model("qwen3-0.6b", progress=False)
    assert torch.equal(logits(loaded, ids), logits(model, ids))
    folder = model_dir("qwen3-0.6b")
    assert folder == tmp_path / "home" / "weights" / "qwen3-0.6b"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    before = sum(hub.hits.values())
    load_hf_model("Qwen/Qwen3-0.6B", progress=False)  # the repo id works too; nothing fetched again
    assert sum(hub.hits.values()) == before
    assert set(hub.auth) == {None}  # no token is sent to an open repository


def test_download_sharded_checkpoint(hub, tmp_path, ids):
    repo = hf_repo("llama3.2-1b")
    model = tiny_model("llama3", tie=False)
    state = hf_state(model)
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for shard, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(tmp_path / shard))
        hub.put(repo, shard, (tmp_path / shard).read_bytes())
    index = {"metadata": {}, "weight_map": {k: s for s, keys in shards.items() for k in keys}}
    hub.put(repo, "model.safetensors.index.json", json.dumps(index).encode())
    hub.put(repo, "config.json", json.dumps(hf_config(model.cfg, "llama3")).encode())
    loaded = load_hf_model("llama3.2-1b", progress=False)  # model.safetensors: 404, then the index
    assert torch.equal(logits(loaded, ids), logits(model, ids))
    assert hub.hits[f"/{repo}/resolve/main/model.safetensors"] == 1
    before = sum(hub.hits.values())
    load_hf_model("llama3.2-1b", progress=False)  # the cached index is read first: no request
    assert sum(hub.hits.values()) == before


def test_gated_repository_says_what_to_do(hub, tmp_path, monkeypatch, ids):
    repo = hf_repo("llama3.2-1b")
    hub.gated.add(repo)
    model = tiny_model("llama3")
    config, weights = checkpoint_bytes(model, tmp_path, "llama3")
    hub.put(repo, "config.json", config)
    hub.put(repo, "model.safetensors", weights)
    with pytest.raises(GatedRepoError) as err:
        load_hf_model("llama3.2-1b", progress=False)
    msg = str(err.value)
    for words in ("gated", "HTTP 401", f"https://huggingface.co/{repo}", "licence", "HF_TOKEN"):
        assert words in msg, msg
    assert not model_dir("llama3.2-1b").exists() or not any(model_dir("llama3.2-1b").iterdir())

    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(GatedRepoError, match="refused the token from HF_TOKEN.*HTTP 403"):
        load_hf_model("llama3.2-1b", progress=False)

    monkeypatch.setenv("HF_TOKEN", hub.token)
    loaded = load_hf_model("llama3.2-1b", progress=False)
    assert torch.equal(logits(loaded, ids), logits(model, ids))
    assert f"Bearer {hub.token}" in hub.auth


def test_token_is_not_sent_on_after_a_redirect():
    from gptlib.support import download

    request = urllib.request.Request("http://127.0.0.1/x")
    request.add_unredirected_header("Authorization", "Bearer t")
    new = urllib.request.HTTPRedirectHandler().redirect_request(request, None, 302, "Found", {},
                                                                "http://storage.example/x")
    assert "Authorization" not in new.headers and "Authorization" not in new.unredirected_hdrs
    assert "add_unredirected_header" in open(download.__file__).read()  # how download_file sends headers


def _hf_cache_entry(root, repo: str, filename: str, data: bytes, name: str) -> None:
    folder = root / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    (folder / "blobs" / name).write_bytes(data)
    link = folder / "snapshots" / "0123abc" / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(folder / "blobs" / name)


def test_hugging_face_cache_copy_is_reused(hub, tmp_path, monkeypatch, capsys, ids):
    repo = hf_repo("qwen3-0.6b")
    model = tiny_model("qwen3")
    config, weights = checkpoint_bytes(model, tmp_path, "qwen3")
    git_sha1 = hashlib.sha1(b"blob %d\0" % len(config) + config).hexdigest()  # how the hub names small files
    _hf_cache_entry(tmp_path / "hf", repo, "config.json", config, git_sha1)
    _hf_cache_entry(tmp_path / "hf", repo, "model.safetensors", weights, hashlib.sha256(weights).hexdigest())
    loaded = load_hf_model("qwen3-0.6b", progress=False)
    assert torch.equal(logits(loaded, ids), logits(model, ids))
    assert "Hugging Face cache" in capsys.readouterr().out
    assert sum(hub.hits.values()) == 0 and not model_dir("qwen3-0.6b").exists()

    monkeypatch.setenv("HF_HOME", str(tmp_path / "tampered"))  # bytes that do not hash to the blob's name
    _hf_cache_entry(tmp_path / "tampered", repo, "config.json", config, "0" * 40)
    with pytest.raises(DownloadError, match="config.json"):
        load_hf_model("qwen3-0.6b", progress=False)  # not used; the hub has nothing either
    assert hub.hits[f"/{repo}/resolve/main/config.json"] == 1


# ============================================================================ tokenizers


def make_tokenizer(specials: list[str], bos: str | None = None) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["Free entry in 2 a wkly comp to win FA Cup final tkts",
                             "Ok lar... Joking wif u oni...", "U dun say so early hor"] * 20, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))])
    return tok.to_str()


def test_qwen3_tokenizer_ids_come_from_its_files(hub):
    from tokenizers import Tokenizer

    repo = hf_repo("qwen3-0.6b")
    text = make_tokenizer(["<|im_start|>", "<|im_end|>", "<|endoftext|>"])
    ref = Tokenizer.from_str(text)
    hub.put(repo, "tokenizer.json", text.encode())
    hub.put(repo, "tokenizer_config.json", json.dumps({"pad_token": "<|endoftext|>", "eos_token": "<|im_end|>"}).encode())
    hub.put(repo, "config.json", json.dumps({"model_type": "qwen3", "eos_token_id": 7}).encode())
    tok = load_hf_tokenizer("qwen3-0.6b", progress=False)
    assert tok.pad_token_id == ref.token_to_id("<|endoftext|>") and "pad_token" in tok.pad_source
    assert tok.eos_token_id == ref.token_to_id("<|im_end|>")  # tokenizer_config.json comes first
    message = "Free entry in 2 a wkly comp"
    ids = tok.encode(message)
    assert ids == ref.encode(message).ids and tok.decode(ids) == message
    assert tok.encode(message, disallowed_special=()) == ids  # SpamDataset's call works
    assert tok.encode("<|endoftext|>") != [tok.pad_token_id]  # special text in a message stays text
    assert tok.encode("<|endoftext|>", allowed_special="all") == [tok.pad_token_id]
    assert set(tok.special_tokens) == {"<|im_start|>", "<|im_end|>", "<|endoftext|>"}
    assert (model_dir("qwen3-0.6b") / "tokenizer.json").exists()


def test_llama_tokenizer_pads_with_its_end_of_text(hub, monkeypatch, tmp_path):
    from tokenizers import Tokenizer

    repo = hf_repo("llama3.2-1b")
    hub.gated.add(repo)
    monkeypatch.setenv("HF_TOKEN", hub.token)
    text = make_tokenizer(["<|begin_of_text|>", "<|end_of_text|>"], bos="<|begin_of_text|>")
    ref = Tokenizer.from_str(text)
    hub.put(repo, "tokenizer.json", text.encode())  # no config.json: a 404 there is fine
    hub.put(repo, "tokenizer_config.json", json.dumps(
        {"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|end_of_text|>", "special": True}}).encode())
    tok = load_hf_tokenizer("llama3.2-1b", progress=False)
    eos = ref.token_to_id("<|end_of_text|>")
    assert tok.eos_token_id == eos and tok.pad_token_id == eos and "eos_token" in tok.pad_source
    ids = tok.encode("Ok lar")
    assert ids[0] == tok.bos_token_id == ref.token_to_id("<|begin_of_text|>")  # as transformers adds it
    assert tok.encode("Ok lar", add_special_tokens=False) == ids[1:]
    assert tok.decode(ids, skip_special_tokens=True) == "Ok lar"

    (tmp_path / "local").mkdir()  # a local folder with only tokenizer.json names no token: a clear error
    (tmp_path / "local" / "tokenizer.json").write_text(text)
    with pytest.raises(ValueError, match="names a token"):
        load_hf_tokenizer(tmp_path / "local")
