# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 9. The recipe on a modern model: GPT-2 beside Qwen3
#
# **What this notebook covers.** Chapter 6's recipe (replace the output head, freeze all but
# the last block and the final norm, read one position's logits, train with cross-entropy)
# never used anything GPT-2-specific. Here it runs unchanged on Qwen3-0.6B, written from
# scratch in `gptlib.models` as readably as `gptlib/model.py`: what differs in the
# architecture (in one table computed from the two configs), why the pad token matters as
# much as for GPT-2 when it is a real token of the vocabulary, what trains in each model, and the same
# fine-tuning of both on the SMS data, side by side.
#
# **Book sections.** Chapter 6 (6.4 to 6.7: the head, the freezing, the last token, the loop),
# with chapter 5's bonus notebooks that load Qwen3 and Llama 3.2 from scratch.
#
# **Time:** about 15 minutes to read; the two training runs take a few minutes on a laptop
# CPU (the runs table's `seconds` column prints what each took), plus a 1.5 GB download of
# Qwen3-0.6B and its tokenizer the first time in the book profile. **Needs:** notebooks 3
# and 4 first (the head, the freezing, the last real token).
#
# Each model trains on the first 200 training messages for one epoch. The `offline` profile
# does the same with random weights of the real shapes and GPT-2's tokenizer standing in for
# Qwen3's (said below): the architecture, the counts and the mechanics hold, the accuracies
# do not. `smoke` uses two tiny models and runs in seconds. The same code runs Llama 3.2 1B:
# set `OPEN_MODEL` below.

# %% tags=["parameters"]
from gptlib.notebook import load_profile
from gptlib.study.notes import profile_banner

# None reads $GPTLIB_PROFILE: unset means "book" (released weights), "offline" random
# weights of the same shapes (no network), "smoke" two tiny random models (used by the tests).
PROFILE = None
profile = load_profile(PROFILE)
OPEN_MODEL = "qwen3-tiny (test)" if profile.name == "smoke" else "qwen3-0.6b"  # or "llama3.2-1b"
RUN = {"train_limit": 200, "epochs": 1, "speed": "exact", "token": "last_real", "padding": "batch"}
print(profile)
print("this notebook's runs change:", RUN)
profile_banner(profile)

# %%
import pandas as pd
import torch

from gptlib.classifier import add_classification_head, count_parameters, last_real_index
from gptlib.finetune import run_finetune
from gptlib.model import GPTModel, get_config
from gptlib.models import any_config, build_model, family_of
from gptlib.models.hf_tokenizer import run_tokenizer
from gptlib.models.parts import TransformerBlock
from gptlib.notebook import show_source, spam_data_file
from gptlib.study.cost import estimate_time
from gptlib.study.describe import compare_runs

pd.set_option("display.max_colwidth", None)  # the tables' text in full
GPT2 = profile.model_size
data_file = spam_data_file(profile)

# %% [markdown]
# ## What changes in the architecture
#
# **Predict first.** Qwen3-0.6B has about five times GPT-2 small's parameters. Is that from
# more blocks, wider blocks, or a larger vocabulary? The table below is computed from the two
# configs and from models built on PyTorch's `meta` device (shapes only, no memory).

# %%
def describe(name: str) -> dict:
    cfg = any_config(name)
    with torch.device("meta"):
        model = GPTModel(get_config(name)) if name == GPT2 else build_model(name)
    gpt2 = name == GPT2
    heads = cfg["n_heads"]
    return {
        "blocks": cfg["n_layers"],
        "width (emb_dim)": cfg["emb_dim"],
        "attention": f"{heads} heads of {cfg['emb_dim'] // heads}" if gpt2 else
                     f"{heads} query heads, {cfg['n_kv_groups']} key/value heads "
                     f"({heads // cfg['n_kv_groups']} queries per key/value head), {cfg['head_dim']} wide"
                     + (", QK-norm" if cfg["qk_norm"] else ""),
        "positions": f"learned, {cfg['context_length']:,}" if gpt2 else
                     f"rotary (base {cfg['rope_base']:,.0f}), {cfg['context_length']:,}",
        "norm": "LayerNorm (scale, shift)" if gpt2 else "RMSNorm (scale only)",
        "feed forward": f"GELU, {4 * cfg['emb_dim']:,} wide" if gpt2 else f"SwiGLU, {cfg['hidden_dim']:,} wide",
        "vocabulary": f"{cfg['vocab_size']:,}",
        "output head tied to the embedding": "yes in OpenAI's file (the book's model copies it)" if gpt2
                                             else "yes" if cfg["tie_embeddings"] else "no",
        # GPT-2's released head is the embedding itself; the book's GPTModel keeps a copy of it
        "parameters": f"{count_parameters(model) - model.out_head.weight.numel():,}" if gpt2
                      else f"{count_parameters(model):,}",
        "of them in the token embedding": f"{model.tok_emb.weight.numel():,}",
    }


pd.DataFrame({name: describe(name) for name in (GPT2, OPEN_MODEL)})

# %% [markdown]
# All three grow: more than twice the blocks, each about twice as large, and three times the
# vocabulary. (The book's `GPTModel` keeps its own copy of the output head, 38,597,376 more
# parameters than the released file holds.) One block of the modern model,
# next to `TransformerBlock` in `gptlib/model.py`: the same pre-norm residual shape, with
# RMSNorm, rotary positions handed in, and a gated feed forward.

# %%
show_source(TransformerBlock)

# %%
with torch.device("meta"):  # shapes only
    block = TransformerBlock(any_config(OPEN_MODEL))
    gpt2_block = GPTModel(get_config(GPT2)).trf_blocks[0]
print(f"one {OPEN_MODEL} block: {count_parameters(block):,} parameters (one {GPT2} block: "
      f"{count_parameters(gpt2_block):,})")

# %% [markdown]
# ## The pad token is a real token
#
# GPT-2 pads with `<|endoftext|>` (id 50256). Qwen3's tokenizer config sets `<|endoftext|>`
# as its pad token (id 151643); Llama 3.2's sets none, so its end-of-text token pads. Either
# way the pad is a token the model has seen in pretraining with a meaning of its own. Reading the
# **last position** of a right-padded row reads the model's state *after several pads*;
# reading the **last real token** reads the state at the message's own last token.
#
# **Predict first.** In a batch padded to its longest message, which rows does the choice
# change? The table below answers.

# %%
tokenizer, pad_id, tokenizer_name, note = run_tokenizer(OPEN_MODEL, profile.weights)
print(note or f"Tokenizer: GPT-2's, pad id {pad_id}")
print("the family's files:", family_of(OPEN_MODEL).pad_note)
messages = ["Free entry! Text WIN now", "ok see you at 6", "Your account has been selected for a cash prize"]
ids = [tokenizer.encode(m, disallowed_special=()) for m in messages]
longest = max(map(len, ids))
batch = torch.tensor([row + [pad_id] * (longest - len(row)) for row in ids])
pd.DataFrame({"message": messages, "tokens": [len(r) for r in ids],
              "last position read": [longest - 1] * len(ids),
              "last real token read": last_real_index(batch, pad_id).tolist()})

# %% [markdown]
# Every row but the longest: for those, `last` reads a pad's state and `last_real` the
# message's own last token.

# %% [markdown]
# ## What trains
#
# The recipe by name: a new head (emb_dim → 2), the last block and the final norm train. The
# attribute names in `gptlib.models` are GPT-2's (`tok_emb`, `trf_blocks`, `final_norm`,
# `out_head`), so `add_classification_head` is the chapter's own function, unchanged.

# %%
def trainable_counts(name: str) -> dict:
    with torch.device("meta"):
        base = GPTModel(get_config(name)) if name == GPT2 else build_model(name)
        clf = add_classification_head(base, trainable="last_block", inplace=True)
    return {"total": f"{count_parameters(clf):,}", "trainable": f"{count_parameters(clf, trainable_only=True):,}",
            "share": f"{100 * count_parameters(clf, trainable_only=True) / count_parameters(clf):.2f}%"}


pd.DataFrame({name: trainable_counts(name) for name in (GPT2, OPEN_MODEL)})

# %% [markdown]
# ## The same fine-tuning, side by side
#
# Both runs: the first 200 training messages, one epoch, the last real token, batches padded
# to their longest message, and speed "exact" (each message's frozen blocks computed once and
# kept; the same numbers as the plain loop). **Cost:** seconds for GPT-2 small and a few
# minutes for Qwen3-0.6B on a laptop CPU (seconds for both when the store of frozen
# activations already holds them); the smoke profile's tiny models take seconds. Without
# Qwen3's own tokenizer files here (random weights, offline), its row shows GPT-2's
# tokenizer and pad id standing in.

# %%
# What the next cell costs here. Speed "exact" runs each message's frozen blocks once, at the
# message's own length: about 30 tokens on average in this data, not the 120 of padding.
for name in (GPT2, OPEN_MODEL):
    print(f"{name}:", estimate_time(profile.run_config("09", model_size=name, **RUN), "exact", train=RUN["train_limit"],
                                    max_length=30).text())

# %%
runs = {}
for name in (GPT2, OPEN_MODEL):
    cfg = profile.run_config(f"09-{name.split()[0]}", model_size=name, data=str(data_file), **RUN)
    result = run_finetune(cfg, progress=False, verbose=False, save=False)
    runs[name] = {"trainable": result.trainable.split(" | ")[0].removeprefix("trainable "),
                  "train %": round(100 * result.train_accuracy, 2),
                  "validation %": round(100 * result.val_accuracy, 2), "test %": round(100 * result.test_accuracy, 2),
                  "seconds": round(result.seconds, 1), "tokenizer": result.tokenizer,
                  "pad id": result.pad_token_id}
table = pd.DataFrame(runs).T
table

# %%
test_n = int(result.test_metrics["n"])  # the same test messages for both runs
print(compare_runs(GPT2, runs[GPT2]["test %"] / 100, OPEN_MODEL, runs[OPEN_MODEL]["test %"] / 100, test_n))
if profile.weights == "random":
    print(f"Random weights ({profile.name} profile): neither model has learned language, so these accuracies "
          "say how far one epoch on 200 messages gets from scratch, not which model reads SMS better.")
else:
    print("Released weights: each accuracy is one run on 200 training messages; "
          "repeat with other seeds (profile.replace(seed=...)) before reading much into it.")

# %% [markdown]
# ## Recap
#
# * The chapter's recipe is model-agnostic: a new head, freezing by name, one position's
#   logits and cross-entropy carry over to Qwen3 unchanged (and to Llama 3.2: set
#   `OPEN_MODEL = "llama3.2-1b"` and run the same cells).
# * What is family-specific is small and written once in `gptlib/models`: RMSNorm, rotary
#   positions, grouped-query attention, SwiGLU, QK-norm, tied embeddings and the pad id.
# * The pad token is a real token for every modern tokenizer, so which position you read
#   (`last` vs `last_real`) matters as much as it did for GPT-2.
#
# ## Questions
#
# 1. Qwen3 ties its output head to the token embedding. After `add_classification_head`,
#    is the embedding still tied to anything? (Build one on the meta device, as
#    `trainable_counts` does, and compare `clf.out_head.weight.shape` with
#    `clf.tok_emb.weight.shape`.)
# 2. With `token="last"` and per-batch padding, why would the same message get a different
#    prediction in two different batches? Would it with `token="last_real"`?
# 3. Which part of Qwen3-0.6B's parameters would LoRA (notebook 7) leave untouched that
#    last-block training also leaves untouched, and which would it reach that last-block
#    training does not?
