"""The store of frozen activations (gptlib.speed.store): shared across runs in memory and on disk,
keyed by what decides the frozen output, bounded, atomic, and never trusted when damaged."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch

from gptlib.classifier import add_classification_head, classifier_logits
from gptlib.data import SpamDataset
from gptlib.model import GPTModel, get_config
from gptlib.speed.cached import CachedClassifier
from gptlib.speed.store import ActivationSet, ActivationStore, set_digest, weights_fingerprint
from gptlib.tokenizer import get_tokenizer

K, K1, K2, K3, KA, KB, KC, KD, KABC = (f"{i:x}" * 32 for i in range(9))
TEXTS = ["win a free prize now, call 0800", "see you at six?", "ok", "URGENT! claim your reward",
         "are we still on for dinner tonight? let me know", "txt STOP to end", "lol yes"]


def _model(seed=0, n_layers=3):
    torch.manual_seed(seed)
    base = GPTModel(get_config("gpt2-tiny (test)", n_layers=n_layers))
    return add_classification_head(base, trainable="last_block", seed=seed + 1).eval()


@pytest.fixture()
def datasets():
    tok = get_tokenizer()
    df = pd.DataFrame({"Label": [1, 0, 0, 1, 0, 1, 0], "Text": TEXTS})
    train = SpamDataset(df, tok)
    return train, SpamDataset(df.iloc[:3], tok, max_length=train.max_length)


def _store(root, ram=2**30, disk=2**30, lines=None):
    return ActivationStore(root, ram, disk, say=(lines.append if lines is not None else lambda _: None))


def _set(n_messages=3, dim=4, seed=0):
    torch.manual_seed(seed)
    messages = [tuple(range(i, i + 2 + i)) for i in range(n_messages)]
    return ActivationSet(messages, torch.randn(sum(map(len, messages)), dim))


def test_a_set_round_trips_through_memory_and_disk(tmp_path):
    store = _store(tmp_path)
    entry = _set()
    store.put(K1, entry)
    got, where = store.get(K1)
    assert where == "memory" and got is entry
    fresh = _store(tmp_path)  # another process, the same folder
    got, where = fresh.get(K1)
    assert where == "disk" and got.messages == entry.messages and torch.equal(got.slab, entry.slab)
    rows = got.rows()
    assert torch.equal(rows[entry.messages[1]], entry.slab[2:5])
    assert fresh.get("f"*32) is None and fresh.stats["misses"] == 1


def test_memory_and_disk_are_bounded_least_recently_used_first(tmp_path):
    one = _set().nbytes
    store = _store(tmp_path, ram=2 * one, disk=10**9)
    for key in (KA, KB, KC):
        store.put(key, _set())
    assert store.ram_bytes() <= 2 * one and KA not in store._ram and {KB, KC} <= set(store._ram)
    size = (tmp_path / f"{KA}.pt").stat().st_size
    small = _store(tmp_path, ram=10**9, disk=int(2.5 * size))
    small.get(KB)  # used now: c is the least recently used file ... after a, which goes first
    small.put(KD, _set())
    on_disk = {p.stem for p in small.disk_entries()}
    assert KD in on_disk and KA not in on_disk and small.disk_bytes() <= 2.5 * size


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_damaged_entry_is_detected_deleted_and_never_used(tmp_path, damage):
    _store(tmp_path).put(K, _set())
    path = tmp_path / f"{K}.pt"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "flip":  # one byte of the activations changed: the sha256 no longer matches
        payload = torch.load(path, weights_only=True)
        payload["slab"][0, 0] += 1.0
        torch.save(payload, path)
    else:
        path.write_text("<html>not an entry</html>")
    lines = []
    store = _store(tmp_path, lines=lines)
    assert store.get(K) is None
    assert not path.exists() and store.stats["corrupt"] == 1
    assert len(lines) == 1 and f"{K}.pt" in lines[0] and "computed again" in lines[0]


def test_a_killed_writer_leaves_nothing_taken_for_an_entry(tmp_path):
    (tmp_path / f".{K}.pt.abc123.part").write_bytes(b"half an entry")
    store = _store(tmp_path)
    assert store.disk_entries() == [] and store.get(K) is None


def test_an_unwritable_home_keeps_the_store_in_memory_with_one_line(tmp_path):
    blocker = tmp_path / "home"
    blocker.write_text("a file, not a folder")
    lines = []
    store = _store(blocker / "activations", lines=lines)
    store.put(K, _set())
    store.put(K2, _set())
    assert store.get(K)[1] == "memory"
    assert len(lines) == 1 and "memory only" in lines[0]
    assert store.disk_off_reason is not None and "disk off" in store.describe()


def test_clear_in_one_process_does_not_break_another(tmp_path):
    user, cleaner = _store(tmp_path), _store(tmp_path)
    user.put(K, _set())
    assert cleaner.clear() == 1 and not list(tmp_path.glob("*.pt"))
    assert user.get(K)[1] == "memory"  # what it has in memory stays usable
    user.put(K2, _set())  # and writing again works, folder and all
    assert (tmp_path / f"{K2}.pt").exists()
    for p in tmp_path.iterdir():
        p.unlink()
    tmp_path.rmdir()
    user.put(K3, _set())  # the folder removed under it: made again
    assert (tmp_path / f"{K3}.pt").exists()


def test_the_key_changes_with_everything_that_decides_the_frozen_output():
    model = _model()
    fast = CachedClassifier(model, store=None)
    ident = fast.prefix_identity(2)
    rows = [(1, 2, 3), (4, 5)]
    base = set_digest(ident, rows)
    assert set_digest(fast.prefix_identity(2), rows) == base  # deterministic
    assert set_digest(fast.prefix_identity(1), rows) != base  # frozen blocks
    assert set_digest({**ident, "compute_dtype": "torch.bfloat16"}, rows) != base
    assert set_digest({**ident, "cache_dtype": "torch.bfloat16"}, rows) != base
    assert set_digest(ident, [(1, 2, 3), (4,)]) != base  # positions kept
    assert set_digest(ident, [(1, 2, 4), (4, 5)]) != base  # token ids
    other = CachedClassifier(_model(n_layers=4), store=None)
    assert other.prefix_identity(2)["config"] != ident["config"]
    before = weights_fingerprint([model.tok_emb])
    with torch.no_grad():
        model.tok_emb.weight[0, 0] += 1e-3
    assert weights_fingerprint([model.tok_emb]) != before
    assert fast.prefix_identity(2)["weights"] != ident["weights"]
    # a weight of a block that is not frozen is not part of the frozen output
    with torch.no_grad():
        model.trf_blocks[2].ff.layers[0].weight[0, 0] += 1.0
    assert CachedClassifier(model, store=None).prefix_identity(2)["weights"] == fast.prefix_identity(2)["weights"]


def test_a_second_wrapper_reuses_the_set_and_gets_the_same_logits(tmp_path, datasets):
    store = _store(tmp_path)
    first = CachedClassifier(_model(), store=store)
    first.warm_up(datasets, token="last")
    assert first.warm_source == "computed" and len(store.disk_entries()) == 1
    second = CachedClassifier(_model(), store=store)  # another run: same weights, new objects
    second.warm_up(datasets, token="last")
    assert second.warm_source == "memory" and second.stats["misses"] == 0
    third = CachedClassifier(_model(), store=_store(tmp_path))  # a new process
    third.warm_up(datasets, token="last")
    assert third.warm_source == "disk"
    x = torch.stack([datasets[0][i][0] for i in range(4)])
    for wrapper in (second, third):
        assert torch.equal(classifier_logits(first, x, "last"), classifier_logits(wrapper, x, "last"))
    changed = CachedClassifier(_model(seed=5), store=store)  # other frozen weights: a new entry
    changed.warm_up(datasets, token="last")
    assert changed.warm_source == "computed" and len(store.disk_entries()) == 2
    real = CachedClassifier(_model(), store=store)  # other positions kept: a new entry too
    real.warm_up(datasets, token="last_real")
    assert real.warm_source == "computed" and len(store.disk_entries()) == 3


def test_runs_in_a_new_process_read_the_disk_store(tmp_path, small_tsv):
    script = textwrap.dedent(f"""
        import json, sys
        from gptlib.finetune import FinetuneConfig, run_finetune
        from gptlib.speed.store import default_store
        cfg = FinetuneConfig(model_size="gpt2-tiny (test)", weights="random", data={str(small_tsv)!r},
                             epochs=1, speed="exact", output={str(tmp_path / 'out')!r}, figures=None, device="cpu")
        r = run_finetune(cfg, progress=False, verbose=False, save=False)
        print(json.dumps({{"losses": r.train_losses, "test": r.test_accuracy, "stats": default_store().stats}}))
    """)
    env = {"GPTLIB_STORE_DIR": str(tmp_path / "store"), "GPTLIB_HOME": str(tmp_path / "home"), "PATH": "/usr/bin"}
    import json

    runs = [json.loads(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                      check=True, timeout=300).stdout.strip().splitlines()[-1]) for _ in range(2)]
    assert runs[0]["stats"]["misses"] == 1 and runs[1]["stats"]["disk_hits"] == 1
    assert runs[0]["losses"] == runs[1]["losses"] and runs[0]["test"] == runs[1]["test"]


def test_cache_commands(tmp_path, monkeypatch, capsys):
    from gptlib.cli import main
    from gptlib.speed import store as store_module

    monkeypatch.setenv("GPTLIB_STORE_DIR", str(tmp_path / "acts"))
    monkeypatch.setenv("GPTLIB_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(store_module, "_default", None)
    store_module.default_store().put(KABC, _set())
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "activations: 1 set(s)" in out and f"{KABC}.pt" in out and str(tmp_path / "acts") in out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 activation set(s)" in capsys.readouterr().out
    assert not list((tmp_path / "acts").glob("*.pt"))
    monkeypatch.setattr(store_module, "_default", None)


def test_only_the_stores_own_files_are_listed_evicted_or_cleared(tmp_path):
    mine = tmp_path / "my_model.pt"
    mine.write_bytes(b"a user's checkpoint in the same folder")
    _store(tmp_path).put(K, _set())
    size = (tmp_path / f"{K}.pt").stat().st_size
    small = _store(tmp_path, disk=size + 16)  # room for one entry: the next put evicts
    small.put(K1, _set())
    assert not (tmp_path / f"{K}.pt").exists() and (tmp_path / f"{K1}.pt").exists()
    assert [p.name for p in small.disk_entries()] == [f"{K1}.pt"]
    small.clear()
    assert mine.read_bytes().startswith(b"a user's") and not (tmp_path / f"{K1}.pt").exists()


def test_damaged_token_ids_in_an_entry_are_detected(tmp_path):
    _store(tmp_path).put(K, _set())
    path = tmp_path / f"{K}.pt"
    payload = torch.load(path, weights_only=True)
    payload["ids"][0] += 1  # the activations filed under another message
    torch.save(payload, path)
    assert _store(tmp_path).get(K) is None and not path.exists()


@pytest.mark.parametrize("value", ["inf", "nan", "lots", "-1"])
def test_bad_store_bounds_are_refused_in_words(value, monkeypatch):
    from gptlib.speed import store as store_module

    monkeypatch.setenv("GPTLIB_STORE_RAM_MB", value)
    monkeypatch.setattr(store_module, "_default", None)
    with pytest.raises(ValueError, match="GPTLIB_STORE_RAM_MB"):
        store_module.default_store()
    monkeypatch.setattr(store_module, "_default", None)


@pytest.mark.parametrize("edited", ["gptlib/model.py", "gptlib/speed/kernels.py"])
def test_the_key_changes_when_the_code_that_computes_the_frozen_part_changes(edited, monkeypatch):
    """Editing model.py's blocks or the kernels gives a new store entry, never stale activations."""
    from pathlib import Path

    import gptlib.speed.cached as cached

    fast = CachedClassifier(_model(), store=None)
    rows = [(1, 2, 3)]
    cached.prefix_source_digest.cache_clear()
    before = set_digest(fast.prefix_identity(2), rows)
    read = Path.read_bytes

    def edited_read(path):
        data = read(path)
        return data + b"\n# an edit\n" if Path(path).as_posix().endswith(edited) else data

    monkeypatch.setattr(Path, "read_bytes", edited_read)
    cached.prefix_source_digest.cache_clear()
    try:
        assert set_digest(fast.prefix_identity(2), rows) != before
    finally:
        monkeypatch.undo()
        cached.prefix_source_digest.cache_clear()
    assert set_digest(fast.prefix_identity(2), rows) == before
