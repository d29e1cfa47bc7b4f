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
# # 3. Replacing the output head
#
# **What this notebook covers.** GPT-2's last layer maps each 768-dimensional hidden state to
# 50,257 vocabulary scores. For spam filtering we replace it with a layer that maps to 2
# class scores, and we decide which of the pretrained weights are allowed to change: why the
# lower layers can stay frozen, how freezing works, how many parameters each choice trains
# (7,090,946 with the book's choice), a diagram of what is frozen and what trains, how
# OpenAI's weights are mapped onto the book's model, and a proof that frozen weights get no
# gradient.
#
# **Book sections.** Chapter 6, sections 6.4 (initializing a model with pretrained weights)
# and 6.5 (adding a classification head); exercise 6.2 (fine-tuning the whole model).
#
# **Time:** about 15 minutes to read, seconds to run (plus a 500 MB download of GPT-2's
# weights the first time in the book profile). **Needs:** notebook 1 first. The parameter
# counts use an empty "meta" model and take no time in any profile; the offline profile
# (gpt2-small, random weights) and the smoke profile (a tiny random model) need no network.

# %% tags=["parameters"]
from gptlib.notebook import load_profile
from gptlib.study.notes import profile_banner

# None reads $GPTLIB_PROFILE: unset means "book" (pretrained gpt2-small, as in the book),
# "offline" means gpt2-small-shaped random weights (no network), "smoke" means a tiny
# random model for quick checks (used by the tests).
PROFILE = None
profile = load_profile(PROFILE)
print(profile)
profile_banner(profile)

# %%
import torch

from gptlib import GPTModel, count_parameters, get_config, get_tokenizer
from gptlib.classifier import (
    add_classification_head,
    parameter_table,
    set_trainable,
    trainable_summary,
)
from gptlib.lab.explorers import trainable_explorer
from gptlib.notebook import load_base_model, show_source
from gptlib.plots import plot_trainable_parts
from gptlib.weights import hf_to_book

tokenizer = get_tokenizer()

# %% [markdown]
# ## GPT-2's output layer
#
# To count parameters exactly for gpt2-small without loading (or even allocating) its
# weights, we build it on PyTorch's `meta` device: every tensor has its shape, none has any
# memory. Counting is then instant in both profiles.

# %%
# NBVAL_CHECK_OUTPUT
with torch.device("meta"):
    gpt2_small = GPTModel(get_config("gpt2-small (124M)"))
print(gpt2_small.out_head)
print(f"output layer weights: {gpt2_small.out_head.weight.numel():,} "
      f"(= 768 x 50,257, no bias)")
print(f"whole model: {count_parameters(gpt2_small):,}")

# %% [markdown]
# Almost a quarter of the model is this one layer: a score for every token in the
# vocabulary. (OpenAI's GPT-2 shares these weights with the token embedding; the book's
# layout, which we follow, keeps a separate copy, hence 163 million rather than 124 million.)
#
# ## A new head with two outputs
#
# A spam filter needs two scores, not 50,257. `add_classification_head` freezes everything,
# then (with the seed set, as in the book) puts a fresh `Linear(768, 2)` in place of the old
# head, and finally unfreezes what should train:

# %%
show_source(add_classification_head)

# %% [markdown]
# **Predict first.** How many weights does the new `Linear(768, 2)` head hold, bias
# included? The old head held 38,597,376. And of the parameters that train with the book's
# choice (the head, the last block and the final norm), is the head a large share or a tiny
# one? Run the cell to check.

# %%
# NBVAL_CHECK_OUTPUT
small_classifier = add_classification_head(gpt2_small)
print(small_classifier.out_head)
print(f"head weights: {small_classifier.out_head.weight.numel() + small_classifier.out_head.bias.numel():,} "
      f"(= 768 x 2 + 2 bias)")
print(trainable_summary(small_classifier))

# %% [markdown]
# 7,090,946 trainable parameters, the book's number. `add_classification_head` works on a
# copy, so `gpt2_small` still has its 50,257-way head and this cell can be run again without
# stacking changes (pass `inplace=True` to change the model itself, as the book's code does).

# %% [markdown]
# ## Which layers should train?
#
# The lower blocks of a pretrained transformer mostly encode things every text task needs:
# what words mean, how they combine, which earlier words matter for which later ones. That
# knowledge is as useful for spam filtering as for writing stories, so it can stay frozen.
# The top of the network turns these general features into the specific output, so that is
# where adaptation pays off. The book's choice: train the new head, the last transformer
# block and the final layer norm. The final norm sits between the last block and the head:
# its scale and shift set the size of every feature the head receives, so a head that is
# learning from scratch gains from being able to adjust it.
#
# Freezing is just `requires_grad = False`: PyTorch then computes no gradient for the
# tensor and the optimizer leaves it alone. gptlib sets it by name:

# %%
show_source(set_trainable)

# %% [markdown]
# The table lists every part of the model with its parameters, trainable and frozen, for the
# book's choice:

# %%
parameter_table(small_classifier)

# %% [markdown]
# The same table as a picture of the model, from the embeddings at the bottom to the head on
# top. Only the three orange parts train. The scale is logarithmic, because the parts range
# from about 1,500 weights (the new head) to 38.6 million (the token embedding):

# %%
trainable_figure = plot_trainable_parts(parameter_table(small_classifier))

# %%
# NBVAL_CHECK_OUTPUT
table = parameter_table(small_classifier)
trained_parts = table.loc[table["trainable"] > 0, "part"].tolist()
print("parts that train:", trained_parts)
print(f"one transformer block: {table.loc[table['part'] == 'trf_blocks[11]', 'parameters'].item():,}")
print(f"sum over the table:    {table['trainable'].sum():,} trainable, {table['frozen'].sum():,} frozen")

# %% [markdown]
# **Predict first.** One transformer block holds 7,087,872 parameters (the table above) and
# the head 1,538. How many train with `trainable="head"`, `"last_2_blocks"` and `"all"`?
# Work out the first two by hand, then run the cell to check.

# %%
# NBVAL_CHECK_OUTPUT
for choice in ("head", "last_block", "last_2_blocks", "all"):
    print(f"{choice:<14} {trainable_summary(add_classification_head(gpt2_small, trainable=choice))}")

# %% [markdown]
# How the count changes with the choice. The book's bonus experiments compare them on the
# spam task (test accuracy, pretrained gpt2-small, one run each):
#
# | what trains | test accuracy | against the last block |
# |---|---|---|
# | head only | 72.00% | -23.0 points |
# | last block (the book's choice) | 95.00% | baseline |
# | last two blocks | 98.33% | +3.3 points |
# | all layers (exercise 6.2) | 96.67% | +1.7 points |
#
# (95.00% is the bonus script's baseline; the chapter's own run gets 95.67% on a slightly
# different split.) Training only the head is clearly too little. Training more did better
# here: two blocks beat one by about 10 of the 300 test messages. So the book's choice is a
# cheap default, not the best setting. Read small gaps with care, though: each row is one
# run, one test message is 0.33 points, and an accuracy of 95% measured on 300 messages has
# a 95% interval of 91.9-96.9%, about ±2.5 points. Training all layers trains about 17
# times as many weights as the book's choice (the counts above), for no clear gain over two
# blocks.

# %% [markdown]
# ### What if the frozen blocks are random?
#
# The offline profile freezes 11 blocks of *random* weights and trains the same top. You
# might expect that to fail, yet the book's recipe still reaches about 93-94% test accuracy
# (the bonus table's random-weights row, which trains every layer, gets 93.67%). Spam is an
# easy task: words like "free", "prize" and "call" give most messages away, and a
# bag-of-words logistic regression gets about 96.7% on the same split. Random frozen blocks
# still pass each token's identity upwards (the residual connections add each block's
# output to its input), and one trained block plus the head can learn from that.
# Pretraining is expected to show its value where the data is small or the task is hard;
# that is a claim about what pretraining offers, not a measurement made here. With the
# pretrained weights (the book profile) you can test it in notebook 6's lab: train on only
# 100 messages, once with pretrained and once with random weights. Offline readers cannot
# run the pretrained half.

# %% [markdown]
# ### Try it
#
# Pick what trains; the line below the menu shows the counts for gpt2-small. (Needs a live
# Jupyter kernel; the four counts printed above, one per choice, are the same numbers.)

# %%
trainable_explorer(gpt2_small)

# %% [markdown]
# ## Section 6.4: where the pretrained weights come from
#
# In the book profile, `load_base_model` (notebook 1) calls `gptlib.weights.load_pretrained`.
# It downloads OpenAI's GPT-2 from the Hugging Face Hub (`model.safetensors`, about 500 MB,
# once) and copies it into the book's `GPTModel`. The file's tensors have other names than
# the book's, and some have other shapes: Hugging Face stores the linear layers transposed
# (`Conv1D`, input x output), keeps query, key and value side by side in one `c_attn`
# tensor per block, and has no output layer of its own (it is tied to the token embedding,
# as notebook 1 said). `hf_to_book` undoes each of these:

# %%
show_source(hf_to_book)

# %% [markdown]
# **Predict first.** Each block's `c_attn` weight in the file has shape (768, 2304), and its
# feed-forward `c_fc` weight (768, 3072). What shapes come out for the book's query weight
# and for the first feed-forward layer? The cell below runs `hf_to_book` on tensors with the
# file's names and shapes, built on the `meta` device (no download, no memory), so it runs
# the same in every profile.

# %%
# NBVAL_CHECK_OUTPUT
cfg = get_config("gpt2-small (124M)")
d, n_layers = cfg["emb_dim"], cfg["n_layers"]
per_block = {"attn.c_attn.weight": (d, 3 * d), "attn.c_attn.bias": (3 * d,),
             "attn.c_proj.weight": (d, d), "attn.c_proj.bias": (d,),
             "mlp.c_fc.weight": (d, 4 * d), "mlp.c_fc.bias": (4 * d,),
             "mlp.c_proj.weight": (4 * d, d), "mlp.c_proj.bias": (d,),
             "ln_1.weight": (d,), "ln_1.bias": (d,), "ln_2.weight": (d,), "ln_2.bias": (d,)}
file_shapes = {"wte.weight": (cfg["vocab_size"], d), "wpe.weight": (cfg["context_length"], d),
               "ln_f.weight": (d,), "ln_f.bias": (d,)}
file_shapes |= {f"h.{i}.{name}": shape for i in range(n_layers) for name, shape in per_block.items()}
with torch.device("meta"):
    hub_tensors = {name: torch.empty(shape) for name, shape in file_shapes.items()}
book_tensors = hf_to_book(hub_tensors, n_layers)
for file_name, book_name in (("h.0.attn.c_attn.weight", "trf_blocks.0.att.W_query.weight"),
                             ("h.0.mlp.c_fc.weight", "trf_blocks.0.ff.layers.0.weight"),
                             ("wte.weight", "out_head.weight")):
    print(f"{file_name:<22} {tuple(hub_tensors[file_name].shape)!s:<13} -> "
          f"{book_name:<32} {tuple(book_tensors[book_name].shape)}")
print(f"tensors in the file: {len(hub_tensors)}; in the book's layout: {len(book_tensors)}")
expected = {name: tuple(t.shape) for name, t in gpt2_small.state_dict().items()
            if not name.endswith(".att.mask")}  # the causal mask is built, not loaded
print("every name and shape matches GPTModel's:",
      {name: tuple(t.shape) for name, t in book_tensors.items()} == expected)

# %% [markdown]
# The query weight is one third of `c_attn`, transposed to `nn.Linear`'s output x input
# (square here, so only the feed-forward layer's shape shows the transpose). The book's
# layout has more tensors than the file: each block's fused `c_attn` weight and bias become
# three of each (query, key, value), and `out_head.weight` is a copy of the token
# embedding. `load_pretrained` then checks every name and shape and loads the tensors with
# `load_state_dict`. In the offline and smoke profiles nothing is downloaded and the same
# model is built with random weights instead.
#
# ## The same on the real model
#
# Now with the profile's model (OpenAI's gpt2-small in the book profile; a tiny random model
# in the smoke profile, where the counts are smaller).

# %%
base_model = load_base_model(profile)
classifier = add_classification_head(base_model)
print(trainable_summary(classifier))

# %% [markdown]
# The original model is untouched: it still has its vocabulary head and nothing in it is
# frozen.

# %%
# NBVAL_CHECK_OUTPUT
print("base model head outputs:", base_model.out_head.out_features)
print("base model parameters frozen:", sum(not p.requires_grad for p in base_model.parameters()))
print("classifier head outputs:", classifier.out_head.out_features)

# %% [markdown]
# Proof that freezing works: one backward pass through the classifier on a short message.
#
# **Predict first.** How many tensors (not parameters) train: count the last block's
# weights, biases, scales and shifts, then add the final norm's and the head's. And how many
# frozen tensors will have a gradient after the backward pass? Run the cell to check.

# %%
# NBVAL_CHECK_OUTPUT
ids = torch.tensor([tokenizer.encode("Do you have time")])
label = torch.tensor([0])
classifier.zero_grad(set_to_none=True)
loss = torch.nn.functional.cross_entropy(classifier(ids)[:, -1, :], label)
loss.backward()
trainable = [p for p in classifier.parameters() if p.requires_grad]
frozen = [p for p in classifier.parameters() if not p.requires_grad]
print(f"trainable tensors with a gradient: {sum(p.grad is not None for p in trainable)} of {len(trainable)}")
print(f"frozen tensors with a gradient:    {sum(p.grad is not None for p in frozen)}")
classifier.zero_grad(set_to_none=True)

# %% [markdown]
# The 20 trainable tensors are the last block's 16 (query, key, value, output projection and
# two feed-forward layers, each with weight and bias, plus two layer norms with scale and
# shift), the final norm's 2 and the new head's 2.

# %% [markdown]
# ## Check your understanding
#
# **1.** With `trainable="head"`, which tensors get a gradient, and how many parameters
# train in gpt2-small?
#
# <details><summary>Answer</summary>
#
# Only the new head's weight (768 x 2) and bias (2): 1,538 parameters. Every block and
# both norms stay frozen.
#
# </details>
#
# **2.** `add_classification_head` freezes every parameter first. Why does the new head
# train without being unfrozen?
#
# <details><summary>Answer</summary>
#
# It is created after the freezing, and a freshly made `torch.nn.Linear` has
# `requires_grad=True`. The freeze loop only touched the parameters that existed when it
# ran. (`set_trainable` then unfreezes the last block and the final norm by name.)
#
# </details>
#
# **3.** Blocks 0 to 10 are frozen. Does a training step still run them forward? Does the
# backward pass go through them?
#
# <details><summary>Answer</summary>
#
# Forward, yes: block 11 needs their output. Backward, no: nothing below block 11 needs a
# gradient, so autograd stops there. That is where the savings come from. gptlib's faster
# modes (`gptlib.speed.cached`) go further and compute the frozen blocks' output once per message.
#
# </details>

# %% [markdown]
# ## Recap
#
# * The 768 → 50,257 output layer (38.6 million weights) is replaced by a fresh 768 → 2 head (1,538 weights).
# * Freezing is `requires_grad = False`; the book trains the head, the last block and the final norm: 7,090,946 parameters, and only those get gradients.
# * That choice is a cheap default: in the bonus runs two blocks did 3.3 points better, and on this easy task even random frozen blocks reach about 93-94%.
#
# **Next:** notebook 4 looks at what the classifier outputs, and which of its outputs the
# loss uses.
