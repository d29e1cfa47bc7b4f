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
# # 8. Inside the trained classifier
#
# **What this notebook covers.** Four views of a fine-tuned spam classifier that the book's
# chapter does not show: the *read-out curve* (the classification head applied at every
# position of a message, not only the last), a *padding probe* (what adding pad tokens does
# to the prediction, read at the last position and at the last real token), an *error
# analysis* (the test messages it gets wrong, sorted by how confidently, and precision and
# recall at every threshold, on the balanced test split and at the data's natural 13.4% spam
# rate), and a *bag-of-words baseline*: a logistic regression on token counts, trained on the
# same split, beside GPT-2.
#
# **Book sections.** Builds on chapter 6, sections 6.6 (why the last token is read), 6.7
# (fine-tuning) and 6.8 (using the classifier); the baseline is not in the book.
#
# **Time:** a few minutes with the real data (the `book` and `offline` profiles) when notebook
# 5 has run with the same profile: this notebook then reuses the classifier notebook 5 saved,
# in seconds, and the views take a minute or two (scoring the test split is the longest: its
# cell prints the estimate for your machine). Otherwise it first trains that classifier itself, the chapter's run: about 8
# to 15 minutes on a laptop CPU. The cells that may take over a minute have a small cell above
# them that prints the estimate for your machine. With `GPTLIB_PROFILE=smoke` (tiny random
# model, made-up data) it all takes seconds, and every number it prints is meaningless.
#
# **Needs:** notebook 5 run first with the same profile (else this notebook trains its own
# classifier); notebooks 2 and 4 (padding, the last token) read first. No network beyond what
# the profile needs (the book profile's gpt2-small weights, downloaded once).

# %% tags=["parameters"]
from gptlib.notebook import load_profile
from gptlib.study.notes import profile_banner

# None reads $GPTLIB_PROFILE (book, offline or smoke; unset means book).
PROFILE = None
profile = load_profile(PROFILE)
profile_banner(profile)

# %%
import json
import os

import pandas as pd
from IPython.display import display

from gptlib import get_tokenizer
from gptlib.classifier import load_classifier
from gptlib.finetune import run_finetune
from gptlib.notebook import profile_device, project_root, show_source, spam_data_file
from gptlib.study.cost import estimate_time
from gptlib.study.describe import compare_runs
from gptlib.study.inspection import (
    NATURAL_SPAM_RATE,
    book_splits,
    misclassified,
    padding_probe,
    plot_error_analysis,
    plot_padding_probe,
    plot_readout_curve,
    readout_curve,
    score_messages,
    threshold_explorer,
    threshold_table,
    train_bow_baseline,
)
from gptlib.support.files import sha256_of
from gptlib.train import predict_proba

tokenizer = get_tokenizer()
device = profile_device(profile)
print("device:", device)

# %% [markdown]
# ## A trained classifier
#
# Every view needs a fine-tuned classifier with the profile's settings. Notebook 5 saves one
# (`classifier.pth` in the profile's work folder) together with the settings it was trained
# with, the data file's checksum and its accuracies. The cell below first looks there, then in
# this notebook's own run folder (`08/`, from an earlier run of this notebook), and reuses the
# first classifier whose settings are the ones this notebook needs. Only if there is none does
# it train one through `run_finetune` (the chapter's whole run in one call, with speed
# "exact": the book's numbers, computed faster) and save it in `08/`.
#
# The estimate below is for that training. When a classifier is reused, the cell takes
# seconds.

# %%
data_file = spam_data_file(profile)
train_df, val_df, test_df = book_splits(data_file)  # the book's split, the one the run trains on
config = profile.run_config("08", data=str(data_file), speed="exact")  # the profile's settings, saved in 08/
wanted = json.loads(json.dumps(vars(config.effective())))
keys = ("model_size", "weights", "epochs", "lr", "weight_decay", "drop_rate", "batch_size", "seed",
        "eval_freq", "eval_iter", "token", "trainable", "padding", "max_length", "train_limit", "speed")
data_sha256 = sha256_of(data_file)
estimate_time(config, "exact", train=len(train_df), validation=len(val_df), test=len(test_df))


# %%
def relative(path):
    """A path as this checkout has it, relative to its root (never the machine's absolute path)."""
    return os.path.relpath(path, project_root())


def from_notebook_5():
    """Notebook 5's classifier and its accuracies, if it was trained with these settings."""
    path = profile.work_dir / "classifier.pth"
    if not path.is_file():
        return None
    model, meta = load_classifier(path, device=device)
    stored = meta.get("settings") or {}
    if stored.get("data_sha256") != data_sha256 or any(stored.get(k) != wanted[k] for k in keys):
        return None
    return path, model, meta, stored["accuracy"]


def from_this_notebook():
    """The classifier an earlier run of this notebook saved in 08/, if trained with these settings."""
    folder = profile.work_dir / "08"
    try:
        run = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    stored = run.get("config") or {}
    if not (folder / "classifier.pth").is_file() or any(stored.get(k) != wanted[k] for k in keys + ("data",)):
        return None
    model, meta = load_classifier(folder, device=device)
    accuracy = {"train": run["train_accuracy"], "validation": run["val_accuracy"], "test": run["test_accuracy"]}
    return folder / "classifier.pth", model, meta, accuracy


found = from_notebook_5()
if found:
    print(f"Reusing notebook 5's classifier (the same settings and data): {relative(found[0])}")
else:
    found = from_this_notebook()
    if found:
        print(f"Reusing the classifier this notebook trained earlier with these settings: {relative(found[0])}")
    else:
        run_finetune(config, progress=False, verbose=False)
        found = from_this_notebook()
        print(f"Trained a classifier with the profile's settings and saved it: {relative(found[0])}")
checkpoint, classifier, meta, reported = found
max_length = meta["max_length"]
print(f"{profile.model_size}, {profile.weights} weights, {profile.epochs} epoch(s); padded to {max_length} tokens; "
      f"test accuracy {reported['test']:.2%}")

# %% [markdown]
# With the `offline` profile the weights under the new head were **random**, not OpenAI's:
# every number below then describes a GPT-2-shaped network that learned spam from 1,045
# messages alone. With `book` they are the pretrained ones; with `smoke` a tiny random model
# on made-up messages, and the numbers mean nothing.

# %% [markdown]
# ## 1. The read-out curve: the head at every position
#
# The new head is one linear layer applied to each token's final hidden state: `model(ids)`
# returns logits for every position, shape (1, tokens, 2), and the book keeps only the last
# row. Taking the softmax of *every* row shows what the classifier would say if it had to
# decide after reading 1, 2, 3, ... tokens. Because of the causal mask, the state at position
# *i* has seen tokens 0 to *i* and nothing after.

# %%
show_source(readout_curve)

# %%
examples = {
    "spam": "You are a winner you have been specially selected to receive $1000 cash or a $2000 award.",
    "not spam": "Hey, just wanted to check if we're still on for dinner tonight? Let me know!",
}
# padded to the training length, as classify_review pads: the last position is then the one training read
curves = {name: readout_curve(text, classifier, tokenizer, device, max_length=max_length)
          for name, text in examples.items()}
curves["spam"].loc[~curves["spam"]["is_pad"], ["token", "p_spam"]].T.round(3)

# %%
figure = plot_readout_curve(list(curves.values()),
                            titles=[f"{name}: {text}" for name, text in examples.items()],
                            suptitle=f"P(spam) read at every token ({profile.name} profile, {profile.weights} weights)")

# %% [markdown]
# How to read it. At the first token the state knows one word ("You", "Hey"), so the head
# has almost nothing to go on: the curve starts wherever that single word puts it. Each later
# token's state has attended to everything before it, so the curve settles as evidence
# builds up ("winner", "selected", "$1000" push it up); the last position has seen the whole
# message, which is why the book reads it. Nothing forced the middle positions to mean
# anything: training only ever put a loss on the last position, so the curve before the end
# is the head applied to states it was never trained on. That it is often sensible there
# anyway says the last block learned one way of summarizing a message so far, at every position.
#
# **With random weights (the `offline` profile) the picture is rougher**, and worth seeing:
# in our offline run (`figures/readout-curve.png` in the repository) the curve jumps from
# token to token, the head already says 0.99 at "You", and the book's spam example ends at
# P(spam) 0.22 after its pads: misclassified. A network that never learned language has no
# steady summary of "the message so far"; what it learned is to read the final pad, after
# the pads have gathered the message's evidence. The ham example ends at 0.002. Pretrained
# weights are what make the curve settle as the words come in.
#
# The last point of the curve is exactly what `predict_proba` (and so `classify_review`)
# computes, with and without padding:

# %%
# NBVAL_CHECK_OUTPUT
text = examples["spam"]
for length in (None, max_length):
    curve = readout_curve(text, classifier, tokenizer, device, max_length=length)
    same = abs(curve["p_spam"].iloc[-1] - predict_proba(text, classifier, tokenizer, device, max_length=length)[1]) < 1e-5
    print(f"{'padded to max_length' if length else 'unpadded'}: the last position equals predict_proba: {same}")

# %% [markdown]
# ## 2. Padding-sensitivity probe
#
# Readers of the book often report that "the prediction changes with the padding". Here is
# why, in one picture: take one message, add k pad tokens (k = 0, 1, 2, ...), run the model
# on each version separately, and read P(spam) at two places: the last position (the book's
# choice, a pad once k > 0) and the message's last real token.

# %%
show_source(padding_probe)

# %% [markdown]
# **Predict first.** As pads are added one by one after the spam example, what happens to
# P(spam) read at the last position, and what happens to it read at the last real token? Run
# the cells below to check.

# %%
probe = padding_probe(examples["spam"], classifier, tokenizer, device, max_pads=30)
figure = plot_padding_probe(probe, title=f"Padding probe: {examples['spam'][:48]}...")

# %%
# NBVAL_CHECK_OUTPUT
print("read at the last real token, the same for every k (to 1e-5):",
      bool(probe["p_spam_last_real"].max() - probe["p_spam_last_real"].min() < 1e-5))

# %%
spread = probe["p_spam_last"].max() - probe["p_spam_last"].min()
print(f"read at the last position, P(spam) moves by up to {spread:.4f} between 0 and {len(probe) - 1} pads")

# %% [markdown]
# The last real token's state is computed before any pad, and the causal mask stops it from
# attending to what comes after, so no number of pads can change it. The last position is
# a pad token itself: its state attends to the message *and* to all the pads before it, so
# every extra pad changes what it sees. The book's classifier was trained with every message
# padded to the longest training message, so the last position it learned to read is "a pad
# that has seen this many pads"; `classify_review` pads new messages the same way
# (`max_length`), and then the prediction is the one training prepared for. Two ways to make
# the padding not matter: pad consistently (the book), or read the last real token
# (`token="last_real"`).

# %% [markdown]
# ## 3. Error analysis: what it gets wrong, and the threshold
#
# Every test message with its P(spam) and its loss (the cross-entropy of its true class:
# near 0 for a confident right answer, large for a confident wrong one). The mistakes, the
# most confident first:

# %%
show_source(score_messages)

# %% [markdown]
# The cell after the next runs the whole model once on each test message, padded to the
# training length; the next cell prints how long that takes here (counted as a run with no
# training step).

# %%
estimate_time(profile.config, "evaluate", train=len(test_df), validation=0, test=0,
              max_length=max_length)

# %%
scores = score_messages(test_df["Text"], test_df["Label"], classifier, tokenizer, device, max_length=max_length,
                        also=("first", "last_real"))
print(f"{len(scores)} test messages, {int((scores['predicted'] != scores['label']).sum())} misclassified; "
      f"accuracy {(scores['predicted'] == scores['label']).mean():.2%} (the run reported "
      f"{reported['test']:.2%})")
with pd.option_context("display.max_colwidth", 120):
    display(misclassified(scores)[["text", "label", "p_spam", "loss"]].head(10).round(3))

# %% [markdown]
# The same forward pass also read the head at the first token and at the last real token of
# every test message (the last position is a pad for every message shorter than the longest
# training message). Accuracy at each read position, the read-out curve over the whole split.
# The head is the same in all three: the one trained on the last position.
#
# **Predict first.** Which of the three read positions gives the best test accuracy, and is
# the first token better than a coin toss? Run the cell below to check.

# %%
accuracy_by_position = {
    "first token": ((scores["p_spam_first"] > 0.5) == (scores["label"] == 1)).mean(),
    "last real token": ((scores["p_spam_last_real"] > 0.5) == (scores["label"] == 1)).mean(),
    "last position (the book's)": (scores["predicted"] == scores["label"]).mean(),
}
display(pd.Series(accuracy_by_position, name="test accuracy").round(4))
n_test = len(scores)
for a, b in (("last position (the book's)", "last real token"), ("last real token", "first token")):
    display(compare_runs(f"Reading the {a}", accuracy_by_position[a], f"reading the {b}",
                         accuracy_by_position[b], n_test))
compare_runs("Reading the first token", accuracy_by_position["first token"], "a coin toss (50%)", 0.5, n_test)

# %% [markdown]
# The sentences above say which differences are beyond noise on these test messages (a coin
# toss on the same balanced messages is the baseline for the first token). The first token's
# state has seen one word; the last real token and the last position have seen the whole
# message. The head was trained on the last position only, which with the book's padding is a
# pad for most messages (section 2), so the other two readings apply it to states it was never
# trained on. Where the last real token reads much worse than the last position, the head has
# learned to read what the pads gathered, not a summary at the last word.
#
# This first-token row is **not** the book's exercise 6.3. That exercise *trains* the head on
# the first token (`token="first"`) and reports 75.00% test with pretrained weights (assignment
# A01 runs it); here a head trained on the last position is only *read* at the first token.
# Likewise, training the head on the last real token (`token="last_real"`) is a different
# experiment; the lab in notebook 6 runs it.
#
# Read the texts: in our offline run, the most confident mistakes are spam written like a
# friend's message ("Hello. We need some posh birds and chaps to user trial prods...", "Money
# i have won wining number 946 wot do i do next"), and the confident mistakes in general are often short spam without the usual words, or
# ham that talks about prizes, calls and money. A false positive (ham flagged as spam, label
# 0) is the costly one for a spam filter.
#
# The classifier says "spam" when P(spam) > 0.5, but 0.5 is only a default. Raising the
# threshold flags fewer messages: precision (of the flagged, how many are spam) goes up,
# recall (of the spam, how many are flagged) goes down. The test split is **balanced**, half
# spam, so its precision is flattering: in the real collection only 13.4% of messages are
# spam (747 of 5,572), so each false-positive rate hits about 6.5 times as much ham per spam.
# The precision at a spam rate π follows from recall (TPR) and false-positive rate (FPR):
#
# $$\text{precision}_\pi = \frac{\pi \cdot \text{TPR}}{\pi \cdot \text{TPR} + (1-\pi) \cdot \text{FPR}}$$
#
# which is the same as counting every ham test message (n_spam / n_ham) · (1 − π) / π times.
# In our offline run, at the default threshold 0.5: recall 92.1%, false-positive rate 4.0%,
# precision 95.9% on the balanced split but 78.0% at 13.4% spam: in a real inbox, more than
# one flagged message in five would be a friend's. Threshold 0.9 brings it to 90.9% and lets
# 14% of the spam through.

# %%
show_source(threshold_table)

# %%
# NBVAL_CHECK_OUTPUT
print(f"natural spam rate: {NATURAL_SPAM_RATE:.4f} (747 / 5572)")

# %%
table = threshold_table(scores, [0.1, 0.3, 0.5, 0.7, 0.9])
table[["threshold", "tp", "fp", "fn", "recall", "fpr", "precision", "precision_at_prior", "accuracy_at_prior"]].round(3)

# %%
figure = plot_error_analysis(scores, title=f"Error analysis on the test split ({profile.name} profile, "
                                           f"{profile.weights} weights)")

# %% [markdown]
# Move the threshold and watch both precisions (needs a live kernel; run headless, the cell
# prints the table at a few thresholds instead):

# %%
threshold_explorer(scores)

# %% [markdown]
# ## 4. A bag-of-words baseline beside GPT-2
#
# How much of the job needs a 124-million-parameter transformer? The oldest spam filter
# there is: count how often each token occurs in a message (its *bag of words*, order
# thrown away), and put one linear layer on those counts: logistic regression. Here in plain
# torch, on the same GPT-2 BPE tokens and the book's same split, trained with cross-entropy and
# AdamW; the vocabulary comes from the training messages only.

# %%
show_source(train_bow_baseline)

# %%
bow = train_bow_baseline(train_df, val_df, test_df, units="bpe", seed=profile.seed)
comparison = pd.DataFrame({
    "bag of words (this notebook)": {"train": bow.accuracy["train"], "validation": bow.accuracy["validation"],
                                     "test": bow.accuracy["test"]},
    f"GPT-2, {profile.weights} weights (this notebook)": reported,
    "GPT-2, pretrained (the book)": {"train": 0.9721, "validation": 0.9732, "test": 0.9567},
}).T
display((comparison * 100).round(2))
display(compare_runs("The bag of words", bow.accuracy["test"], f"GPT-2 with {profile.weights} weights (this notebook)",
                     reported["test"], len(test_df)))
compare_runs("The bag of words", bow.accuracy["test"], "the book's pretrained GPT-2", 0.9567, len(test_df))

# %%
bow.top_units(12)

# %% [markdown]
# **What this teaches.** On the real data (the `book` and `offline` profiles; smoke's numbers
# mean nothing) this linear model on token counts, with 4,828 × 2 weights and trained in
# seconds, reaches 96.67% test accuracy (100.00% train, 98.66% validation), against the
# book's 95.67% for fine-tuned pretrained GPT-2. The two sentences under the table say
# whether each difference is beyond noise, by the one convention of these notebooks: each
# accuracy's 95% interval, the two half-widths combined. Against the book, 95.67% and 96.67%
# are three test messages apart out of 300, within noise (the band is about ±3.2 points for
# two accuracies near 96% on 300 messages); other reasonable settings of the baseline land
# between 96.0% and 97.0%. So on this data set:
#
# * **Spam is largely a word-level signal.** The heaviest tokens say it: towards spam
#   " mobile", " text", "tone", " service", pieces of phone numbers and prices; towards ham
#   "I", "Yeah", "Ok", " coming", "Where", "..." (people writing to people). Order adds little.
# * **Against this notebook's GPT-2, read the first sentence under the table.** Where the bag
#   of words ends beyond noise above a GPT-2 trained from random weights (the offline
#   profile), those 124M parameters learned, from 1,045 messages, less than one linear layer;
#   where the difference is within noise, this test set cannot rank the two.
# * **The chapter does not show that fine-tuned GPT-2 is a better spam filter.** It shows
#   that the recipe (new head, last block trained, last token read) works, and what it
#   costs. A baseline is what makes an accuracy mean something; report one.
# * **What GPT-2 buys is not visible in this test set.** Pretraining brings knowledge of
#   language that word counts lack: synonyms and paraphrases, spelling variants, words never
#   seen in the 1,045 training messages, meaning that depends on order ("not free"). That
#   should matter for new kinds of spam, other languages of writing, very small training
#   sets, or harder tasks (the instruction fine-tuning of chapter 7); on SMS spam, where a
#   few hundred words give a message away, the test set has too few such cases to show it.
#   It is a claim about what pretraining offers, not a measurement made here.

# %% [markdown]
# ## Check your understanding
#
# 1. Why does the read-out curve start near wherever one word puts it, and why is the last
#    real token's reading unchanged by any number of pads?
#
#    <details><summary>Answer</summary>The state at position 0 has attended only to the
#    first token, so the head can judge only that word. With the causal mask a position
#    attends to itself and what comes before, never after, so pads appended later cannot reach
#    the last real token's state.</details>
#
# 2. A filter has 95% recall and a 3% false-positive rate on the balanced split. What is its
#    precision there, and at 13.4% spam?
#
#    <details><summary>Answer</summary>Balanced: 0.95 / (0.95 + 0.03) ≈ 97%. At 13.4% spam:
#    0.134 · 0.95 / (0.134 · 0.95 + 0.866 · 0.03) ≈ 83%: about one flagged message in six is
#    a friend's.</details>
#
# 3. The bag-of-words model beats fine-tuned GPT-2 by one point on the test set. Is it the
#    better model?
#
#    <details><summary>Answer</summary>Not shown: three messages of 300 is within the test
#    set's noise (the two accuracies' 95% band is about ±3.2 points). What it shows is that
#    this task is easy for word counts, so the test set cannot tell what pretraining adds.
#    </details>
#
# ## Recap
#
# * The head works at every position; the last one is read because only it has seen the whole message.
# * Pads change the last position's reading, never the last real token's (causal mask); pad as in training or read `last_real`.
# * Judge a spam filter by precision at the real spam rate and against a word-count baseline, not by balanced accuracy alone.
