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
# # Assignment 2: overfitting, dropout and weight decay
#
# **Goals.**
#
# * Make a classifier overfit on purpose (few training messages, many epochs) and see it in
#   the loss curves.
# * Turn on dropout in a pretrained model, and work out what AdamW's weight decay really does
#   to a weight at the book's learning rate.
# * Measure the gap between training and validation numbers, find the step where the
#   validation loss was lowest, and explain what you see.
#
# **Before you start.** Notebook 5 of the chapter (the training loop and its plots; its last
# section introduces dropout and weight decay).
#
# **How to work.** Cells with `# YOUR CODE HERE` are yours: replace the
# `raise NotImplementedError()` line. The check cell after each one tests what your code
# computed and prints `OK: ...` or stops with a message saying what is wrong. Answers in
# words go into the `YOUR ANSWER HERE` cells.
#
# **Time.** With the real model, about 3 minutes of computing on a recent laptop CPU, two to
# four times that on an older one (an estimate; see the teacher's guide). With
# `GPTLIB_PROFILE=smoke` it runs in well under a minute and the curves are those of a tiny
# random model: the steps are the same, the numbers mean nothing.

# %% tags=["parameters"]
from gptlib.notebook import load_profile

# None reads $GPTLIB_PROFILE: unset means "book" (pretrained gpt2-small, real data),
# "smoke" a tiny random model and a small made-up data file.
PROFILE = None
profile = load_profile(PROFILE)
TRAIN_MESSAGES = 200  # train on only the first 200 training messages, so that overfitting shows
if profile.name == "smoke":
    # the tiny model needs a larger learning rate to move at all in a few steps
    profile = profile.replace(epochs=2, lr=1e-3)
else:
    profile = profile.replace(epochs=10, eval_freq=10)  # 25 steps per epoch, 250 in all
print(profile)

# %%
import copy

import pandas as pd
import torch

from gptlib import get_tokenizer
from gptlib.assignments import (
    check_best_steps,
    check_decay_shrink,
    check_gaps,
    check_regularisation_runs,
    check_with_dropout,
    compare_runs,
    plot_runs,
    run_experiment,
)
from gptlib.classifier import add_classification_head
from gptlib.data import create_data_loaders, prepare_spam_splits, spam_datasets
from gptlib.notebook import load_base_model, profile_device, spam_data_file

tokenizer = get_tokenizer()
device = profile_device(profile)
print("device:", device)

# %% [markdown]
# ## A small training set
#
# The book's balanced split, but only the first `TRAIN_MESSAGES` training messages: with
# few examples and many epochs the model can memorise them, which is what overfitting is.
# Validation and test sets are the book's.

# %%
data_file = spam_data_file(profile)
train_csv, val_csv, test_csv = prepare_spam_splits(data_file, profile.work_dir / "assignments" / "spam")
train_df = pd.read_csv(train_csv).iloc[:TRAIN_MESSAGES]
train_ds, val_ds, test_ds = spam_datasets(train_df, val_csv, test_csv, tokenizer)
loaders = create_data_loaders(train_ds, val_ds, test_ds, batch_size=profile.batch_size, seed=profile.seed)
base_model = load_base_model(profile)
print(f"{len(train_ds)}/{len(val_ds)}/{len(test_ds)} messages; {len(loaders[0])} steps per epoch, "
      f"{profile.epochs} epochs")

# %% [markdown]
# ## Task 1: dropout
#
# Dropout sets a random share `p` of the values passing through a `torch.nn.Dropout` layer to
# zero during training (and scales the rest up), so the model cannot rely on any single
# feature. GPT-2 has dropout layers after the embeddings, on the attention weights and on
# each residual branch; the book's models set them all to `p = 0`.
#
# Write `with_dropout(model, rate)`: it returns a **copy** of `model` in which every
# `torch.nn.Dropout` layer has `p = rate`. The weights stay as they are, and `model` itself
# must not change (every run starts from the same `base_model`).

# %% nbgrader={"grade": false, "grade_id": "a02_with_dropout", "locked": false, "schema_version": 3, "solution": true, "task": false}
def with_dropout(model, rate):
    ### BEGIN SOLUTION
    changed = copy.deepcopy(model)
    for module in changed.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = rate
    return changed
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a02_with_dropout_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check_with_dropout(with_dropout, base_model)

# %% [markdown]
# ## Task 2: what weight decay does to a weight
#
# AdamW applies weight decay separately from the gradient step: at every step each weight
# `w` becomes `w - lr * weight_decay * w` (and then moves by its Adam update). Ignoring the
# gradient, how much of a weight is left after `steps` steps?
#
# Write `decay_shrink(lr, weight_decay, steps)` returning that factor (1.0 means nothing is
# removed). The check also prints it for the book's run: 650 steps at lr 5e-5 and weight
# decay 0.1.

# %% nbgrader={"grade": false, "grade_id": "a02_decay_shrink", "locked": false, "schema_version": 3, "solution": true, "task": false}
def decay_shrink(lr, weight_decay, steps):
    ### BEGIN SOLUTION
    return (1 - lr * weight_decay) ** steps
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a02_decay_shrink_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check_decay_shrink(decay_shrink)

# %% [markdown]
# ## Task 3: three runs
#
# `SETTINGS` maps a name to (dropout rate, weight decay). For each entry, train a fresh
# classifier (the book's head) made from `with_dropout(base_model, rate)` with
# `run_experiment(..., weight_decay=...)` on `loaders`, and store the result in
# `runs[name]`. Use the names of `SETTINGS` as they are.

# %%
SETTINGS = {
    "book": (0.0, 0.1),
    "dropout 0.3": (0.3, 0.1),
    "weight decay 10": (0.0, 10.0),
}
steps = profile.epochs * len(loaders[0])
print(f"{steps} optimizer steps per run at lr {profile.lr}")

# %% nbgrader={"grade": false, "grade_id": "a02_runs", "locked": false, "schema_version": 3, "solution": true, "task": false}
runs = None
### BEGIN SOLUTION
runs = {}
for name, (rate, decay) in SETTINGS.items():
    classifier = add_classification_head(with_dropout(base_model, rate))
    runs[name] = run_experiment(classifier, loaders, profile, weight_decay=decay, name=name)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a02_runs_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check_regularisation_runs(runs, SETTINGS)

# %% [markdown]
# ## Reading the curves
#
# Each panel shows one run: the loss on a few training and validation batches, measured every
# `eval_freq` optimizer steps, and below it the accuracy after each epoch.

# %%
plot_runs(runs, "loss")

# %%
plot_runs(runs, "accuracy")

# %%
compare_runs(runs).round(3)

# %% [markdown]
# ## Task 4: the gap and the best step
#
# 1. `accuracy_gaps[name]`: the run's final training accuracy minus its final validation
#    accuracy (`run.accuracy`, measured on the whole splits, as fractions).
# 2. `loss_gaps[name]`: the final validation loss minus the final training loss (`run.loss`).
# 3. `best_steps[name]`: the optimizer step at which the run's validation loss curve
#    (`run.val_losses`) was lowest. Evaluations happen every `run.eval_freq` steps, the first
#    one at step 0.

# %% nbgrader={"grade": false, "grade_id": "a02_gaps", "locked": false, "schema_version": 3, "solution": true, "task": false}
accuracy_gaps, loss_gaps, best_steps = None, None, None
### BEGIN SOLUTION
accuracy_gaps = {n: r.accuracy["train"] - r.accuracy["validation"] for n, r in runs.items()}
loss_gaps = {n: r.loss["validation"] - r.loss["train"] for n, r in runs.items()}
best_steps = {n: r.eval_freq * min(range(len(r.val_losses)), key=r.val_losses.__getitem__)
              for n, r in runs.items()}
### END SOLUTION
pd.DataFrame({"accuracy gap": accuracy_gaps, "loss gap": loss_gaps, "best step": best_steps})

# %% nbgrader={"grade": true, "grade_id": "a02_gaps_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check_gaps(accuracy_gaps, loss_gaps, runs)
check_best_steps(best_steps, runs)

# %% [markdown]
# **Question.** Answer from *your* curves and numbers (with the real model):
#
# 1. Where do the curves show overfitting: which curve keeps improving, which one stops or
#    turns, and from about which step? What would early stopping have done?
# 2. Why is the training accuracy higher than the validation accuracy at all, and what did
#    dropout change about the gap and about the training curve?
# 3. Use `decay_shrink` to explain why the book's weight decay of 0.1 changes almost nothing
#    here, and what a weight decay strong enough to matter does to *pretrained* weights.

# %% [markdown] nbgrader={"grade": true, "grade_id": "a02_answer", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# 1. With 200 messages and 10 epochs the training loss keeps falling towards zero while
#    the validation loss stops falling after the first few epochs and then drifts up or
#    jumps around: from there on the model learns the training messages themselves rather
#    than what makes a message spam. The best step is where the validation loss is lowest;
#    early stopping would keep the weights from that step (or stop training a little later).
# 2. The model is chosen to make the training loss small on exactly these messages, so it
#    fits their quirks (particular words, lengths, phone numbers) that do not carry over to
#    new messages; the validation set measures only what generalises. The gap grows with
#    fewer training messages and more epochs. Dropout makes each training step see a noisy,
#    thinned network, so the training curve is noisier and falls more slowly, and memorising
#    is harder; the gap is usually smaller, at the price of slower training.
# 3. AdamW multiplies each weight by (1 - lr * weight_decay) per step: with lr 5e-5 and 0.1
#    that is 0.999995, and after 250 steps 99.9% of each weight is left (99.7% after the
#    book's 650), so the decay is practically switched off. A decay of 10 keeps only about
#    88% after 250 steps. Weight decay pulls towards zero, not towards the pretrained
#    values, so at that strength it erases part of what pretraining learnt in the trainable
#    block rather than just preventing memorisation.
# ### END SOLUTION
