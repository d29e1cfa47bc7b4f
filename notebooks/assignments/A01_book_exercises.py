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
# # Assignment 1: the book's three exercises
#
# **Goals.** Reproduce the three exercises at the end of Chapter 6 and explain each result:
#
# * **6.1** pad every message to the model's full context length instead of the longest
#   training message;
# * **6.2** fine-tune the whole model instead of the last block;
# * **6.3** read the output at the *first* token instead of the last.
#
# Each exercise changes one thing and is compared with the same baseline run, the book's.
#
# **Before you start.** Notebooks 2 to 5 of the chapter (data and padding, the new head,
# the last token, the training loop).
#
# **How to work.** Cells that contain `# YOUR CODE HERE` are yours: replace the
# `raise NotImplementedError()` line with your code. The cell after each one is a *check*:
# it tests what your code computed (shapes, parameter counts, how the loss moved) and either
# prints a line starting with `OK` or stops with a message that says what is wrong. Do not
# edit the checks. Answers in words go into the cells that say `YOUR ANSWER HERE`.
#
# **Time.** With the real model, about 35 to 40 minutes of computing on a recent laptop CPU,
# 23 of them for exercise 6.1, and two to four times that on an older one (an estimate; see
# the teacher's guide). With `GPTLIB_PROFILE=smoke` (a tiny random model, made-up data, 2
# epochs) the notebook runs in well under a minute and the numbers mean nothing, but every
# step and check is the same.

# %% tags=["parameters"]
from gptlib.notebook import load_profile

# None reads $GPTLIB_PROFILE: unset means "book" (pretrained gpt2-small, the real data, the
# book's 5 epochs), "smoke" a tiny random model and a small made-up data file.
PROFILE = None
profile = load_profile(PROFILE)
if profile.name == "smoke":
    # A tiny random model hardly moves at the book's learning rate in a few steps; a larger
    # rate and two epochs make the differences between the runs show.
    profile = profile.replace(epochs=2, lr=1e-3)
print(profile)

# %%
import torch  # noqa: F401  (not used by this cell; your answers may need it)

from gptlib import get_tokenizer
from gptlib.assignments import (
    check_all_layers_trainable,
    check_exercise_61,
    check_exercise_62,
    check_exercise_63,
    check_padded_to_context,
    compare_runs,
    run_experiment,
)
from gptlib.classifier import add_classification_head, trainable_summary
from gptlib.data import SpamDataset, create_data_loaders, prepare_spam_splits, spam_datasets
from gptlib.notebook import load_base_model, profile_device, show_source, spam_data_file

tokenizer = get_tokenizer()
device = profile_device(profile)
print("device:", device)

# %% [markdown]
# ## The baseline: the book's run
#
# The book's data: the balanced 70/10/20 split, every message padded to the longest training
# message, batches of 8. `base_model` is the profile's GPT-2 with its language-model head; it
# is never changed, each experiment makes its own classifier from it.

# %%
data_file = spam_data_file(profile)
train_csv, val_csv, test_csv = prepare_spam_splits(data_file, profile.work_dir / "assignments" / "spam")
train_ds, val_ds, test_ds = spam_datasets(train_csv, val_csv, test_csv, tokenizer)
loaders = create_data_loaders(train_ds, val_ds, test_ds, batch_size=profile.batch_size, seed=profile.seed)
base_model = load_base_model(profile)
print(f"{len(train_ds)}/{len(val_ds)}/{len(test_ds)} messages, padded to {train_ds.max_length} tokens; "
      f"the model's context length is {base_model.pos_emb.weight.shape[0]}")

# %% [markdown]
# Every run in this assignment goes through `run_experiment`: it trains a *copy* of the
# classifier it is given with the book's loop and optimizer (AdamW, the profile's learning
# rate and weight decay, the seed set right before training), then measures accuracy and
# loss on the whole of each split. Read it once:

# %%
show_source(run_experiment)

# %%
baseline = run_experiment(add_classification_head(base_model), loaders, profile, name="baseline")

# %% [markdown]
# ## Exercise 6.1: pad to the context length
#
# The book pads each message only up to the longest training message (120 tokens). What
# happens if every message is padded to the longest input the model can take, its context
# length (1024 tokens for GPT-2; 256 for the tiny smoke model)?
#
# Steps:
# 1. Read the context length from the model (not from memory): `base_model.pos_emb` has one
#    row per position.
# 2. Make the three datasets from `train_csv`, `val_csv` and `test_csv` padded to that
#    length (`SpamDataset(..., max_length=...)`).
# 3. Make the loaders with `create_data_loaders` (the profile's batch size and seed) and
#    store them in `loaders_61`.

# %% nbgrader={"grade": false, "grade_id": "a01_61_data", "locked": false, "schema_version": 3, "solution": true, "task": false}
loaders_61 = None
### BEGIN SOLUTION
context_length = base_model.pos_emb.weight.shape[0]
datasets_61 = [SpamDataset(csv, tokenizer, max_length=context_length) for csv in (train_csv, val_csv, test_csv)]
loaders_61 = create_data_loaders(*datasets_61, batch_size=profile.batch_size, seed=profile.seed)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a01_61_data_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check_padded_to_context(loaders_61, base_model, baseline_loaders=loaders)

# %% [markdown]
# Now train a fresh classifier (the book's head, last block trainable) on `loaders_61` with
# `run_experiment`, everything else as in the baseline, and store the result in `run_61`.
# With the real model this is the slow run of the assignment: every message is now 1,024
# tokens long instead of at most 120. (If your computer has about 8 GB of memory to spare,
# `run_experiment(..., max_cache_bytes=6 * 2**30)` keeps the frozen layers' output for every
# message instead of recomputing most of it, and the run takes about a third of the time.)

# %% nbgrader={"grade": false, "grade_id": "a01_61_run", "locked": false, "schema_version": 3, "solution": true, "task": false}
run_61 = None
### BEGIN SOLUTION
run_61 = run_experiment(add_classification_head(base_model), loaders_61, profile, name="6.1 pad to context")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a01_61_run_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check_exercise_61(run_61, baseline, base_model)

# %% [markdown]
# **Question 6.1.** The book's accuracy drops from 95.67% to 78.33% when padding to 1,024.
# Which token does the classifier read, what is at that position for a typical message now,
# and how far is it from the message's last real token? Why does that make learning harder
# even though attention can in principle look back at every position?

# %% [markdown] nbgrader={"grade": true, "grade_id": "a01_61_answer", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# The classifier reads position -1. With padding to 1,024 that is a pad token for every
# message, typically about 1,000 positions after the message's last real token (messages
# average about 30 tokens). The representation at that position is built mostly from
# hundreds of identical `<|endoftext|>` tokens, so the message's words are a small,
# diluted share of what attention mixes in; every message's read position looks alike, and
# only the last block (plus the head) may adapt to dig the signal out. The pretrained model
# never saw such long runs of end-of-text tokens, so its features there are not useful
# either. Shorter padding keeps the read position close to the message.
# ### END SOLUTION

# %% [markdown]
# ## Exercise 6.2: fine-tune the whole model
#
# The book trains only the last transformer block, the final norm and the new head (about
# 7 million of 124 million parameters). Train all of them instead.
#
# Steps:
# 1. Make `model_62`: a classifier from `base_model` with every parameter trainable
#    (look at the arguments of `add_classification_head`).
# 2. Train it with `run_experiment` on the baseline's `loaders` and store the result in
#    `run_62`.

# %% nbgrader={"grade": false, "grade_id": "a01_62_model", "locked": false, "schema_version": 3, "solution": true, "task": false}
model_62 = None
### BEGIN SOLUTION
model_62 = add_classification_head(base_model, trainable="all")
### END SOLUTION
print(trainable_summary(model_62))

# %% nbgrader={"grade": true, "grade_id": "a01_62_model_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check_all_layers_trainable(model_62, base_model)

# %% nbgrader={"grade": false, "grade_id": "a01_62_run", "locked": false, "schema_version": 3, "solution": true, "task": false}
run_62 = None
### BEGIN SOLUTION
run_62 = run_experiment(model_62, loaders, profile, name="6.2 all layers")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a01_62_run_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check_exercise_62(run_62, baseline, base_model)

# %% [markdown]
# **Question 6.2.** The book gains one point of test accuracy (95.67% to 96.67%) by training
# all layers. Compare the training time and the training loss of your two runs. Why is the
# book's choice of training only the top of the model a reasonable default?

# %% [markdown] nbgrader={"grade": true, "grade_id": "a01_62_answer", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Training every layer fits the training data better (lower training loss) but the test
# accuracy hardly moves, while each step costs more: gradients flow through all twelve
# blocks and the optimizer keeps two extra values for each of 124 million parameters
# instead of 7 million. The lower layers already compute general-purpose features of
# English text; spam detection mostly needs a new reading of the top of the network. With
# only about a thousand training messages, adapting 124 million parameters also risks
# overfitting and forgetting what pretraining learnt. Training the top is cheaper and
# nearly as good.
# ### END SOLUTION

# %% [markdown]
# ## Exercise 6.3: read the first token
#
# Train a fresh classifier (the book's head) on the baseline's `loaders`, but compute the
# loss and the predictions from the output at the **first** token instead of the last.
# `run_experiment` takes a `token` argument for this (the choices are explained in notebook
# 4). Store the result in `run_63`.

# %% nbgrader={"grade": false, "grade_id": "a01_63_run", "locked": false, "schema_version": 3, "solution": true, "task": false}
run_63 = None
### BEGIN SOLUTION
run_63 = run_experiment(add_classification_head(base_model), loaders, profile, token="first",
                        name="6.3 first token")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a01_63_run_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check_exercise_63(run_63, baseline)

# %% [markdown]
# **Question 6.3.** The check printed how many different first tokens the test messages
# have. Use the causal attention mask to explain why a classifier that reads the first
# token can give at most that many different answers, and why the book's accuracy falls to
# 75%.

# %% [markdown] nbgrader={"grade": true, "grade_id": "a01_63_answer", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# The causal mask lets each position attend only to itself and earlier positions. The first
# position therefore sees nothing but the first token: its output is a function of that one
# token, so two messages that start with the same token ("I", "Hey", "URGENT") always get the
# same answer. The classifier can only learn which first tokens are typical of spam; that
# works for messages that open with "FREE" or "Congratulations" and fails for everything
# that starts with an ordinary word, hence about 75% instead of 95%. The last position is the
# only one that has seen the whole message, which is why the book reads it.
# ### END SOLUTION

# %% [markdown]
# ## All runs side by side
#
# The last column is the book's test accuracy for the same setting (pretrained gpt2-small).
# With the smoke profile the accuracies are meaningless; the training losses still show the
# directions the checks test.

# %%
BOOK_TEST_ACCURACY = {"baseline": 95.67, "6.1 pad to context": 78.33, "6.2 all layers": 96.67,
                      "6.3 first token": 75.00}
compare_runs({"baseline": baseline, "6.1 pad to context": run_61, "6.2 all layers": run_62,
              "6.3 first token": run_63}, reference=BOOK_TEST_ACCURACY).round(3)
