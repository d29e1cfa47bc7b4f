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
#     display_name: Python 3
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
# (7,090,946 with the book's choice), and a proof that frozen weights get no gradient.
#
# **Book sections.** Chapter 6, sections 6.4 (initializing a model with pretrained weights)
# and 6.5 (adding a classification head); exercise 6.2 (fine-tuning the whole model).
#
# **Time.** Under a minute on a laptop CPU with the real model once GPT-2's weights are in
# the cache (an estimate). The parameter counts use an empty "meta" model and take no time
# in either profile. With `GPTLIB_PROFILE=smoke` everything runs in seconds.

# %% tags=["parameters"]
from gptlib.notebook import load_profile

# None reads $GPTLIB_PROFILE: unset means "book" (pretrained gpt2-small, as in the book),
# "smoke" means a tiny random model for quick offline runs (used by the tests).
PROFILE = None
profile = load_profile(PROFILE)
print(profile)

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
# block and the final layer norm.
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

# %%
# NBVAL_CHECK_OUTPUT
table = parameter_table(small_classifier)
trained_parts = table.loc[table["trainable"] > 0, "part"].tolist()
print("parts that train:", trained_parts)
print(f"one transformer block: {table.loc[table['part'] == 'trf_blocks[11]', 'parameters'].item():,}")
print(f"sum over the table:    {table['trainable'].sum():,} trainable, {table['frozen'].sum():,} frozen")

# %% [markdown]
# How the count changes with the choice. The book's bonus experiments compare them on the
# spam task (test accuracy): head only 72.00%, last block 95.00%, last two blocks 98.33%,
# all layers 96.67%. Training only the head is too little; training more than the top
# blocks costs much more and does not help here.

# %%
# NBVAL_CHECK_OUTPUT
for choice in ("head", "last_block", "last_2_blocks", "all"):
    print(f"{choice:<14} {trainable_summary(add_classification_head(gpt2_small, trainable=choice))}")

# %% [markdown]
# ### Try it
#
# Pick what trains; the line below the menu shows the counts for gpt2-small. (Needs a live
# Jupyter kernel; the cell above prints the same numbers.)

# %%
trainable_explorer(gpt2_small)

# %% [markdown]
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
# Every trainable tensor gets a gradient, no frozen tensor does. The 20 trainable tensors are
# the last block's 16 (query, key, value, output projection and two feed-forward layers,
# each with weight and bias, plus two layer norms with scale and shift), the final norm's 2
# and the new head's 2.

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
# **Next:** notebook 4 looks at what the classifier outputs, and which of its outputs the
# loss uses.
