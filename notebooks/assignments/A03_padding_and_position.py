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

# %% [markdown] nbgrader={"grade": false, "grade_id": "a03_given_01", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# # Assignment 3: padding, the position that is read, and the loss
#
# **Goals.**
#
# * See how often the book's classifier reads a pad token instead of the message.
# * Find each message's last *real* token yourself, and train a classifier that reads it.
# * Pad each batch only to its own longest message, and show why that changes nothing for a
#   classifier that reads the last real token.
# * Write the loss yourself: cross-entropy as log-softmax plus the negative log-likelihood;
#   see what goes wrong when `nll_loss` gets probabilities; and show that one logit with
#   `BCEWithLogitsLoss` gives the same loss as the book's two outputs.
#
# **Before you start.** Notebooks 2 (padding) and 4 (which token is read, the causal mask,
# the loss) of the chapter.
#
# **How to work.** Cells with `# YOUR CODE HERE` are yours: replace the
# `raise NotImplementedError()` line. The check cell after each one tests your code on
# inputs it makes itself, and prints `OK: ...` or a short message saying what is wrong.
# Answers in words go into the `YOUR ANSWER HERE` cells.
#
# **Time.** With the real model, about 3 minutes of computing on a recent laptop CPU, two to
# four times that on an older one (an estimate; see the teacher's guide). With
# `PROFILE = "smoke"` it runs in under a minute; the numbers then come from a tiny random
# model and mean nothing, the steps are the same. `PROFILE = "offline"` (the real data,
# gpt2-small-shaped random weights, nothing to download) costs what the real model costs and
# gives real numbers of an unpretrained model (see Question 1).

# %% tags=["parameters"]
# Your choice for your own work: None reads $GPTLIB_PROFILE (unset: "book", pretrained
# gpt2-small and the real data); "offline" is the real data with gpt2-small-shaped random
# weights (no download; real numbers of an unpretrained model); "smoke" is a tiny random
# model on a small made-up data file (seconds; the numbers mean nothing).
# Grading uses the profile your teacher chooses, whatever this cell says.
PROFILE = None

# %% nbgrader={"grade": false, "grade_id": "a03_given_02", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import torch
import torch.nn.functional as F  # noqa: F401  (your answers may need it)

from gptlib.assignments.profiles import setup
from gptlib.assignments.runner import compare_runs, run_experiment

PAD_ID = 50256  # <|endoftext|>, the book's pad token
profile = setup("A03", PROFILE)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a03_given_03", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## The baseline: the book's padding, the last position
#
# Every message is padded on the right to the longest training message, and the classifier
# reads position -1. `baseline.loaders[0].dataset` is the training set as the run saw it.

# %% nbgrader={"grade": false, "grade_id": "a03_given_04", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
baseline = run_experiment(profile, name="book: last position")
train_ds = baseline.loaders[0].dataset

# %% [markdown] nbgrader={"grade": false, "grade_id": "a03_given_05", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 1: how often is position -1 a pad token?
#
# Write `pad_share(dataset, pad_token_id)`: the fraction (between 0 and 1) of the messages in
# `dataset` whose token at the last position is the pad token. (`dataset[i]` is a pair
# `(token ids, label)`.)

# %% nbgrader={"grade": false, "grade_id": "a03_pad_share", "locked": false, "schema_version": 3, "solution": true, "task": false}
def pad_share(dataset, pad_token_id=PAD_ID):
    ### BEGIN SOLUTION
    ends_in_pad = [int(dataset[i][0][-1]) == pad_token_id for i in range(len(dataset))]
    return sum(ends_in_pad) / len(ends_in_pad)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a03_pad_share_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a03")
checks.pad_share(pad_share)

# %% nbgrader={"grade": false, "grade_id": "a03_given_06", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
print(f"{pad_share(train_ds):.1%} of the training messages end in a pad token")

# %% [markdown] nbgrader={"grade": false, "grade_id": "a03_given_07", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 2: the last real token
#
# Write `last_real_positions(input_ids, pad_token_id)`: for a batch of token ids of shape
# `(batch, tokens)`, padded on the right with `pad_token_id`, return a tensor with one
# position per row: the index of the row's last token that is **not** a pad token. The pad id
# never occurs inside a message. Try to do it without a Python loop over the rows, and
# without the library's own version.

# %% nbgrader={"grade": false, "grade_id": "a03_last_real", "locked": false, "schema_version": 3, "solution": true, "task": false}
def last_real_positions(input_ids, pad_token_id=PAD_ID):
    ### BEGIN SOLUTION
    lengths = (input_ids != pad_token_id).sum(dim=1)
    return (lengths - 1).clamp(min=0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a03_last_real_check", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a03")
checks.last_real_positions(last_real_positions)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a03_given_08", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# Your function is what `token="last_real"` does inside the library. Here it is on the
# first training batch:

# %% nbgrader={"grade": false, "grade_id": "a03_given_09", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
first_batch, _ = next(iter(baseline.loaders[0]))
print("batch shape:", tuple(first_batch.shape))
print("last real positions:", last_real_positions(first_batch).tolist())

# %% [markdown] nbgrader={"grade": false, "grade_id": "a03_given_10", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 3: two runs that read the last real token
#
# 1. `run_last_real`: the baseline's classifier and padding, reading the last real token
#    (the `token` setting).
# 2. `run_batch`: the same, but with each batch padded only to its own longest message (the
#    `padding` setting). Padding every message to the longest training message wastes
#    computation on pad tokens; per-batch padding does not.

# %% nbgrader={"grade": false, "grade_id": "a03_runs", "locked": false, "schema_version": 3, "solution": true, "task": false}
run_last_real, run_batch = None, None
### BEGIN SOLUTION
run_last_real = run_experiment(profile, token="last_real", name="last real token")
run_batch = run_experiment(profile, token="last_real", padding="batch", name="last real token, per-batch padding")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a03_runs_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a03")
checks.position_runs(run_last_real, run_batch, baseline)

# %% nbgrader={"grade": false, "grade_id": "a03_given_11", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
compare_runs({run.name: run for run in (baseline, run_last_real, run_batch) if run is not None}).round(3)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a03_given_12", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# **Question 1.**
#
# 1. With pretrained weights the book gains 3.33 points of test accuracy by reading the last
#    real token (bonus table: 95.00% to 98.33%). Did your run gain, and how does that
#    relate to your `pad_share`? Why might random weights behave differently?
# 2. Why do `run_last_real` and `run_batch` give the same results (up to rounding), although
#    their batches have different widths? Name the two properties of the model and of the
#    padding that make this exact.
# 3. Would the book's classifier (reading position -1) also give the same results with
#    per-batch padding? Why not?

# %% [markdown] nbgrader={"grade": true, "grade_id": "a03_answer", "locked": false, "points": 6, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# 1. For almost every message (all but the longest) position -1 holds a pad token, so the
#    book's classifier reads a position whose input is `<|endoftext|>` and which sees the
#    message only through attention over many pads; the trainable last block has to learn
#    to dig the message out of there. The last real token is where the model has just read
#    the whole message, the position pretraining taught it to summarise the text so far,
#    so its features are directly useful. `pad_share` is 99.9% on the book's data: the
#    book's classifier nearly always reads a pad. With random weights there is no such
#    summary to use: both positions are equally arbitrary to the frozen blocks, and the gain
#    can vanish or turn round. In the offline profile the last real token scored 91.33%
#    test against the baseline's 94.00% (8 messages of 300, inside the noise of one run).
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

# %% [markdown] nbgrader={"grade": false, "grade_id": "a03_given_13", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 4: the loss by hand
#
# The classifier's loss is the cross-entropy of the read token's logits (shape
# `(batch, classes)`) and the labels. Cross-entropy is two steps: `log_softmax` turns logits
# into log-probabilities, and the negative log-likelihood (NLL) takes minus the
# log-probability of each row's target class, averaged over the rows.
#
# 1. `cross_entropy_by_hand(logits, targets)`: exactly that, with torch operations
#    (`torch.log_softmax`, then pick each row's target entry: `gather` or indexing), without
#    `F.cross_entropy`, `F.nll_loss` or the loss classes. Return a tensor, so that it can be
#    backpropagated.
# 2. `nll_of_softmax(logits, targets)`: a classic mistake, made on purpose so that you can
#    see what it does. PyTorch's negative log-likelihood function (in
#    `torch.nn.functional`) expects log-probabilities, like your second step in item 1. Give
#    it what people often give it by mistake: the probabilities themselves, as softmax turns
#    the logits into them, without the log.
# 3. `one_logit_loss(logits, targets)`: a classifier could have *one* output instead of two,
#    read through a sigmoid as the probability of spam. Combine each row's two logits into
#    the one logit whose sigmoid equals the spam probability that softmax gives the two
#    (work out which combination from the softmax formula), and return the loss of
#    `torch.nn.BCEWithLogitsLoss` on it, with the labels as floats.

# %% nbgrader={"grade": false, "grade_id": "a03_losses", "locked": false, "schema_version": 3, "solution": true, "task": false}
def cross_entropy_by_hand(logits, targets):
    ### BEGIN SOLUTION
    log_probs = torch.log_softmax(logits, dim=-1)
    return -log_probs.gather(1, targets.unsqueeze(1)).mean()
    ### END SOLUTION


def nll_of_softmax(logits, targets):
    ### BEGIN SOLUTION
    return F.nll_loss(torch.softmax(logits, dim=-1), targets)
    ### END SOLUTION


def one_logit_loss(logits, targets):
    ### BEGIN SOLUTION
    z = logits[:, 1] - logits[:, 0]
    return torch.nn.BCEWithLogitsLoss()(z, targets.float())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a03_cross_entropy_check", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a03")
checks.cross_entropy_by_hand(cross_entropy_by_hand)

# %% nbgrader={"grade": true, "grade_id": "a03_nll_softmax_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a03")
checks.nll_of_softmax(nll_of_softmax)

# %% nbgrader={"grade": true, "grade_id": "a03_one_logit_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a03")
checks.one_logit_loss(one_logit_loss)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a03_given_14", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# **Question 2.** Why is `F.nll_loss` on softmax output wrong, and why does it still seem to
# "work" (it decreases when the model gets better)? One logit with a sigmoid gives exactly
# the same loss as two logits with softmax: why, and why does the book keep two outputs
# anyway? (See Sebastian Raschka's "Losses Learned", https://sebastianraschka.com/blog/2022/losses-learned-part1.html.)

# %% [markdown] nbgrader={"grade": true, "grade_id": "a03_loss_answer", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# `nll_loss` expects log-probabilities: it only picks minus the entry of the target class.
# Given probabilities it returns -p (between -1 and 0) instead of -log p, so a confident
# wrong answer costs at most 1 instead of growing without bound, and the gradients are far
# too small where the model is badly wrong; it moves in the right direction, which is why
# it seems to work, but it is not cross-entropy. With two classes,
# softmax(z)_spam = e^z1 / (e^z0 + e^z1) = 1 / (1 + e^-(z1 - z0)) = sigmoid(z1 - z0), so
# BCE on the single logit z1 - z0 is the same loss. The book keeps two outputs because the
# same code then works for any number of classes (assignment 5 has three) and the
# prediction is always an argmax.
# ### END SOLUTION
