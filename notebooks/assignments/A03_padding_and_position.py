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
# # Assignment 3: padding and the position that is read
#
# **Goals.**
#
# * See how often the book's classifier reads a pad token instead of the message.
# * Find each message's last *real* token yourself, and train a classifier that reads it.
# * Pad each batch only to its own longest message, and show why that changes nothing for a
#   classifier that reads the last real token, while saving computation.
#
# **Before you start.** Notebooks 2 (padding) and 4 (which token is read, the causal mask)
# of the chapter.
#
# **How to work.** Cells with `# YOUR CODE HERE` are yours: replace the
# `raise NotImplementedError()` line. The check cell after each one tests what your code
# computed and prints `OK: ...` or stops with a message saying what is wrong. Answers in
# words go into the `YOUR ANSWER HERE` cells.
#
# **Time.** With the real model, about 3 minutes of computing on a recent laptop CPU, two to
# four times that on an older one (an estimate; see the teacher's guide). With
# `GPTLIB_PROFILE=smoke` it runs in well under a minute; the numbers then come from a tiny
# random model and mean nothing, the steps are the same.

# %% tags=["parameters"]
from gptlib.notebook import load_profile

# None reads $GPTLIB_PROFILE: unset means "book" (pretrained gpt2-small, real data, 5 epochs),
# "smoke" a tiny random model and a small made-up data file.
PROFILE = None
profile = load_profile(PROFILE)
if profile.name == "smoke":
    # the tiny model needs a larger learning rate to move at all in a few steps
    profile = profile.replace(epochs=2, lr=1e-3)
print(profile)

# %%
import torch  # noqa: F401  (not used by this cell; your answers may need it)

from gptlib import get_tokenizer
from gptlib.assignments import (
    check_batch_padding,
    check_last_real_positions,
    check_pad_share,
    check_position_runs,
    compare_runs,
    run_experiment,
)
from gptlib.classifier import add_classification_head
from gptlib.data import SpamDataset, create_data_loaders, prepare_spam_splits, spam_datasets
from gptlib.notebook import load_base_model, profile_device, spam_data_file

tokenizer = get_tokenizer()
device = profile_device(profile)
PAD_ID = 50256  # <|endoftext|>, the book's pad token
print("device:", device)

# %% [markdown]
# ## The baseline: the book's padding, the last position
#
# Every message is padded on the right to the longest training message, and the classifier
# reads position -1.

# %%
data_file = spam_data_file(profile)
train_csv, val_csv, test_csv = prepare_spam_splits(data_file, profile.work_dir / "assignments" / "spam")
train_ds, val_ds, test_ds = spam_datasets(train_csv, val_csv, test_csv, tokenizer)
loaders = create_data_loaders(train_ds, val_ds, test_ds, batch_size=profile.batch_size, seed=profile.seed)
base_model = load_base_model(profile)
baseline = run_experiment(add_classification_head(base_model), loaders, profile, name="book: last position")

# %% [markdown]
# ## Task 1: how often is position -1 a pad token?
#
# Compute `pad_share`: the fraction (between 0 and 1) of the training messages in `train_ds`
# whose token at the last position is the pad token `PAD_ID`. (`train_ds[i]` is a pair
# `(token ids, label)`.)

# %% nbgrader={"grade": false, "grade_id": "a03_pad_share", "locked": false, "schema_version": 3, "solution": true, "task": false}
pad_share = None
### BEGIN SOLUTION
ends_in_pad = [int(ids[-1]) == PAD_ID for ids, _ in train_ds]
pad_share = sum(ends_in_pad) / len(ends_in_pad)
### END SOLUTION
print(f"{pad_share:.1%} of the training messages end in a pad token")

# %% nbgrader={"grade": true, "grade_id": "a03_pad_share_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check_pad_share(pad_share, train_ds)

# %% [markdown]
# ## Task 2: the last real token
#
# Write `last_real_positions(input_ids, pad_token_id)`: for a batch of token ids of shape
# `(batch, tokens)`, padded on the right with `pad_token_id`, return a tensor with one
# position per row: the index of the row's last token that is **not** a pad token. The pad id
# never occurs inside a message. Try to do it without a Python loop over the rows.

# %% nbgrader={"grade": false, "grade_id": "a03_last_real", "locked": false, "schema_version": 3, "solution": true, "task": false}
def last_real_positions(input_ids, pad_token_id=PAD_ID):
    ### BEGIN SOLUTION
    lengths = (input_ids != pad_token_id).sum(dim=1)
    return (lengths - 1).clamp(min=0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a03_last_real_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check_last_real_positions(last_real_positions)

# %% [markdown]
# Your function is what `token="last_real"` does inside the library
# (`gptlib.classifier.last_real_index`). Here it is on the first training batch:

# %%
first_batch, _ = next(iter(loaders[0]))
print("batch shape:", tuple(first_batch.shape))
print("last real positions:", last_real_positions(first_batch).tolist())

# %% [markdown]
# ## Task 3: padding per batch
#
# Padding every message to the longest training message wastes computation on pad tokens.
# Make datasets with `padding="batch"`, which leave messages unpadded, and build loaders from
# them with `create_data_loaders` (the profile's batch size and seed): each batch is then
# padded only to its own longest message. Store the loaders in `batch_loaders`. Give the
# validation and test sets the training set's `max_length`, as the book does (longer
# messages are cut to it).

# %% nbgrader={"grade": false, "grade_id": "a03_batch_loaders", "locked": false, "schema_version": 3, "solution": true, "task": false}
batch_loaders = None
### BEGIN SOLUTION
train_b = SpamDataset(train_csv, tokenizer, padding="batch")
val_b = SpamDataset(val_csv, tokenizer, max_length=train_b.max_length, padding="batch")
test_b = SpamDataset(test_csv, tokenizer, max_length=train_b.max_length, padding="batch")
batch_loaders = create_data_loaders(train_b, val_b, test_b, batch_size=profile.batch_size, seed=profile.seed)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a03_batch_loaders_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check_batch_padding(batch_loaders)

# %% [markdown]
# ## Task 4: two runs that read the last real token
#
# 1. `run_last_real`: a fresh classifier trained on the baseline's `loaders` (the book's
#    padding) that reads the last real token (`run_experiment(..., token="last_real")`).
# 2. `run_batch`: the same, but trained on your `batch_loaders`.

# %% nbgrader={"grade": false, "grade_id": "a03_runs", "locked": false, "schema_version": 3, "solution": true, "task": false}
run_last_real, run_batch = None, None
### BEGIN SOLUTION
run_last_real = run_experiment(add_classification_head(base_model), loaders, profile,
                               token="last_real", name="last real token")
run_batch = run_experiment(add_classification_head(base_model), batch_loaders, profile,
                           token="last_real", name="last real token, per-batch padding")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a03_runs_check", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
check_position_runs(baseline, run_last_real, run_batch)

# %%
compare_runs({"book: last position": baseline, "last real token": run_last_real,
              "last real, per batch": run_batch}).round(3)

# %% [markdown]
# **Question.**
#
# 1. Why does reading the last real token help so much more than any other change of this
#    chapter's exercises? Relate it to your `pad_share`.
# 2. Why do `run_last_real` and `run_batch` give the same results (up to rounding), although
#    their batches have different widths? Name the two properties of the model and of the
#    padding that make this exact.
# 3. Would the book's classifier (reading position -1) also give the same results with
#    per-batch padding? Why not?

# %% [markdown] nbgrader={"grade": true, "grade_id": "a03_answer", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# 1. For almost every message (all but the longest) position -1 holds a pad token, so the
#    book's classifier reads a position whose input is `<|endoftext|>` and which sees the
#    message only through attention over many pads; the trainable last block has to learn
#    to dig the message out of there. The last real token is where the model has just read
#    the whole message, exactly the position pretraining taught it to summarise the text
#    so far, so the features there are directly useful.
# 2. The pads come after the last real token (right padding), and the causal mask stops
#    every position from attending to later positions. So the output at the last real token
#    is the same however many pads follow it, and with the same seed the two runs see the
#    same messages in the same order and make the same updates. Only the amount of work
#    differs; tiny differences can come from floating-point sums over different shapes.
# 3. No: with per-batch padding position -1 is the last real token for the longest message
#    of each batch and a pad token, at a varying distance from the message, for the others.
#    What the classifier reads then depends on which messages share a batch, so the results
#    change (and the training signal is less consistent).
# ### END SOLUTION
