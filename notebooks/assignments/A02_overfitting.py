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

# %% [markdown] nbgrader={"grade": false, "grade_id": "a02_given_01", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# # Assignment 2: the training loop, overfitting, dropout and weight decay
#
# **Goals.**
#
# * Write the chapter's accuracy function and its training loop yourself: what the loop
#   counts (`examples_seen`: messages, not tokens) and when it measures accuracy (after each
#   epoch).
# * Make a classifier overfit on purpose (few training messages, many epochs) and see it in
#   the loss curves; turn on dropout; work out what AdamW's weight decay really does to a
#   weight at the book's learning rate.
# * Measure the gap between training and validation numbers, find the step where the
#   validation loss was lowest, and explain what you see.
#
# **Before you start.** Notebook 5 of the chapter (the training loop and its plots; its last
# section introduces dropout and weight decay).
#
# **How to work.** Cells with `# YOUR CODE HERE` are yours: replace the
# `raise NotImplementedError()` line. The check cell after each one tests your code on
# models and data it makes itself, and prints `OK: ...` or a short message saying what is
# wrong. Answers in words go into the `YOUR ANSWER HERE` cells.
#
# **Time.** With the real model, about 3 minutes of computing on a recent laptop CPU, two to
# four times that on an older one (an estimate; see the teacher's guide). `PROFILE =
# "offline"` (the real data, gpt2-small-shaped random weights, nothing to download) costs the
# same and gives real curves of an unpretrained model: good enough for every question here.
# With `PROFILE = "smoke"` it runs in under a minute and the curves are those of a tiny random
# model: the steps are the same, the numbers mean nothing.

# %% tags=["parameters"]
# Your choice for your own work: None reads $GPTLIB_PROFILE (unset: "book", pretrained
# gpt2-small and the real data); "offline" is the real data with gpt2-small-shaped random
# weights (no download; real numbers of an unpretrained model); "smoke" is a tiny random
# model on a small made-up data file (seconds; the numbers mean nothing).
# Grading uses the profile your teacher chooses, whatever this cell says.
PROFILE = None

# %% nbgrader={"grade": false, "grade_id": "a02_given_02", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import copy  # noqa: F401  (your answers may need these)

import pandas as pd
import torch

from gptlib.assignments.profiles import setup
from gptlib.assignments.runner import compare_runs, plot_runs, run_experiment
from gptlib.train import calc_loss_batch  # noqa: F401  (the book's loss of one batch)

TRAIN_MESSAGES = 200  # train on only the first 200 training messages, so that overfitting shows
profile = setup("A02", PROFILE)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a02_given_03", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 1: accuracy and the loop, by hand
#
# 1. Write `calc_accuracy_loader(data_loader, model, device, num_batches=None)`, the book's
#    function: switch the model to evaluation mode, and for the first `num_batches` batches
#    (all of them when it is None, and never more than the loader has) compare the argmax of
#    the *last* token's logits with the labels; return the share that is right. Do not call
#    gptlib's version.
# 2. Write `train_epochs(model, train_loader, val_loader, optimizer, device, num_epochs,
#    eval_iter=None)`: the book's loop without the loss evaluations. For each epoch: put the
#    model in training mode; for every batch `optimizer.zero_grad()`, the loss
#    (`calc_loss_batch(input_batch, target_batch, model, device)`), `loss.backward()`,
#    `optimizer.step()`, and add the number of *messages* in the batch to `examples_seen`;
#    after the epoch, the training and validation accuracy on `eval_iter` batches with your
#    `calc_accuracy_loader`. Return `(train_accs, val_accs, examples_seen)`.
#
# The checks run both on a small model and loaders they make, beside the library's
# `calc_accuracy_loader` and `train_classifier_simple`.

# %% nbgrader={"grade": false, "grade_id": "a02_accuracy", "locked": false, "schema_version": 3, "solution": true, "task": false}
def calc_accuracy_loader(data_loader, model, device, num_batches=None):
    ### BEGIN SOLUTION
    model.eval()
    correct, total = 0, 0
    n = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i >= n:
            break
        with torch.no_grad():
            logits = model(input_batch.to(device))[:, -1, :]
        correct += (logits.argmax(dim=-1) == target_batch.to(device)).sum().item()
        total += len(target_batch)
    return correct / total
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a02_accuracy_check", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a02")
checks.calc_accuracy_loader(calc_accuracy_loader)

# %% nbgrader={"grade": false, "grade_id": "a02_loop", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_epochs(model, train_loader, val_loader, optimizer, device, num_epochs, eval_iter=None):
    ### BEGIN SOLUTION
    train_accs, val_accs, examples_seen = [], [], 0
    for _ in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            examples_seen += input_batch.shape[0]
        train_accs.append(calc_accuracy_loader(train_loader, model, device, num_batches=eval_iter))
        val_accs.append(calc_accuracy_loader(val_loader, model, device, num_batches=eval_iter))
    return train_accs, val_accs, examples_seen
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a02_loop_check", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a02")
checks.train_epochs(train_epochs)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a02_given_04", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# **Why messages, not tokens?** Chapter 5's loop counted `tokens_seen`, because a language
# model learns from every token. Here each message has one label, and padding would inflate
# a token count: `examples_seen` counts what the classifier learns from.

# %% [markdown] nbgrader={"grade": false, "grade_id": "a02_given_05", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 2: dropout
#
# Dropout sets a random share `p` of the values passing through a `torch.nn.Dropout` layer to
# zero during training (and scales the rest up), so the model cannot rely on any single
# feature. GPT-2 has dropout layers after the embeddings, on the attention weights and on
# each residual branch; the book's models set them all to `p = 0`.
#
# Write `with_dropout(model, rate)`: it returns a **copy** of `model` in which every
# `torch.nn.Dropout` layer has `p = rate`. The weights stay as they are, and `model` itself
# must not change.

# %% nbgrader={"grade": false, "grade_id": "a02_with_dropout", "locked": false, "schema_version": 3, "solution": true, "task": false}
def with_dropout(model, rate):
    ### BEGIN SOLUTION
    changed = copy.deepcopy(model)
    for module in changed.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = rate
    return changed
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a02_with_dropout_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a02")
checks.with_dropout(with_dropout)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a02_given_06", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 3: what weight decay does to a weight
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


# %% nbgrader={"grade": true, "grade_id": "a02_decay_shrink_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a02")
checks.decay_shrink(decay_shrink)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a02_given_07", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 4: three runs on 200 messages
#
# `SETTINGS` maps a name to (dropout rate, weight decay). For each entry, train the book's
# classifier on the first `TRAIN_MESSAGES` training messages with
# `run_experiment(profile, train_limit=..., drop_rate=..., weight_decay=...)` and store the
# result in `runs[name]`. Use the names of `SETTINGS` as they are. (`drop_rate` sets every
# dropout layer, as your `with_dropout` does.)

# %% nbgrader={"grade": false, "grade_id": "a02_given_08", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
SETTINGS = {
    "book": (0.0, 0.1),
    "dropout 0.3": (0.3, 0.1),
    "weight decay 10": (0.0, 10.0),
}

# %% nbgrader={"grade": false, "grade_id": "a02_runs", "locked": false, "schema_version": 3, "solution": true, "task": false}
runs = None
### BEGIN SOLUTION
runs = {}
for name, (rate, decay) in SETTINGS.items():
    runs[name] = run_experiment(profile, train_limit=TRAIN_MESSAGES, drop_rate=rate, weight_decay=decay,
                                name=name)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a02_runs_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a02")
checks.regularisation_runs(runs)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a02_given_09", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Reading the curves
#
# Each panel shows one run: the loss on a few training and validation batches, measured every
# `eval_freq` optimizer steps, and below it the accuracy after each epoch.

# %% nbgrader={"grade": false, "grade_id": "a02_given_10", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
plot_runs(runs, "loss") if runs else None

# %% nbgrader={"grade": false, "grade_id": "a02_given_11", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
plot_runs(runs, "accuracy") if runs else None

# %% nbgrader={"grade": false, "grade_id": "a02_given_12", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
compare_runs(runs).round(3) if runs else None

# %% [markdown] nbgrader={"grade": false, "grade_id": "a02_given_13", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 5: the gap and the best step
#
# 1. Write `train_val_gaps(run)`: the run's final training accuracy minus its final
#    validation accuracy, and its final validation loss minus its final training loss, as a
#    pair `(accuracy_gap, loss_gap)`. The final numbers are in `run.accuracy` and `run.loss`
#    (measured on the whole splits, as fractions).
# 2. Write `best_step(val_losses, eval_freq)`: the optimizer step at which a validation loss
#    curve (`run.val_losses`) was lowest. Evaluations happen every `eval_freq` steps, the
#    first one at step 0.

# %% nbgrader={"grade": false, "grade_id": "a02_gaps", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_val_gaps(run):
    ### BEGIN SOLUTION
    return (run.accuracy["train"] - run.accuracy["validation"], run.loss["validation"] - run.loss["train"])
    ### END SOLUTION


def best_step(val_losses, eval_freq):
    ### BEGIN SOLUTION
    return eval_freq * min(range(len(val_losses)), key=val_losses.__getitem__)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a02_gaps_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a02")
checks.train_val_gaps(train_val_gaps)

# %% nbgrader={"grade": true, "grade_id": "a02_best_step_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a02")
checks.best_step(best_step)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a02_given_14", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# Your functions on your runs:

# %% nbgrader={"grade": false, "grade_id": "a02_given_15", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
pd.DataFrame({name: {"accuracy gap": train_val_gaps(run)[0], "loss gap": train_val_gaps(run)[1],
                     "best step": best_step(run.val_losses, run.config["eval_freq"])}
              for name, run in (runs or {}).items()}).T

# %% [markdown] nbgrader={"grade": false, "grade_id": "a02_given_16", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# **Question.** Answer from *your* curves and numbers (with the book's or the offline
# profile; the smoke profile's numbers mean nothing):
#
# 1. Where do the curves show overfitting: which curve keeps improving, which one stops or
#    turns, and from about which step? What would early stopping have done?
# 2. Why is the training accuracy higher than the validation accuracy at all, and what did
#    dropout change about the gap and about the training curve?
# 3. Use `decay_shrink` to explain why the book's weight decay of 0.1 changes almost nothing
#    here, and what a weight decay strong enough to matter does to *pretrained* weights.

# %% [markdown] nbgrader={"grade": true, "grade_id": "a02_answer", "locked": false, "points": 6, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# 1. With 200 messages and 10 epochs the training loss falls to almost zero within the
#    first epochs (0.005 at the end of the offline run) while the validation loss falls
#    much less and then flattens and jumps around; the best step is where it was lowest.
#    In the offline profile's run that was step 190 of 250 (validation loss measured on 5
#    batches, so it is noisy): the curve had mostly flattened, not clearly turned up, yet
#    the final gap is large (training accuracy 100%, validation 89.3%; loss 0.005 against
#    0.243). From the point where the validation curve flattens the model learns the
#    training messages themselves rather than what makes a message spam. Early stopping
#    would keep the weights of the best step (or stop a little after it).
# 2. The model is chosen to make the training loss small on exactly these messages, so it
#    fits their quirks (particular words, lengths, phone numbers) that do not carry over to
#    new messages; the validation set measures only what generalises. The gap grows with
#    fewer training messages and more epochs. Dropout makes each training step see a noisy,
#    thinned network, so the training curve is noisier and falls more slowly, and memorising
#    is harder; the gap is usually smaller, at the price of slower training.
# 3. AdamW multiplies each weight by (1 - lr * weight_decay) per step: with lr 5e-5 and 0.1
#    that is 0.999995, and after 250 steps 99.9% of each weight is left (99.7% after the
#    book's 650), so the decay is practically switched off. A decay of 10 keeps only about
#    88% after 250 steps (the check measured the trained weights of that run at 88.5% of the
#    book setting's, offline). Weight decay pulls towards zero, not towards the pretrained
#    values, so at that strength it erases part of what pretraining learnt in the trainable
#    block rather than just preventing memorisation.
# ### END SOLUTION
