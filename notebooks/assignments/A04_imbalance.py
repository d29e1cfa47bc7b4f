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

# %% [markdown] nbgrader={"grade": false, "grade_id": "a04_given_01", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# # Assignment 4: imbalanced classes, and what accuracy hides
#
# **Goals.**
#
# * Skip the book's balancing step (`create_balanced_dataset`) and train on messages as they
#   come: mostly "not spam".
# * See how good a "classifier" that always answers "not spam" looks when judged by
#   accuracy.
# * Compute precision, recall and F1 yourself from predictions, and compare a model trained
#   on unbalanced data with one trained on balanced data, on the same realistic test set.
#
# **Before you start.** Notebook 2 (the data and its balancing) and notebook 5 (evaluation,
# precision and recall) of the chapter.
#
# **How to work.** Cells with `# YOUR CODE HERE` are yours: replace the
# `raise NotImplementedError()` line. The check cell after each one tests your code on
# inputs it makes itself, and prints `OK: ...` or a short message saying what is wrong.
# Answers in words go into the `YOUR ANSWER HERE` cells.
#
# **Time.** With the real model, about 5 minutes of computing on a recent laptop CPU,
# two to four times that on an older one (an estimate; see the teacher's guide). With
# `PROFILE = "smoke"` it runs in under a minute; the numbers then come from a tiny random
# model, the steps are the same. `PROFILE = "offline"` (the real data, gpt2-small-shaped
# random weights, nothing to download) costs what the real model costs and gives real
# numbers of an unpretrained model.

# %% tags=["parameters"]
# Your choice for your own work: None reads $GPTLIB_PROFILE (unset: "book", pretrained
# gpt2-small and the real data); "offline" is the real data with gpt2-small-shaped random
# weights (no download; real numbers of an unpretrained model); "smoke" is a tiny random
# model on a small made-up data file (seconds; the numbers mean nothing).
# Grading uses the profile your teacher chooses, whatever this cell says.
PROFILE = None

# %% nbgrader={"grade": false, "grade_id": "a04_given_02", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import pandas as pd

from gptlib.assignments.a04 import MAX_LENGTH, TRAIN_LIMIT, unbalanced_splits
from gptlib.assignments.profiles import setup
from gptlib.assignments.runner import collect_predictions, run_experiment
from gptlib.data import create_balanced_dataset

profile = setup("A04", PROFILE)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a04_given_03", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## The data as it comes
#
# The messages are read, mapped and split 70/10/20 without balancing them first
# (`prepare_spam_splits(..., balanced=False)`). The unbalanced training split has about
# 3,900 messages; the first `TRAIN_LIMIT` (1,045, the size of the book's balanced training
# set) keep the training time the book's. The validation and test sets keep the real
# proportions, which is what a spam filter meets in use. Every message is padded or cut to
# `MAX_LENGTH` (120) tokens, the book's length: four training messages are longer and lose
# their end.

# %% nbgrader={"grade": false, "grade_id": "a04_given_04", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
train_all, val_df, test_df = unbalanced_splits(profile)
train_df = train_all.iloc[:TRAIN_LIMIT]
print(f"training split {len(train_all)} messages (using {len(train_df)}), validation {len(val_df)}, "
      f"test {len(test_df)}; padded to {MAX_LENGTH} tokens")

# %% [markdown] nbgrader={"grade": false, "grade_id": "a04_given_05", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 1: how unbalanced, and how good is doing nothing?
#
# 1. `spam_share(labels)`: the fraction of a list of labels that are spam (label 1).
# 2. `majority_accuracy(labels)`: the accuracy on those labels of a "classifier" that
#    answers "not spam" (0) to every message.

# %% nbgrader={"grade": false, "grade_id": "a04_shares", "locked": false, "schema_version": 3, "solution": true, "task": false}
def spam_share(labels):
    ### BEGIN SOLUTION
    return sum(label == 1 for label in labels) / len(labels)
    ### END SOLUTION


def majority_accuracy(labels):
    ### BEGIN SOLUTION
    return sum(label == 0 for label in labels) / len(labels)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a04_shares_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a04")
checks.shares(spam_share, majority_accuracy)

# %% nbgrader={"grade": false, "grade_id": "a04_given_06", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
print(f"spam share of the training messages: {spam_share(train_df['Label'].tolist()):.1%}; "
      f"always 'not spam' on the test set: {majority_accuracy(test_df['Label'].tolist()):.2%}")

# %% [markdown] nbgrader={"grade": false, "grade_id": "a04_given_07", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 2: train on the unbalanced messages
#
# Train the book's classifier on `train_df` as it is, with `val_df` and `test_df` for
# validation and test, every message padded to `MAX_LENGTH`:
# `run_experiment(profile, train=..., validation=..., test=..., max_length=...)`. Store the
# run in `run_unbalanced`.

# %% nbgrader={"grade": false, "grade_id": "a04_unbalanced_run", "locked": false, "schema_version": 3, "solution": true, "task": false}
run_unbalanced = None
### BEGIN SOLUTION
run_unbalanced = run_experiment(profile, train=train_df, validation=val_df, test=test_df,
                                max_length=MAX_LENGTH, name="trained unbalanced")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a04_unbalanced_run_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a04")
checks.unbalanced_run(run_unbalanced)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a04_given_08", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# For comparison, a model trained the book's way: the *training split* is balanced with
# `create_balanced_dataset` (all its spam plus as many randomly chosen "not spam"
# messages), while validation and test stay as they are. Balancing only the training data
# keeps the test set realistic and never puts a test message into training.

# %% nbgrader={"grade": false, "grade_id": "a04_given_09", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
balanced_df = create_balanced_dataset(train_all)
run_balanced = run_experiment(profile, train=balanced_df, validation=val_df, test=test_df,
                              max_length=MAX_LENGTH, name="trained balanced")
print(f"balanced training set: {len(balanced_df)} messages, {balanced_df['Label'].mean():.0%} spam")

# %% [markdown] nbgrader={"grade": false, "grade_id": "a04_given_10", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 3: precision, recall and F1
#
# Write `precision_recall_f1(predictions, labels, positive=1)` for lists of class ids; it
# returns the tuple `(precision, recall, f1)` for the class `positive`:
#
# * precision: of the messages *predicted* positive, the share that are positive;
# * recall: of the messages that *are* positive, the share predicted positive;
# * F1: the harmonic mean of the two, `2 * P * R / (P + R)`.
#
# Where a ratio would divide by zero (nothing predicted positive, or no positive messages),
# use 0.0. Do not call `gptlib.train.classification_metrics`.

# %% nbgrader={"grade": false, "grade_id": "a04_prf", "locked": false, "schema_version": 3, "solution": true, "task": false}
def precision_recall_f1(predictions, labels, positive=1):
    ### BEGIN SOLUTION
    pairs = list(zip(predictions, labels))
    true_pos = sum(p == positive and y == positive for p, y in pairs)
    predicted_pos = sum(p == positive for p, _ in pairs)
    actual_pos = sum(y == positive for _, y in pairs)
    precision = true_pos / predicted_pos if predicted_pos else 0.0
    recall = true_pos / actual_pos if actual_pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a04_prf_check", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a04")
checks.precision_recall_f1(precision_recall_f1)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a04_given_11", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# ## Task 4: both models on the realistic test set
#
# Write `spam_metrics(model, loader)`: a dict with the keys `"accuracy"`, `"precision"`,
# `"recall"` and `"f1"` (spam is the positive class) of `model` on every message of `loader`.
# `collect_predictions(loader, model)` returns `(predictions, labels)` for a whole loader;
# use your `precision_recall_f1`.

# %% nbgrader={"grade": false, "grade_id": "a04_metrics", "locked": false, "schema_version": 3, "solution": true, "task": false}
def spam_metrics(model, loader):
    ### BEGIN SOLUTION
    preds, labels = collect_predictions(loader, model)
    precision, recall, f1 = precision_recall_f1(preds, labels)
    accuracy = sum(p == y for p, y in zip(preds, labels)) / len(labels)
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "a04_metrics_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
import sys
sys.modules.pop("gptlib.assignments.integrity", None)  # the checks, imported afresh
from gptlib.assignments.integrity import checks
checks = checks("a04")
checks.spam_metrics(spam_metrics)

# %% nbgrader={"grade": false, "grade_id": "a04_given_12", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
test_loader = run_balanced.loaders[2]  # the realistic test set; the same for both models
table = {"always 'not spam'": {"accuracy": majority_accuracy(test_df["Label"].tolist()), "precision": 0.0,
                               "recall": 0.0, "f1": 0.0},
         "trained balanced": spam_metrics(run_balanced.model, test_loader)}
if run_unbalanced is not None:
    table["trained unbalanced"] = spam_metrics(run_unbalanced.model, test_loader)
pd.DataFrame(table).T.round(4)

# %% [markdown] nbgrader={"grade": false, "grade_id": "a04_given_13", "locked": true, "schema_version": 3, "solution": false, "task": false} deletable=false editable=false
# **Question.**
#
# 1. Compare the two models' accuracy with `majority_accuracy`. Why is accuracy a poor
#    yardstick on this test set?
# 2. Which model catches more spam (recall), and which one raises fewer false alarms
#    (precision)? Explain the difference from what each model saw during training.
# 3. For a spam filter that moves messages out of a user's inbox, which metric matters most
#    to the user, and would you balance the training data?

# %% [markdown] nbgrader={"grade": true, "grade_id": "a04_answer", "locked": false, "points": 6, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# 1. About 87% of the test messages are not spam, so answering "not spam" always is already
#    87% accurate while catching no spam at all. Both models sit between that and 100%, and
#    the difference that matters (how much spam is caught, how many real messages are
#    flagged) is squeezed into a few points of accuracy. Precision, recall and F1 look at
#    the spam class directly.
# 2. The model trained on unbalanced data saw about seven "not spam" messages for each spam
#    one; answering "not spam" when unsure is cheap for its loss, so it is conservative:
#    typically higher precision and lower recall. The model trained on balanced data saw
#    both classes equally often, so it expects spam far more often than it occurs in the
#    test set: it catches more spam (higher recall) but flags more real messages (lower
#    precision), and its accuracy can even be lower.
# 3. A real message wrongly moved to the spam folder is costly (it may never be read), so
#    precision on spam matters most, with recall as high as it can be at that precision.
#    Balancing by throwing away "not spam" messages wastes data and shifts the model towards
#    false alarms; better to train on the data as it is (or weight the classes mildly) and
#    pick the decision threshold on the validation set for the precision needed.
# ### END SOLUTION
