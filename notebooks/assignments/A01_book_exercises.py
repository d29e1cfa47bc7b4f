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

# %% [markdown] nbgrader={"grade": false, "grade_id": "a01_given_01", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# # Assignment 1: the new head, and the book's three exercises
#
# **Goals.**
#
# * Write the book's head swap and freezing yourself, and say what such a classifier cannot
#   do that an instruction-tuned model can.
# * Reproduce the three exercises at the end of Chapter 6 and explain each result:
#   **6.1** pad every message to the model's full context length; **6.2** fine-tune the
#   whole model instead of the last block; **6.3** read the output at the *first* token.
# * Compare what trains: the head only, the last block with the final norm (the book's),
#   and the last block with the final norm frozen.
#
# **Before you start.** Notebooks 1 to 5 of the chapter.
#
# **How to work.** Cells that contain `# YOUR CODE HERE` are yours: replace the
# `raise NotImplementedError()` line with your code. The cell after each one is a *check*:
# it tests what your code does on models and data it makes itself, and prints a line
# starting with `OK` or a short message saying what is wrong. The checks and the other given
# cells are locked. Answers in words go into the cells that say `YOUR ANSWER HERE`.
#
# **Time.** With the real model, about 25 minutes of computing on a recent laptop CPU, 12 of
# them for exercise 6.2 and about 4 for exercise 6.1, and two to four times that on an older
# one (an estimate; see the teacher's guide). With `PROFILE = "offline"` (the real data,
# gpt2-small-shaped *random* weights: nothing to download) the runs cost the same and the
# numbers are real ones, of a model that was never pretrained. With `PROFILE = "smoke"` (a
# tiny random model, made-up data) the notebook runs in under a minute and the numbers mean
# nothing, but every step and check is the same.

# %% tags=["parameters"]
# Your choice for your own work: None reads $GPTLIB_PROFILE (unset: "book", pretrained
# gpt2-small and the real data); "offline" is the real data with gpt2-small-shaped random
# weights (no download; real numbers of an unpretrained model); "smoke" is a tiny random
# model on a small made-up data file (seconds; the numbers mean nothing).
# Grading uses the profile your teacher chooses, whatever this cell says.
PROFILE = None

# %% nbgrader={"grade": false, "grade_id": "a01_given_02", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import copy  # noqa: F401  (your answers may need these)

import torch  # noqa: F401

from gptlib.assignments.profiles import setup
from gptlib.assignments.runner import compare_runs, run_experiment
from gptlib.classifier import trainable_summary
from gptlib.notebook import load_base_model, show_source

profile = setup("A01", PROFILE)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a01_given_03", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## The baseline: the book's run
#
# Every run goes through `run_experiment(profile, **settings)`: it makes the chapter's
# `FinetuneConfig` from the profile and your settings and calls `run_finetune`, the function
# behind `python -m gptlib finetune` (the book's data, head, loop and AdamW), then measures
# accuracy and loss on the whole of each split. Settings are `FinetuneConfig`'s fields, e.g.
# `max_length=...`, `trainable=...`, `token=...`. `base_model` is the profile's GPT-2 with
# its language-model head.

# %% nbgrader={"grade": false, "grade_id": "a01_given_04", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
show_source(run_experiment)

# %% nbgrader={"grade": false, "grade_id": "a01_given_05", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
base_model = load_base_model(profile)
baseline = run_experiment(profile, name="baseline")

# %% [markdown] nbgrader={"grade": false, "grade_id": "a01_given_06", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 1: the head swap and the freezing, by hand
#
# Write `make_classifier(model, num_classes=2)`, the book's recipe, without the library's
# `add_classification_head`:
#
# 1. work on a copy (`copy.deepcopy(model)`): `model` itself must not change;
# 2. freeze every parameter of the copy (`requires_grad = False`);
# 3. replace its `out_head` by a `torch.nn.Linear` from the embedding width (read it from the
#    model) to `num_classes` outputs;
# 4. make the last transformer block (`trf_blocks[-1]`) and the final norm (`final_norm`)
#    trainable again.
#
# The check builds gpt2-small on PyTorch's `meta` device (shapes without weights) and a small
# model of another shape, and looks at what trains and where gradients go.

# %% nbgrader={"grade": false, "grade_id": "a01_classifier", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_classifier(model, num_classes=2):
    ### BEGIN SOLUTION
    classifier = copy.deepcopy(model)
    for param in classifier.parameters():
        param.requires_grad = False
    torch.manual_seed(123)  # the book's seed for the new head
    classifier.out_head = torch.nn.Linear(classifier.tok_emb.weight.shape[1], num_classes)
    for param in classifier.trf_blocks[-1].parameters():
        param.requires_grad = True
    for param in classifier.final_norm.parameters():
        param.requires_grad = True
    return classifier
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a01_classifier_check", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a01")
checks.make_classifier(make_classifier)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a01_given_07", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# Your classifier on the profile's model:

# %% nbgrader={"grade": false, "grade_id": "a01_given_08", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
print(trainable_summary(make_classifier(base_model)))

# %% [markdown] nbgrader={"grade": false, "grade_id": "a01_given_09", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# **Question 1.** Your classifier answers every input with one of two classes. Give one
# request that an instruction-tuned model (the book's chapter 7) can answer and this
# classifier cannot, and say what the classifier does when it receives it. Then name one
# advantage the classifier has over the instruction-tuned model for spam filtering.

# %% [markdown] nbgrader={"grade": true, "grade_id": "a01_instruction_answer", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# "Why is this message spam?" or "Write a polite reply to this message": an
# instruction-tuned model answers with any text, because it keeps the language-model head
# that scores all 50,257 tokens. The classifier's head has two outputs, so it can only say
# "spam" or "not spam"; given the question it still picks one of the two, often with high
# confidence, because it has no way to say "this is not a spam-filtering input". In return
# it needs far less data (about a thousand labelled messages instead of many instruction
# examples), trains only 7 million parameters, gives one fast, easily measured decision per
# message (accuracy, precision, recall), and never produces free text that could be wrong
# in other ways.
# ### END SOLUTION

# %% [markdown] nbgrader={"grade": false, "grade_id": "a01_given_10", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Exercise 6.1: pad to the context length
#
# The book pads each message only up to the longest training message (120 tokens). What
# happens if every message is padded to the longest input the model can take, its context
# length (1,024 tokens for GPT-2)?
#
# 1. Write `context_length_of(model)`: the model's context length, read from the model (not
#    from memory; `model.pos_emb` has one row per position).
# 2. Train the baseline's classifier with every message padded to that length, on the first
#    `EXERCISE_61_MESSAGES` (200) training messages
#    (`run_experiment(profile, max_length=..., train_limit=...)`), and store the result in
#    `run_61`. Compare it with `baseline_200` below: the book's padding on the same 200
#    messages. Every message is now 1,024 tokens long instead of at most 120, so even on 200
#    messages this run takes a few minutes with the real model. The book trains on all 1,045
#    messages; that takes about 23 minutes on a laptop CPU (and as long again to grade). If
#    you have the time, run it too (`train_limit=None`; it is not graded) and compare it with
#    the book's 78.33%.

# %% nbgrader={"grade": false, "grade_id": "a01_context", "locked": false, "schema_version": 3, "solution": true, "task": false}
def context_length_of(model):
    ### BEGIN SOLUTION
    return model.pos_emb.weight.shape[0]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a01_context_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a01")
checks.context_length(context_length_of)

# %% nbgrader={"grade": false, "grade_id": "a01_given_61", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
from gptlib.assignments.a01 import EXERCISE_61_MESSAGES  # 200

baseline_200 = run_experiment(profile, train_limit=EXERCISE_61_MESSAGES, name="baseline, 200 messages")

# %% nbgrader={"grade": false, "grade_id": "a01_61_run", "locked": false, "schema_version": 3, "solution": true, "task": false}
run_61 = None
### BEGIN SOLUTION
run_61 = run_experiment(profile, max_length=context_length_of(base_model), train_limit=EXERCISE_61_MESSAGES,
                        name="6.1 pad to context, 200 messages")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a01_61_run_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a01")
checks.run_61(run_61, baseline_200)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a01_given_11", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# **Question 6.1.** In the book's bonus table the accuracy drops from 95.00% to 78.33% when
# padding to 1,024 (trained on all 1,045 messages). Compare your `run_61` with `baseline_200`.
# (a) Which token does the classifier read, what is at that position for a typical message
# now, and how far is it from the message's last real token (the check printed both)?
# (b) Why does that make learning harder even though attention can in principle look back
# at every position?

# %% [markdown] nbgrader={"grade": true, "grade_id": "a01_61_answer", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# (a) The classifier reads position -1. With padding to 1,024 that is a pad token for every
# message, typically about 1,000 positions after the message's last real token (messages
# average about 30 tokens). `run_61` is typically a few points below `baseline_200` on the
# same 200 messages (within noise on 300 test messages when the gap is small), as the book's
# run is below its baseline. (b) The representation at that position is built mostly from
# hundreds of identical `<|endoftext|>` tokens, so the message's words are a small,
# diluted share of what attention mixes in; every message's read position looks alike, and
# only the last block (plus the head) may adapt to dig the signal out. The pretrained model
# never saw such long runs of end-of-text tokens, so its features there are not useful
# either. Shorter padding keeps the read position close to the message.
# ### END SOLUTION

# %% [markdown] nbgrader={"grade": false, "grade_id": "a01_given_12", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Exercise 6.2: fine-tune the whole model
#
# The book trains only the last transformer block, the final norm and the new head (about
# 7 million of 124 million parameters). Train all of them instead: find the setting of
# `FinetuneConfig` that makes every parameter trainable, and store the run in `run_62`.

# %% nbgrader={"grade": false, "grade_id": "a01_62_run", "locked": false, "schema_version": 3, "solution": true, "task": false}
run_62 = None
### BEGIN SOLUTION
run_62 = run_experiment(profile, trainable="all", name="6.2 all layers")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a01_62_run_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a01")
checks.run_62(run_62, baseline)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a01_given_13", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# **Question 6.2.** The bonus table gains 1.67 points of test accuracy (95.00% to 96.67%) by
# training all layers. Compare the training time and the training loss of your two runs.
# Why is the book's choice of training only the top of the model a reasonable default?

# %% [markdown] nbgrader={"grade": true, "grade_id": "a01_62_answer", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
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

# %% [markdown] nbgrader={"grade": false, "grade_id": "a01_given_14", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Exercise 6.3: read the first token
#
# Train the baseline's classifier, but compute the loss and the predictions from the output
# at the **first** token instead of the last (the choices are explained in notebook 4; look
# for the setting). Store the result in `run_63`.

# %% nbgrader={"grade": false, "grade_id": "a01_63_run", "locked": false, "schema_version": 3, "solution": true, "task": false}
run_63 = None
### BEGIN SOLUTION
run_63 = run_experiment(profile, token="first", name="6.3 first token")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a01_63_run_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a01")
checks.run_63(run_63, baseline)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a01_given_15", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# **Question 6.3.** The check printed how many different first tokens the test messages
# have. Use the causal attention mask to explain why a classifier that reads the first
# token can give at most that many different answers, and why the accuracy falls to about
# 75%.

# %% [markdown] nbgrader={"grade": true, "grade_id": "a01_63_answer", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# The causal mask lets each position attend only to itself and earlier positions. The first
# position therefore sees nothing but the first token: its output is a function of that one
# token, so two messages that start with the same token ("I", "Hey", "URGENT") always get the
# same answer. The classifier can only learn which first tokens are typical of spam; that
# works for messages that open with "FREE" or "Congratulations" and fails for everything
# that starts with an ordinary word, hence about 75% instead of 95%. The last position is the
# only one that has seen the whole message, which is why the book reads it.
# ### END SOLUTION

# %% [markdown] nbgrader={"grade": false, "grade_id": "a01_given_16", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## What trains: the head, the last block, the final norm
#
# The book trains the new head, the last block *and* the final norm. Two runs take parts
# away:
#
# 1. `run_head`: only the new head trains (a `trainable` choice).
# 2. `run_no_norm`: the book's choice, but with the final norm frozen. Write
#    `freeze_final_norm(model)`, which sets `requires_grad = False` on every parameter of
#    `model.final_norm` and returns the model, and pass it to
#    `run_experiment(profile, adjust=freeze_final_norm)`: `run_experiment` hands it the
#    classifier before training.

# %% nbgrader={"grade": false, "grade_id": "a01_freeze_norm", "locked": false, "schema_version": 3, "solution": true, "task": false}
def freeze_final_norm(model):
    ### BEGIN SOLUTION
    for param in model.final_norm.parameters():
        param.requires_grad = False
    return model
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a01_freeze_norm_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a01")
checks.freeze_final_norm(freeze_final_norm)

# %% nbgrader={"grade": false, "grade_id": "a01_trains_runs", "locked": false, "schema_version": 3, "solution": true, "task": false}
run_head, run_no_norm = None, None
### BEGIN SOLUTION
run_head = run_experiment(profile, trainable="head", name="head only")
run_no_norm = run_experiment(profile, adjust=freeze_final_norm, name="last block, norm frozen")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a01_trains_runs_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a01")
checks.what_trains(run_head, run_no_norm, baseline)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a01_given_17", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# **Question 4.** The book reports 72.00% test accuracy for the head alone and 95.00% with
# the last block (bonus table). Why do the top layers need to change at all, when the lower
# layers already compute useful features? The final norm sits between the last block and the
# head: what does it do to the features the head sees, and why might training it (1,536
# parameters) matter although it is tiny? Use your three runs.

# %% [markdown] nbgrader={"grade": true, "grade_id": "a01_trains_answer", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Pretraining made the top layers predict the next token; their output at the last position
# is tuned to that job, not to separating spam from ham, and a single linear head on frozen
# next-token features can only draw one straight line through them (72%). Training the last
# block lets the network re-read the whole message for the new task, which is where most of
# the gain comes from. The final norm rescales and shifts every feature (a learnt scale and
# shift per dimension after normalising) right before the head: training it re-weights which
# features the head sees and how large they are, cheaply, and keeps the last block's changed
# output in the range the head expects. With it frozen the head sees features scaled for the
# language-model head; the runs show how much (or how little) that costs here.
# ### END SOLUTION

# %% [markdown] nbgrader={"grade": false, "grade_id": "a01_given_18", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## All runs side by side
#
# The last column is the book's test accuracy for the same setting (its bonus table, whose
# baseline is 95.00%). The book's 6.1 (78.33%) trained on all 1,045 messages, so it has no
# counterpart here; compare `run_61` with `baseline, 200 messages`. With the offline profile
# (random weights) expect a few points less than the book where pretraining matters; with the
# smoke profile the accuracies are meaningless, and the training losses still show the
# directions the checks test.

# %% nbgrader={"grade": false, "grade_id": "a01_given_19", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
BOOK_TEST_ACCURACY = {"baseline": 95.00, "6.2 all layers": 96.67, "6.3 first token": 75.00, "head only": 72.00}
compare_runs({run.name: run for run in (baseline, baseline_200, run_61, run_62, run_63, run_head, run_no_norm)
              if run is not None}, reference=BOOK_TEST_ACCURACY).round(3)
