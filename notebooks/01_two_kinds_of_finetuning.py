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
# # 1. Two kinds of fine-tuning
#
# **What this notebook covers.** A pretrained GPT-2 can be adapted in two broad ways:
# *instruction fine-tuning* (the subject of the book's next chapter) and *classification
# fine-tuning* (this chapter). We compare what each one needs (data, compute) and what each
# one can do afterwards, and we see, in code, why a classifier can only ever answer with one
# of its classes.
#
# **Book sections.** Chapter 6, section 6.1 (different categories of fine-tuning), with a
# look ahead at 6.5 (the new output head).
#
# **Time:** about 10 minutes to read, seconds to run (plus a 500 MB download of GPT-2's
# weights the first time in the book profile). **Needs:** nothing; this is the first notebook.
# The offline profile (`GPTLIB_PROFILE=offline`: gpt2-small's shape, random weights) and the
# smoke profile (a tiny random model) need no network. The banner under the next cell says
# which profile runs.

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
from gptlib.classifier import add_classification_head
from gptlib.notebook import load_base_model, show_source
from gptlib.train import classify_review

tokenizer = get_tokenizer()

# %% [markdown]
# ## Two ways to adapt a pretrained model
#
# After pretraining, GPT-2 does exactly one thing: given some text, it scores every one of
# its 50,257 tokens as a candidate for the next token. Fine-tuning keeps what it learned
# about language and points it at a narrower job. There are two common kinds of job:
#
# | | instruction fine-tuning | classification fine-tuning |
# |---|---|---|
# | the model learns to | follow a request written in plain language and write an answer | put a text into one of a fixed set of classes |
# | training data | pairs of instruction and desired response, many different tasks | texts with a class label each, one task |
# | output | free text, one token at a time, from the whole vocabulary | one score per class (here 2: *not spam*, *spam*) |
# | head of the model | the pretrained 768 → 50,257 output layer is kept | replaced by a small new layer, 768 → 2 |
# | usual amount of training | all layers; more data and compute | often only the top of the network; a few thousand labelled texts can do |
# | after training it can | handle tasks it was never shown, phrased in new ways | only answer the question it was trained on, always with one of its classes |
#
# A classifier is the specialist: it cannot explain itself or do anything else, but it is
# cheap to train, easy to evaluate (accuracy is one number) and it never answers outside its
# classes. The rest of the chapter builds one, an SMS spam filter.

# %% [markdown]
# ## A language model can answer with any token
#
# First we load the profile's GPT-2: OpenAI's weights in the book profile, gpt2-small with
# random weights in the offline profile, a tiny random model in the smoke profile. The
# helper picks between those, and if the pretrained weights are neither cached nor
# downloadable it stops the cell with one line that says how to go on:

# %%
show_source(load_base_model)

# %%
base_model = load_base_model(profile)

# %% [markdown]
# We ask it a yes/no question about a message. A pretrained (not instruction-tuned) model
# has never been taught that a question wants an answer, so all it does is score the
# possible next tokens.
#
# **Predict first.** The prompt below is a couple of dozen tokens long. What shape will the
# model's output have: one score per prompt token, one score per vocabulary entry, or
# something else? Write down the shape you expect, then run the cell to check.

# %%
# NBVAL_CHECK_OUTPUT
prompt = ('Is the following text spam? Answer with yes or no: '
          '"You have won a free cruise, call now to claim"')
prompt_ids = torch.tensor([tokenizer.encode(prompt)])
with torch.no_grad():
    lm_logits = base_model(prompt_ids)
print("input shape: ", tuple(prompt_ids.shape), "(batch, tokens)")
print("output shape:", tuple(lm_logits.shape), "(batch, tokens, vocabulary)")

# %% [markdown]
# The five most likely next tokens. With the pretrained model they are usually not "yes" or
# "no". In the offline and smoke profiles the weights are random, so the tokens are
# arbitrary and their probabilities tiny: such a model has learned nothing about language.

# %%
next_token_probs = torch.softmax(lm_logits[0, -1], dim=-1)
top = torch.topk(next_token_probs, 5)
for p, token_id in zip(top.values.tolist(), top.indices.tolist(), strict=True):
    print(f"{tokenizer.decode([token_id])!r:>16}  id {token_id:>5}  probability {p:.3g}")

# %% [markdown]
# Getting a reliable "yes"/"no" out of such a model is what instruction fine-tuning is
# for: it needs many examples of requests and wanted answers, and it keeps the full
# vocabulary, so the model *could* still answer "maybe", or write a poem.

# %% [markdown]
# ## A classifier can only answer with its classes
#
# Classification fine-tuning removes that freedom. `add_classification_head` (section 6.5,
# notebook 3) swaps the 50,257-way output layer for a 2-way one. It works on a copy, so
# `base_model` keeps its original head and this cell can be re-run safely.
#
# **Predict first.** The same prompt goes through the classifier. Which of the three numbers
# of the output shape above changes, and to what? Run the cell to check.

# %%
# NBVAL_CHECK_OUTPUT
classifier = add_classification_head(base_model)
print("outputs of the language model head:", base_model.out_head.out_features)
print("outputs of the classifier head:    ", classifier.out_head.out_features)
with torch.no_grad():
    clf_logits = classifier(prompt_ids)
print("classifier output shape:", tuple(clf_logits.shape), "(batch, tokens, classes)")

# %% [markdown]
# Whatever we feed it, even a question that has nothing to do with spam, the untrained
# classifier answers with one of its two labels. Its answers are still random at this point:
# training (notebook 5) is what makes them right.

# %%
messages = [
    "Hey, are we still on for dinner tonight?",
    "You are a winner! Reply now to claim your cash prize.",
    "What is the capital of France?",
    "Please write me a short poem about the sea.",
]
for text in messages:
    print(f"{classify_review(text, classifier, tokenizer, 'cpu'):>9}  <- {text}")

# %% [markdown]
# The reason is plain arithmetic. The prediction is the index of the largest output, and a
# layer with two outputs has only the indices 0 and 1. Here is a lone 768 → 2 layer applied
# to 10,000 random vectors standing in for GPT-2's hidden states:

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(123)
head = torch.nn.Linear(768, 2)
hidden_states = torch.randn(10_000, 768)
answers = head(hidden_states).argmax(dim=-1)
print("every answer given:", answers.unique().tolist())

# %% [markdown]
# ## What each kind costs
#
# Instruction fine-tuning usually updates every weight. The book's classification recipe
# trains only the new head, the last transformer block and the final layer norm. For
# gpt2-small we can count both without loading any weights: a model built on PyTorch's
# `meta` device has every parameter's shape but no memory behind it.
#
# **Predict first.** gpt2-small is known as a 124-million-parameter model. Will the first
# line below print 124 million? And what share of the classifier's weights does the book's
# recipe train: about 1%, 6% or 50%? Run the cell to check.

# %%
# NBVAL_CHECK_OUTPUT
with torch.device("meta"):
    gpt2_small = GPTModel(get_config("gpt2-small (124M)"))
small_classifier = add_classification_head(gpt2_small)
print(f"gpt2-small, all parameters (book's layout):  {count_parameters(gpt2_small):>11,}")
print(f"classifier, all parameters (2-way head):     {count_parameters(small_classifier):>11,}")
print(f"classifier, trained by the book's recipe:    "
      f"{count_parameters(small_classifier, trainable_only=True):>11,}")

# %% [markdown]
# The first line is 163 million, not 124 million, because of a tied head. OpenAI's GPT-2
# uses one 50,257 x 768 matrix twice, as the token embedding and as the output layer; the
# book's `GPTModel` keeps a separate copy for the output layer, 38.6 million more weights.
# The classifier replaces that copy with its 2-way head, hence about 124 million again
# (notebook 3 counts every part).
#
# About 6% of the classifier's weights (7.1 of 124 million) are trained, and the gradients only
# have to flow through the top block. That is why the chapter's full run takes minutes on a
# laptop.

# %% [markdown]
# ## Check your understanding
#
# **1.** After training, the spam classifier is given "What is the capital of France?". What
# can it answer, and what does the answer tell you?
#
# <details><summary>Answer</summary>
#
# It can only answer "spam" or "not spam": the prediction is the index of the larger of two
# logits, and there are only two. The answer says nothing about France. The classifier has
# no way to say "this is not an SMS" or "I don't know", and a high probability for an
# off-task input is no sign that the answer means anything.
#
# </details>
#
# **2.** The book trains 7.1 of 124 million weights. Name two things this saves compared
# with training all of them.
#
# <details><summary>Answer</summary>
#
# The backward pass stops at the top block (nothing below it needs a gradient), and AdamW
# keeps its two running averages for 7.1 million weights instead of 124 million, so memory
# and time per step drop. It also keeps the general language features of the lower blocks
# exactly as pretraining left them.
#
# </details>
#
# **3.** You want a model that reads a customer's email and writes a polite reply. Which
# kind of fine-tuning fits, and why not the other?
#
# <details><summary>Answer</summary>
#
# Instruction fine-tuning: the answer is free text, so the model needs its full vocabulary
# and the pretrained output layer. A classifier could only choose among fixed labels, for
# example "complaint" or "question", which is useful for routing the email but cannot write
# the reply.
#
# </details>

# %% [markdown]
# ## Recap
#
# * A language model scores all 50,257 tokens at every position; instruction fine-tuning keeps that freedom.
# * A classifier replaces the output layer with one that has one output per class, so it can only ever answer with a class.
# * The book's recipe trains about 6% of gpt2-small (head, last block, final norm), which is why it takes minutes.
#
# **Next:** notebook 2 prepares the SMS data the classifier learns from.
