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

# %% [markdown] nbgrader={"grade": false, "grade_id": "a05_given_01", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# # Assignment 5: your own data, more than two classes
#
# **Goals.** Use everything from the chapter on a new problem: sorting customer-support
# messages into three categories, `billing`, `tech` and `other`. You will
#
# * read a CSV whose columns are not the ones the library expects, and map category names
#   to class ids;
# * fine-tune GPT-2 with a head that has one output per category;
# * read the result through a confusion matrix, and write a function that sorts a new
#   message.
#
# The file `data/support_messages.csv` holds 90 short made-up messages, 30 per category.
#
# **Before you start.** Chapter notebooks 01 to 05 (06 to 09, the lab, LoRA, inside the
# classifier and a modern model, are optional here); assignment 4 for the metrics.
#
# **How to work.** Cells with `# YOUR CODE HERE` are yours: replace the
# `raise NotImplementedError()` line. The check cell after each one tests your code on
# inputs it makes itself, and prints `OK: ...` or a short message saying what is wrong.
# Answers in words go into the `YOUR ANSWER HERE` cells.
#
# **Time.** With the real model, about a minute of computing on a recent laptop CPU (an
# estimate; see the teacher's guide): the data set is small. With `PROFILE = "smoke"` the
# tiny random model runs it in seconds, but it learns nothing useful about support messages.

# %% tags=["parameters"]
# Your choice for your own work: None reads $GPTLIB_PROFILE (unset: "book", pretrained
# gpt2-small); "offline" is gpt2-small-shaped random weights (no download; real numbers of
# an unpretrained model); "smoke" is a tiny random model (seconds; it learns nothing useful).
# All three use the CSV below.
# Grading uses the profile your teacher chooses, whatever this cell says.
PROFILE = None

# %% nbgrader={"grade": false, "grade_id": "a05_given_02", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
from pathlib import Path

import pandas as pd

from gptlib import get_tokenizer
from gptlib.assignments.profiles import setup
from gptlib.assignments.runner import collect_predictions, run_experiment
from gptlib.train import classification_metrics, predict_proba

# The data (relative to this notebook's folder). To use another CSV, change these three and
# the same three in the check cells of Tasks 2 and 4.
DATA_FILE = Path("data") / "support_messages.csv"
TEXT_COLUMN, LABEL_COLUMN = "message", "category"
profile = setup("A05", PROFILE)
tokenizer = get_tokenizer()
raw = pd.read_csv(DATA_FILE)
print(raw.head())
print(raw[LABEL_COLUMN].value_counts())

# %% [markdown] nbgrader={"grade": false, "grade_id": "a05_given_03", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 1: columns and class ids
#
# The library expects the columns `Text` and `Label`, and labels that are class ids 0, 1,
# 2, ...
#
# 1. `frame`: `raw` with its two columns renamed to `Text` and `Label` (the category names
#    stay as they are).
# 2. `make_label_map(categories)`: a dict that gives each category name its own id, 0 to
#    K-1, numbered in the sorted order of the names, so that the ids do not depend on the
#    order of the rows (and match the classifier's class order: `run_finetune` sorts the
#    names the same way).

# %% nbgrader={"grade": false, "grade_id": "a05_label_map", "locked": false, "schema_version": 3, "solution": true, "task": false}
frame = None
### BEGIN SOLUTION
frame = raw.rename(columns={TEXT_COLUMN: "Text", LABEL_COLUMN: "Label"})
### END SOLUTION


def make_label_map(categories):
    ### BEGIN SOLUTION
    return {name: i for i, name in enumerate(sorted(set(categories)))}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a05_label_map_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a05")
checks.make_label_map(make_label_map)

# %% nbgrader={"grade": false, "grade_id": "a05_given_04", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
label_map = make_label_map(raw[LABEL_COLUMN]) if frame is not None else None
print(label_map)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a05_given_05", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 2: a classifier with one output per category
#
# Train the book's classifier on `frame`: `run_experiment(profile, csv=frame)` splits it
# 70/10/20 the book's way (`random_split`, seed 123), pads the training set to its longest
# message and the other two to its length, and gives the head one output per category
# found in the labels (`len(class_names)`). Store the run in `support_run`. Nothing else
# changes for three classes: cross-entropy takes any number of classes, and the prediction
# is the output with the largest value.

# %% nbgrader={"grade": false, "grade_id": "a05_run", "locked": false, "schema_version": 3, "solution": true, "task": false}
support_run = None
### BEGIN SOLUTION
support_run = run_experiment(profile, csv=frame, name="support messages")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a05_run_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a05")
checks.support_run(support_run, "data/support_messages.csv", "message", "category")

# %% [markdown] nbgrader={"grade": false, "grade_id": "a05_given_06", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 3: the confusion matrix
#
# Accuracy says how often the model is right; the confusion matrix says *which* categories
# it mixes up. Write `confusion_matrix(predictions, labels, num_classes)`: a K x K table
# (list of lists) in which row `i`, column `j` counts the messages of class `i` that were
# predicted as class `j`. Do not call the library's `classification_metrics`.

# %% nbgrader={"grade": false, "grade_id": "a05_confusion", "locked": false, "schema_version": 3, "solution": true, "task": false}
def confusion_matrix(predictions, labels, num_classes):
    ### BEGIN SOLUTION
    table = [[0] * num_classes for _ in range(num_classes)]
    for true_id, predicted_id in zip(labels, predictions):
        table[true_id][predicted_id] += 1
    return table
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a05_confusion_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a05")
checks.confusion_matrix(confusion_matrix)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a05_given_07", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# Your matrix for the test set, and beside it the library's per-category precision, recall
# and F1:

# %% nbgrader={"grade": false, "grade_id": "a05_given_08", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
if support_run is not None:
    names = support_run.class_names
    predicted, actual = collect_predictions(support_run.loaders[2], support_run.model)
    print(pd.DataFrame(confusion_matrix(predicted, actual, len(names)), index=[f"true {n}" for n in names],
                       columns=[f"predicted {n}" for n in names]))
    report = classification_metrics(support_run.loaders[2], support_run.model, support_run.model.tok_emb.weight.device,
                                    num_classes=len(names))
    print(pd.DataFrame(report["per_class"], index=names).round(3))

# %% [markdown] nbgrader={"grade": false, "grade_id": "a05_given_09", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 4: sort a new message
#
# Write `classify_ticket(text)`: it returns the *name* of the category that the trained
# model (`support_run.model`) predicts for `text`. Use `predict_proba` from `gptlib.train`
# with the training set's `max_length` (`support_run.loaders[0].dataset.max_length`), so
# that a new message is padded exactly like the training messages, and turn the winning
# class id back into its name with `label_map`.

# %% nbgrader={"grade": false, "grade_id": "a05_classify", "locked": false, "schema_version": 3, "solution": true, "task": false}
def classify_ticket(text):
    ### BEGIN SOLUTION
    id_to_name = {i: name for name, i in label_map.items()}
    probs = predict_proba(text, support_run.model, tokenizer, support_run.model.tok_emb.weight.device,
                          max_length=support_run.loaders[0].dataset.max_length)
    return id_to_name[max(range(len(probs)), key=probs.__getitem__)]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a05_classify_check", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a05")
checks.classify_ticket(classify_ticket, support_run, "data/support_messages.csv", "message", "category")

# %% nbgrader={"grade": false, "grade_id": "a05_given_10", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
if support_run is not None:
    for message in ["Your website logs me out whenever I switch tabs",
                    "Why did you charge my card on the 3rd and again on the 5th?",
                    "Do you sponsor local sports clubs?"]:
        print(f"{classify_ticket(message):>8}  {message}")

# %% [markdown] nbgrader={"grade": false, "grade_id": "a05_given_11", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# **Question.**
#
# 1. Which categories does your model confuse most, and why might those two be hard to
#    tell apart? Point to a message in the data that could belong to both.
# 2. The test set has only 19 messages. How much does one mistake move the accuracy, and
#    what would you change before trusting these numbers?
# 3. You add a fourth category, `account`, with only 10 examples. What changes in the code,
#    and what problem from assignment 4 comes back?

# %% [markdown] nbgrader={"grade": true, "grade_id": "a05_answer", "locked": false, "points": 6, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# 1. It depends on the run; read it from your matrix. In the offline profile's run (19 test
#    messages) `billing` was confused most: two went to `tech` and one to `other`, and two
#    `other` messages were called `billing`. `other` is defined by what it is not and its
#    messages share no vocabulary, so it attracts and loses messages; `billing` and `tech` overlap
#    where a payment problem is also a software problem, e.g. "My payment failed three
#    times, what is wrong with my account?" or "I paid the overdue amount yesterday but my
#    account is still locked".
# 2. One message is 1/19, about 5 points of accuracy, so differences between runs of a few
#    points mean nothing. Collect more labelled messages (hundreds per category), keep the
#    category shares equal across the splits (a stratified split), and repeat the run with
#    a few seeds (or cross-validate) to see how much the numbers vary.
# 3. Only the data changes: the label map gets a fourth entry and the head gets a fourth
#    output from the labels; the rest of the code is unchanged. But 10 examples against 30
#    per other category is an imbalance again: the model sees `account` rarely, will tend
#    to predict it rarely, and accuracy will hide that (as in assignment 4); with a random
#    split the test set may hold only one or two `account` messages, so its recall can
#    hardly be measured. Collect more, or weight the classes.
# ### END SOLUTION
