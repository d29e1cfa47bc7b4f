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
# `raise NotImplementedError()` line. The check cell after each one tests what your code
# computed and prints `OK: ...` or stops with a message saying what is wrong. Answers in
# words go into the `YOUR ANSWER HERE` cells.
#
# **Time.** With the real model, about 5 minutes of computing on a recent laptop CPU,
# two to four times that on an older one (an estimate; see the teacher's guide). With
# `GPTLIB_PROFILE=smoke` it runs in well under a minute; the numbers then come from a tiny
# random model, the steps are the same.

# %% tags=["parameters"]
from gptlib.notebook import load_profile

# None reads $GPTLIB_PROFILE: unset means "book" (pretrained gpt2-small, real data, 5 epochs),
# "smoke" a tiny random model and a small made-up data file.
PROFILE = None
profile = load_profile(PROFILE)
# The unbalanced training split has about 3,900 messages; the first 1,045 (the size of the
# book's balanced training set) keep the training time the book's. None uses all of them.
TRAIN_LIMIT = 1045
MAX_LENGTH = 120  # pad or cut every message to the book's length
if profile.name == "smoke":
    # the tiny model needs a larger learning rate to move at all in a few steps
    profile = profile.replace(epochs=2, lr=1e-3)
print(profile)

# %%
import pandas as pd
import torch  # noqa: F401  (not used by this cell; your answers may need it)

from gptlib import get_tokenizer
from gptlib.assignments import (
    check_majority_accuracy,
    check_precision_recall_f1,
    check_spam_metrics,
    check_spam_share,
    check_unbalanced_run,
    collect_predictions,
    run_experiment,
)
from gptlib.classifier import add_classification_head
from gptlib.data import (
    SpamDataset,
    create_balanced_dataset,
    create_data_loaders,
    prepare_spam_splits,
)
from gptlib.notebook import load_base_model, profile_device, spam_data_file

tokenizer = get_tokenizer()
device = profile_device(profile)
print("device:", device)

# %% [markdown]
# ## The data as it comes
#
# `prepare_spam_splits(..., balanced=False)` reads, maps and splits the messages 70/10/20
# without balancing them first. The validation and test sets keep the real proportions,
# which is what a spam filter meets in use.

# %%
data_file = spam_data_file(profile)
train_csv, val_csv, test_csv = prepare_spam_splits(
    data_file, profile.work_dir / "assignments" / "spam-unbalanced", balanced=False)
train_all = pd.read_csv(train_csv)
train_df = train_all.iloc[:TRAIN_LIMIT]
val_ds = SpamDataset(val_csv, tokenizer, max_length=MAX_LENGTH)
test_ds = SpamDataset(test_csv, tokenizer, max_length=MAX_LENGTH)
base_model = load_base_model(profile)
print(f"training split {len(train_all)} messages (using {len(train_df)}), validation {len(val_ds)}, "
      f"test {len(test_ds)}")

# %% [markdown]
# ## Task 1: how unbalanced, and how good is doing nothing?
#
# 1. `spam_share`: the fraction of the messages in `train_df` labelled spam (label 1).
# 2. `majority_accuracy`: the accuracy on the test set (`test_ds.labels`) of a "classifier"
#    that answers "not spam" (0) to every message.

# %% nbgrader={"grade": false, "grade_id": "a04_shares", "locked": false, "schema_version": 3, "solution": true, "task": false}
spam_share, majority_accuracy = None, None
### BEGIN SOLUTION
spam_share = (train_df["Label"] == 1).mean()
majority_accuracy = sum(label == 0 for label in test_ds.labels) / len(test_ds)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a04_shares_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check_spam_share(spam_share, train_df)
check_majority_accuracy(majority_accuracy, test_ds)

# %% [markdown]
# ## Task 2: train on the unbalanced messages
#
# Make a training dataset from `train_df` (padded to `MAX_LENGTH`), loaders from it and the
# given `val_ds` and `test_ds` (the profile's batch size and seed), and train a fresh
# classifier (the book's head) on them with `run_experiment`. Store the loaders in
# `unbalanced_loaders` and the run in `run_unbalanced`.

# %% nbgrader={"grade": false, "grade_id": "a04_unbalanced_run", "locked": false, "schema_version": 3, "solution": true, "task": false}
unbalanced_loaders, run_unbalanced = None, None
### BEGIN SOLUTION
unbalanced_train = SpamDataset(train_df, tokenizer, max_length=MAX_LENGTH)
unbalanced_loaders = create_data_loaders(unbalanced_train, val_ds, test_ds,
                                         batch_size=profile.batch_size, seed=profile.seed)
run_unbalanced = run_experiment(add_classification_head(base_model), unbalanced_loaders, profile,
                                name="trained unbalanced")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "a04_unbalanced_run_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check_unbalanced_run(run_unbalanced, train_df, test_ds, MAX_LENGTH)

# %% [markdown]
# For comparison, a model trained the book's way: the *training split* is balanced with
# `create_balanced_dataset` (all its spam plus as many randomly chosen "not spam"
# messages), while validation and test stay as they are. Balancing only the training data
# keeps the test set realistic and never puts a test message into training.

# %%
balanced_df = create_balanced_dataset(train_all)
balanced_train = SpamDataset(balanced_df, tokenizer, max_length=MAX_LENGTH)
balanced_loaders = create_data_loaders(balanced_train, val_ds, test_ds,
                                       batch_size=profile.batch_size, seed=profile.seed)
run_balanced = run_experiment(add_classification_head(base_model), balanced_loaders, profile,
                              name="trained balanced")
test_loader = balanced_loaders[2]  # the realistic test set; the same for both models
print(f"balanced training set: {len(balanced_train)} messages, "
      f"{sum(balanced_train.labels) / len(balanced_train):.0%} spam")

# %% [markdown]
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
# use 0.0, as `gptlib.train.classification_metrics` does.

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


# %% nbgrader={"grade": true, "grade_id": "a04_prf_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check_precision_recall_f1(precision_recall_f1)

# %% [markdown]
# ## Task 4: both models on the realistic test set
#
# `collect_predictions(loader, model)` returns `(predictions, labels)` for a whole loader.
# For each of the two runs, compute on the test set (`test_loader`) a dict with the
# keys `"accuracy"`, `"precision"`, `"recall"` and `"f1"` (spam is the positive class), and
# store them in `metrics_unbalanced` and `metrics_balanced`.

# %% nbgrader={"grade": false, "grade_id": "a04_metrics", "locked": false, "schema_version": 3, "solution": true, "task": false}
metrics_unbalanced, metrics_balanced = None, None
### BEGIN SOLUTION
def metrics_of(run):
    preds, labels = collect_predictions(test_loader, run.model)
    precision, recall, f1 = precision_recall_f1(preds, labels)
    accuracy = sum(p == y for p, y in zip(preds, labels)) / len(labels)
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}


metrics_unbalanced = metrics_of(run_unbalanced)
metrics_balanced = metrics_of(run_balanced)
### END SOLUTION
pd.DataFrame({"always 'not spam'": {"accuracy": majority_accuracy, "precision": 0.0, "recall": 0.0, "f1": 0.0},
              "trained unbalanced": metrics_unbalanced, "trained balanced": metrics_balanced}).T.round(4)

# %% nbgrader={"grade": true, "grade_id": "a04_metrics_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check_spam_metrics(metrics_unbalanced, run_unbalanced, test_loader, name="metrics_unbalanced")
check_spam_metrics(metrics_balanced, run_balanced, test_loader, name="metrics_balanced")

# %% [markdown]
# **Question.**
#
# 1. Compare the two models' accuracy with `majority_accuracy`. Why is accuracy a poor
#    yardstick on this test set?
# 2. Which model catches more spam (recall), and which one raises fewer false alarms
#    (precision)? Explain the difference from what each model saw during training.
# 3. For a spam filter that moves messages out of a user's inbox, which metric matters most
#    to the user, and would you balance the training data?

# %% [markdown] nbgrader={"grade": true, "grade_id": "a04_answer", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
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
