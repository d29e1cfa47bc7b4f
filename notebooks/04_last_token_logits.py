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
# # 4. Which output is the answer? Last-token logits, softmax and the loss
#
# **What this notebook covers.** The classifier still returns two scores for *every* input
# position: shape `[batch, tokens, 2]`. We see why the book reads only the last position
# (the causal attention mask, drawn as a picture), what goes wrong when that position is a
# pad token, the alternatives gptlib offers (`first`, `last_real`, `mean`, `mean_padded`),
# how scores become probabilities and a class label, that cross-entropy is log-softmax
# followed by the negative log-likelihood, and that a head with a single output would do
# the same job.
#
# **Book sections.** Chapter 6, sections 6.5 (the classification head's outputs) and 6.6
# (calculating the classification loss and accuracy); exercise 6.3 (the first token).
#
# **Time:** about 20 minutes to read, seconds to run (plus a 500 MB download of GPT-2's
# weights the first time in the book profile). **Needs:** notebook 3 first (the new head);
# notebook 2 for padding. The classifier here is untrained in every profile, so its scores
# are arbitrary; what this notebook shows is which scores are read and how, not whether they
# are right.

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
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from gptlib import get_tokenizer
from gptlib.classifier import (
    TOKEN_CHOICES,
    add_classification_head,
    last_real_index,
    select_token_logits,
)
from gptlib.data import CLASS_NAMES
from gptlib.notebook import attention_weights, load_base_model, show_source
from gptlib.train import calc_loss_batch, encode_message

tokenizer = get_tokenizer()
base_model = load_base_model(profile)
classifier = add_classification_head(base_model)  # an untrained classifier; a fresh copy each run

# %% [markdown]
# ## One score pair per token
#
# The book's example input is "Do you have time", four tokens.
#
# **Predict first.** What shape comes out of the classifier with its new 2-way head: one
# pair of scores for the whole message, or something larger? Write down the shape, then run
# the cell to check.

# %%
# NBVAL_CHECK_OUTPUT
ids = torch.tensor([tokenizer.encode("Do you have time")])
print("token ids:", ids.tolist())
with torch.no_grad():
    logits = classifier(ids)
print("outputs shape:", logits.shape)

# %%
print(logits)

# %% [markdown]
# Every position gets its own two class scores (logits), because a GPT model computes an
# output for each position in parallel.

# %% [markdown]
# ## The causal mask: only the last token has seen everything
#
# In GPT-2 each position may only attend to itself and the positions before it. Below, the
# first transformer block's attention weights for a short message, worked out by hand from
# the block's query and key weights (softmax of the scaled dot products, future positions
# masked), next to the mask itself. Row *i* shows how much position *i* draws on each
# position *j*; everything above the diagonal is zero. The figure's title says which weights
# drew it: with random weights (the offline and smoke profiles) the pattern below the
# diagonal is arbitrary, and only the zeros above it carry the lesson.

# %%
show_source(attention_weights)

# %%
message = "Call me when you are free tonight"
message_ids = torch.tensor([tokenizer.encode(message)])
pieces = [tokenizer.decode([i]) for i in message_ids[0].tolist()]
weights = attention_weights(base_model, message_ids, block=0)  # (heads, tokens, tokens)
n = len(pieces)
visible = torch.tril(torch.ones(n, n))

fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
for ax, matrix, title in ((axes[0], visible, "causal mask (1 = may attend)"),
                          (axes[1], weights[0], f"block 0, head 0: attention ({profile.weights} weights)")):
    image = ax.imshow(matrix, cmap="viridis", vmin=0)
    ax.set_xticks(range(n), pieces, rotation=60)
    ax.set_yticks(range(n), pieces)
    ax.set_xlabel("attended position (key)")
    ax.set_ylabel("position (query)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.8)
fig.tight_layout()
plt.show()

# %% [markdown]
# So the first position knows only the first token, and only the last position has seen the
# whole message: its output is the natural summary to classify. We can check this on the
# model itself.
#
# **Predict first.** "Do you have time" becomes "Do you have money": only the last word
# changes. Which of the four positions' outputs change? Run the cell to check.

# %%
# NBVAL_CHECK_OUTPUT
a = torch.tensor([tokenizer.encode("Do you have time")])
b = torch.tensor([tokenizer.encode("Do you have money")])
with torch.no_grad():
    out_a, out_b = classifier(a), classifier(b)
same = [torch.allclose(out_a[0, i], out_b[0, i], atol=1e-5) for i in range(a.shape[1])]
print("positions whose output is unchanged:", same)

# %% [markdown]
# ## With right padding, the last position is a pad token
#
# In a batch, shorter messages are padded on the right with `<|endoftext|>` (50256). Then
# position -1, the book's choice, is a pad token rather than the end of the message for
# almost every message: on the book's split, for all but one of the 1,045 training
# messages (99.9%), because only the longest one fills all 120 positions.

# %%
# NBVAL_CHECK_OUTPUT
padded = torch.tensor([encode_message("Do you have time", tokenizer, context_length=1024, max_length=8)])
print("padded ids:", padded.tolist())
print("token at position -1:", repr(tokenizer.decode([padded[0, -1].item()])))
print("last real token at index", last_real_index(padded).item(), "=",
      repr(tokenizer.decode([padded[0, last_real_index(padded).item()].item()])))

# %% [markdown]
# The pad position has seen the message (and then four pad tokens), so the model *can* learn
# to classify from there, and the book's run does.
#
# **Predict first.** We run the message once without padding and once with its four pads.
# Which reading changes: `last` (position -1) or `last_real` (the message's own last
# token)? Run the cell to check.

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    unpadded_logits = classifier(ids)
    padded_logits = classifier(padded)
print("'last' unchanged by padding:     ",
      torch.allclose(select_token_logits(padded_logits, padded, "last"), unpadded_logits[:, -1], atol=1e-5))
print("'last_real' unchanged by padding:",
      torch.allclose(select_token_logits(padded_logits, padded, "last_real"), unpadded_logits[:, -1], atol=1e-5))

# %% [markdown]
# With the book's `last`, the answer depends on how much padding follows the message; the
# last real token gives the same answer with or without padding.

# %% [markdown]
# ## Five ways to pick the output
#
# `select_token_logits` reduces `[batch, tokens, classes]` to `[batch, classes]`:
#
# * `last`: position -1, the book's choice;
# * `first`: position 0, which has seen only the first token (exercise 6.3: 75.00% test
#   accuracy in the book's bonus experiments, 20 points below that script's 95.00% for the
#   last token);
# * `last_real`: each message's last non-pad token (the bonus experiment "flexible" reaches
#   98.33%, 3.3 points above the same 95.00% baseline);
# * `mean`: the average over each message's real tokens (pads left out);
# * `mean_padded`: the average over every position of the padded row, pads included. This
#   is what the bonus script's `--average_embeddings` does (row 19 of its table: 96.33%,
#   1.3 points above its 95.00% baseline).
#   With right padding, most of a short message's row is pads, so its average is mostly
#   the pads' logits; `mean` leaves them out.
#
# All training and evaluation functions in `gptlib.train` take `token=` to choose.
#
# These numbers are for pretrained gpt2-small, and each is one run on 300 test messages
# (one message is 0.33 points; an accuracy of 95% on 300 messages has a 95% interval of
# 91.9-96.9%, about ±2.5 points). With random weights (the offline profile) `last_real` is
# no better than `last`: over 3 seeds, runs that read the last real token (with per-batch
# padding, the "fast" preset) came out about 1 point worse on average than the book's
# settings (about 3 test messages; the runs are in the repository's README), within noise.
# The book's gain from reading the last real token rests on what pretraining put into that
# token's hidden state; with random frozen blocks there is no such gain to find.

# %%
show_source(select_token_logits)

# %%
# NBVAL_CHECK_OUTPUT
texts = ["Do you have time", "WIN a free holiday now, call to claim"]
batch = torch.tensor([encode_message(t, tokenizer, context_length=1024, max_length=12) for t in texts])
with torch.no_grad():
    batch_logits = classifier(batch)
print("batch logits:", tuple(batch_logits.shape))
print("last real index per message:", last_real_index(batch).tolist())
for choice in TOKEN_CHOICES:
    print(f"{choice:<10} -> {tuple(select_token_logits(batch_logits, batch, choice).shape)}")

# %%
for choice in TOKEN_CHOICES:
    rows = select_token_logits(batch_logits, batch, choice).tolist()
    print(f"{choice:<10}", "   ".join(f"[{x:+.3f}, {y:+.3f}]" for x, y in rows))

# %% [markdown]
# ## From logits to a label
#
# Softmax turns the two logits into probabilities that add up to 1; the predicted class is
# the larger one. Softmax never changes which score is largest, so the book takes `argmax`
# of the logits directly. (The classifier is untrained, so its answers mean nothing yet.)

# %%
last_logits = select_token_logits(batch_logits, batch, "last")
probs = torch.softmax(last_logits, dim=-1)
for text, p in zip(texts, probs, strict=True):
    label = CLASS_NAMES[int(p.argmax())]
    print(f"{label:>9}  p(not spam)={p[0]:.3f}  p(spam)={p[1]:.3f}  <- {text}")

# %%
# NBVAL_CHECK_OUTPUT
print("probabilities sum to 1:", torch.allclose(probs.sum(dim=-1), torch.ones(len(texts))))
print("argmax of probabilities == argmax of logits:",
      torch.equal(probs.argmax(dim=-1), last_logits.argmax(dim=-1)))

# %% [markdown]
# ## The loss: cross-entropy = log-softmax + negative log-likelihood
#
# Accuracy counts right answers, but it cannot be differentiated, so training minimizes
# cross-entropy instead: the negative log of the probability given to the correct class,
# averaged over the batch. `F.cross_entropy` does it in one call; written out it is
# `log_softmax` followed by `nll_loss` (which picks the correct class's entry and negates
# it). A worked example with fixed numbers, one row for each kind of answer.
#
# **Predict first.** Which of the four rows below costs the most, and does it cost more or
# less than the other three together? Run the cell to check.

# %%
# NBVAL_CHECK_OUTPUT
example_logits = torch.tensor([[2.0, -1.0],    # not spam, confident: right
                               [0.5, 0.3],     # not spam, barely: wrong (the message is spam)
                               [-0.5, 1.5],    # spam, confident: right
                               [3.0, -1.0]])   # not spam, very confident: wrong
example_targets = torch.tensor([0, 1, 1, 1])
kinds = ["confident, right", "slightly wrong", "confident, right", "confident, wrong"]
log_probs = F.log_softmax(example_logits, dim=-1)
rows = torch.arange(len(example_targets))
per_row = -log_probs[rows, example_targets]
for kind, z, p, loss_value in zip(kinds, example_logits.tolist(), log_probs.exp()[rows, example_targets],
                                  per_row.tolist(), strict=True):
    print(f"{kind:<17} logits [{z[0]:+.1f}, {z[1]:+.1f}]  p(correct class) {p:.3f}  loss {loss_value:.4f}")
by_hand = per_row.mean()
two_steps = F.nll_loss(log_probs, example_targets)
one_step = F.cross_entropy(example_logits, example_targets)
print(f"by hand (mean):          {by_hand.item():.4f}")
print(f"log_softmax + nll_loss:  {two_steps.item():.4f}")
print(f"F.cross_entropy:         {one_step.item():.4f}")

# %% [markdown]
# The two right answers cost little (0.05 and 0.13). The slightly wrong one costs 0.80, not
# much more than a coin toss (log 2 = 0.69). The confident mistake costs 4.02, more than the
# other three together: cross-entropy rewards confidence only when it is right and punishes
# confident mistakes hard, which is why training pushes most on them.
#
# Two common slips. `nll_loss` expects *log*-probabilities; given plain probabilities (or
# logits) it returns a number, but the wrong one. And `F.cross_entropy` applies the
# log-softmax itself, so the model must hand it raw logits, not probabilities:

# %%
# NBVAL_CHECK_OUTPUT
print(f"nll_loss on probabilities (wrong):      {F.nll_loss(log_probs.exp(), example_targets).item():.4f}")
print(f"cross_entropy on probabilities (wrong): "
      f"{F.cross_entropy(log_probs.exp(), example_targets).item():.4f}")
print(f"cross_entropy on logits (right):        {one_step.item():.4f}")

# %% [markdown]
# ### One output instead of two
#
# A spam filter needs only one number: how much more likely spam is than not. A head with a
# single output `z` and the sigmoid, `p(spam) = sigmoid(z)`, trained with binary
# cross-entropy (`BCEWithLogitsLoss`), would work as well. With two outputs, softmax gives
# `p(spam) = sigmoid(z_spam - z_ham)`, so the two are the same model: the single output is
# the difference of the two logits. Numerically, on the rows above and on a one-output head
# built from the classifier's two-output head:

# %%
# NBVAL_CHECK_OUTPUT
bce = torch.nn.BCEWithLogitsLoss()
z_diff = example_logits[:, 1] - example_logits[:, 0]  # z_spam - z_ham
print(f"two logits, cross-entropy:         {one_step.item():.4f}")
print(f"one logit (z_spam - z_ham), BCE:   {bce(z_diff, example_targets.float()).item():.4f}")

# %%
two_node = classifier.out_head
one_node = torch.nn.Linear(two_node.in_features, 1)  # 769 weights instead of 1,538
with torch.no_grad():
    one_node.weight.copy_(two_node.weight[1:] - two_node.weight[:1])
    one_node.bias.copy_(two_node.bias[1:] - two_node.bias[:1])
    torch.manual_seed(0)
    hidden = torch.randn(16, two_node.in_features)  # stand-ins for last-position hidden states
    labels = torch.randint(0, 2, (16,))
    ce_two = F.cross_entropy(two_node(hidden), labels)
    bce_one = bce(one_node(hidden).squeeze(-1), labels.float())
print(f"Linear(d, 2) + cross-entropy: {ce_two.item():.6f}")
print(f"Linear(d, 1) + BCE:           {bce_one.item():.6f}")
print("equal:", torch.allclose(ce_two, bce_one, atol=1e-6))

# %% [markdown]
# The book keeps two outputs because the same code then works for any number of classes
# (assignment A05 trains a three-class head with no other change), and the prediction is
# `argmax` in every case. The one-output head saves 769 weights, which hardly matters next
# to 7 million trained ones.
#
# The same cross-entropy identity holds for the classifier's output on a real batch, which
# is what `calc_loss_batch` computes. Here is `gptlib.train.calc_loss_batch`, the one the
# library runs: the book's three lines, with the choice of token and `ignore_index` as
# keywords whose defaults are the book's:

# %%
show_source(calc_loss_batch)

# %%
# NBVAL_CHECK_OUTPUT
targets = torch.tensor([0, 1])
with torch.no_grad():
    loss = calc_loss_batch(batch, targets, classifier, "cpu")
    manual = F.nll_loss(F.log_softmax(classifier(batch)[:, -1, :], dim=-1), targets)
print("calc_loss_batch == log_softmax + nll_loss:", torch.allclose(loss, manual))

# %% [markdown]
# **Further reading.** Sebastian Raschka,
# ["Losses Learned: Optimizing Negative Log-Likelihood and Cross-Entropy in PyTorch"](https://sebastianraschka.com/blog/2022/losses-learned-part1.html),
# a blog article that works through these functions, their equivalences and the
# one-output alternative in detail.

# %% [markdown]
# ## Check your understanding
#
# **1.** You change the *first* word of a message. Which positions' outputs change?
#
# <details><summary>Answer</summary>
#
# All of them. Every position may attend to position 0, so every output depends on the first
# word. (Changing the *last* word changed only the last position, as shown above.)
#
# </details>
#
# **2.** A 10-token message is padded to 120. What has position -1 seen, and why can the
# book's run still learn to classify from there?
#
# <details><summary>Answer</summary>
#
# The whole message and 110 pad tokens after it. Under the causal mask position -1 may
# attend to every real token, so the information is there; the top block learns to fetch
# it. But the answer then depends on how much padding follows, which is why `last_real`
# reads the message's own last token instead.
#
# </details>
#
# **3.** For a spam message the model gives logits [3.0, -1.0]. What is the loss? Would it
# be lower if the model had been unsure, with logits [0.1, 0.0]?
#
# <details><summary>Answer</summary>
#
# -log(sigmoid(-1.0 - 3.0)) = log(1 + e^4) ≈ 4.02. Unsure: log(1 + e^0.1) ≈ 0.74, much
# lower. A confident mistake costs far more than an unsure one.
#
# </details>

# %% [markdown]
# ## Recap
#
# * The classifier gives two logits at every position; under the causal mask only the last position has seen the whole message, so the book reads `[:, -1, :]`.
# * With right padding that position is a pad token for nearly every message; `last_real` reads each message's own last token and does not depend on the padding.
# * Training minimizes cross-entropy (log-softmax + NLL), which punishes confident mistakes most; one output with BCE on z_spam - z_ham is the same model.
#
# **Next:** notebook 5 trains the classifier and evaluates it.
