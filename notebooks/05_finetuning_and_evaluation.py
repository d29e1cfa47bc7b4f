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
# # 5. Fine-tuning the classifier and evaluating it
#
# **What this notebook covers.** The chapter's whole run: accuracy and loss of the untrained
# classifier, five epochs of fine-tuning with the book's training loop (how many examples it
# has seen, accuracy after each epoch), the loss and accuracy plots, final accuracy on the
# training, validation and test sets, what the run shows about overfitting and the number of
# epochs, classifying new messages, saving the classifier and loading it back, and one short
# comparison of a run with and without dropout.
#
# **Book sections.** Chapter 6, sections 6.6 (loss and accuracy before training), 6.7
# (fine-tuning on supervised data) and 6.8 (using the LLM as a spam classifier).
#
# **Time:** with the real data (the `book` and `offline` profiles) from about 20 minutes on a
# quiet 2-core machine (the training cell about 8 of them) to about 45 on a busy one: the stored
# copy was built on a busy one, where training took 21 minutes and the two dropout runs 15
# together. Every cell that may take over a minute has a small cell above it that prints the
# estimate for your machine, worked out when it runs. The book reports about 5 minutes of training on an M3
# MacBook Air and under half a minute on a data-centre GPU. With `GPTLIB_PROFILE=smoke` (tiny
# random model, 1 epoch, made-up data) it all takes seconds and the accuracies are meaningless;
# the steps are the same.
#
# **Needs:** notebooks 2 to 4 (the data, the new head, the last token) read first; for the book
# profile, a network connection the first time, to download gpt2-small's weights (about 500 MB).
# `GPTLIB_PROFILE=offline` trains the same gpt2-small shape from random weights on the real
# data, with no network at all.

# %% tags=["parameters"]
from gptlib.notebook import load_profile
from gptlib.study.notes import book_note, profile_banner

# None reads $GPTLIB_PROFILE: unset means "book" (pretrained gpt2-small, real data, 5 epochs),
# "offline" the same with gpt2-small-shaped random weights (no network), "smoke" a tiny
# random model, 1 epoch and a small made-up data file (used by the tests). Every profile
# writes only below runs/.
PROFILE = None
profile = load_profile(PROFILE)
print(profile)
profile_banner(profile)

# %%
import os
import time

import pandas as pd
import torch
from IPython.display import display

from gptlib import GPTModel, get_config, get_tokenizer, speed
from gptlib.classifier import (
    add_classification_head,
    load_classifier,
    save_classifier,
    trainable_summary,
)
from gptlib.data import CLASS_NAMES, create_data_loaders, prepare_spam_splits, spam_datasets
from gptlib.finetune import run_finetune
from gptlib.lab.explorers import classify_explorer
from gptlib.notebook import (
    load_base_model,
    profile_device,
    project_root,
    show_source,
    spam_data_file,
)
from gptlib.plots import plot_training
from gptlib.settings import PRESETS
from gptlib.study.cost import estimate_time
from gptlib.study.describe import (
    accuracy_with_interval,
    compare_runs,
    describe_examples,
    describe_run,
)
from gptlib.support.files import sha256_of
from gptlib.support.noise import differ_beyond_noise
from gptlib.train import (
    calc_accuracy_loader,
    calc_loss_loader,
    classification_metrics,
    classify_review,
    predict_proba,
    train_classifier_simple,
)

tokenizer = get_tokenizer()
device = profile_device(profile)
print("device:", device)

# %% [markdown]
# ## Data and model
#
# The data steps of notebook 2 in a few lines: the balanced 70/10/20 split as CSV files,
# three datasets padded to the longest training message, and the loaders (batches of 8).

# %%
data_file = spam_data_file(profile)
train_csv, validation_csv, test_csv = prepare_spam_splits(data_file, profile.work_dir / "data")
train_dataset, val_dataset, test_dataset = spam_datasets(train_csv, validation_csv, test_csv, tokenizer)
train_loader, val_loader, test_loader = create_data_loaders(
    train_dataset, val_dataset, test_dataset, batch_size=profile.batch_size, seed=profile.seed)
split_sizes = {"train": len(train_dataset), "validation": len(val_dataset), "test": len(test_dataset)}
print(f"{len(train_dataset)}/{len(val_dataset)}/{len(test_dataset)} messages, "
      f"max_length {train_dataset.max_length}, "
      f"{len(train_loader)}/{len(val_loader)}/{len(test_loader)} batches")

# %% [markdown]
# The profile's GPT-2 (pretrained gpt2-small in the book profile) and the book's new head:
# last block and final norm trainable (notebook 3). `base_model` itself is never changed;
# each cell that needs a classifier makes its own copy, so cells can be re-run in any order.

# %%
base_model = load_base_model(profile).to(device)
untrained = add_classification_head(base_model)
print(trainable_summary(untrained))

# %% [markdown]
# ## Before fine-tuning
#
# The two measuring functions at book size: loop over the first `num_batches` batches,
# compare the last position's larger logit with the label (or take the cross-entropy), and
# average. The library's versions in `gptlib.train` add the choice of token and are tested
# to give the same numbers.

# %%
show_source(calc_accuracy_loader)
show_source(calc_loss_loader)

# %% [markdown]
# **Predict first.** The new head is random, and the two classes are balanced. What accuracy
# do you expect from this untrained two-class head on the first batches of each split? Run
# the cells below to check. (The first one only prints how long the second takes: it runs the
# whole model on every message it measures, with no training step.)

# %%
n_acc, n_loss = profile.accuracy_batches, profile.loss_batches
estimate_time(profile.config, "evaluate", train=3 * (n_acc + n_loss) * profile.batch_size, validation=0, test=0,
              max_length=train_dataset.max_length)

# %%
before = pd.DataFrame({
    f"accuracy ({n_acc} batches)": {
        name: calc_accuracy_loader(loader, untrained, device, num_batches=n_acc)
        for name, loader in (("train", train_loader), ("validation", val_loader), ("test", test_loader))},
})
with torch.no_grad():
    before[f"loss ({n_loss} batches)"] = [
        calc_loss_loader(loader, untrained, device, num_batches=n_loss)
        for loader in (train_loader, val_loader, test_loader)]
before.round(4)

# %% [markdown]
# With two balanced classes a random head should score near 50%, give or take the noise of a
# few dozen messages. The book measures 46.25% train, 45.00% validation and 48.75% test on the
# first 10 batches, and a loss of 2.453, 2.583 and 2.322 on the first 5. With random weights
# (the offline profile) the accuracy is near 50% too, and the loss comes out lower than the
# book's. The pretrained model's hidden states are larger, so the random head gives larger
# logits, and large random logits are often confidently wrong (notebook 4 showed what that
# costs).

# %% [markdown]
# ## Fine-tuning
#
# The book's loop, `train_classifier_simple`: for every batch, loss (cross-entropy on the
# last token's logits, notebook 4), backward pass, optimizer step. Every `eval_freq` steps it
# records the loss on `eval_iter` batches of training and validation data; after each epoch
# the accuracy on `eval_iter` batches of each. It counts the *examples seen* (messages, not
# tokens) for the plots. The optimizer is AdamW with the book's learning rate 5e-5 and
# weight decay 0.1.
#
# The loop is chapter 5's pretraining loop, changed in three places:
#
# | | chapter 5 (pretraining) | chapter 6 (classification) |
# |---|---|---|
# | counts | tokens seen | examples (messages) seen: one label per message, and pads would inflate a token count |
# | after each epoch | prints a generated text sample | measures accuracy on `eval_iter` batches |
# | loss | cross-entropy over every next token | cross-entropy of the last position's two logits |
#
# Here it is, `gptlib.train.train_classifier_simple`, the loop the cell below runs:

# %%
show_source(train_classifier_simple)

# %% [markdown]
# Its keywords beyond the book's (the read token, `ignore_index`, gradient accumulation, a
# callback for live plots) default to the book's behaviour; the cell below uses one of them,
# a progress bar (`progress=True`). The loop knows nothing of speed-ups. As nanoGPT compiles
# its model once before its loop, the cell wraps the classifier once, before training:
# `speed.wrap(classifier, "exact")` computes the eleven frozen blocks once per message and
# reuses their output in every epoch (the same numbers as the book's loop, several times
# faster; `tests/test_train.py` holds the loop equal to the book's package's own).
#
# The training cell starts from a fresh copy of the untrained classifier each time it runs,
# and sets the seed right before training as the book does, so running it again repeats the
# same run instead of training further.
#
# **Predict first.** The loader cell above printed how many training batches there are, and
# the profile how many epochs and messages per batch. How many examples will the loop report
# as seen at the end? Run the cells below to check. The first one prints how long the second
# takes on this machine.

# %%
estimate_time(profile.config, "exact", **split_sizes, max_length=train_dataset.max_length)

# %%
classifier = add_classification_head(base_model)
torch.manual_seed(profile.seed)
optimizer = torch.optim.AdamW(classifier.parameters(), lr=profile.lr, weight_decay=profile.weight_decay)
start = time.perf_counter()
runner = speed.wrap(classifier, "exact")  # once, before the loop; "book" trains the model itself
train_losses, val_losses, train_accs, val_accs, examples_seen = train_classifier_simple(
    runner, train_loader, val_loader, optimizer, device,
    num_epochs=profile.epochs, eval_freq=profile.eval_freq, eval_iter=profile.eval_iter,
    progress=True)
minutes = (time.perf_counter() - start) / 60
print(f"Training took {minutes:.2f} minutes; {examples_seen:,} examples seen "
      f"({profile.epochs} epoch{'s' if profile.epochs != 1 else ''} x {len(train_loader)} batches "
      f"x {profile.batch_size}).")

# %% [markdown]
# Accuracy after each epoch (on `eval_iter` batches only, so it moves in coarse steps). The
# book's run: 70.00/72.50, 82.50/85.00, 90.00/90.00, 100.00/97.50, 100.00/97.50 percent
# (train/validation). With the book's `eval_iter=5` that is 40 messages, so one message is
# 2.5 points.

# %%
pd.DataFrame({"train accuracy": train_accs, "validation accuracy": val_accs},
             index=pd.RangeIndex(1, len(train_accs) + 1, name="epoch")).round(4)

# %% [markdown]
# ## Plots
#
# `plot_training` draws the book's two figures, with epochs below and examples seen above,
# and writes each as PNG and PDF to the profile's `figures_dir`, below `runs/` (so a
# notebook run never overwrites the figures the README shows). How to read them: each
# accuracy is drawn at the end of the epoch it was measured after (1, 2, ...), not from epoch
# 0 as in the book, whose plot puts the first epoch's accuracy where the untrained model's
# would be; the loss points are spread evenly over the run, as in the book (one every
# `eval_freq` steps, from step 0).

# %%
loss_figure, accuracy_figure = plot_training(
    train_losses, val_losses, train_accs, val_accs, examples_seen, profile.epochs,
    output_dir=profile.figures_dir)
print("figures written to", os.path.relpath(profile.figures_dir, project_root()))

# %% [markdown]
# ## Final accuracy
#
# Now on every batch of each split. The book: 97.21% training, 97.32% validation, 95.67%
# test (145 of 149 and 287 of 300 messages right).
#
# How much can such a number move by chance? One validation message is 0.67 points, one test
# message 0.33 points. These notebooks use one convention for that noise: the 95% interval
# (Wilson's), printed beside each accuracy. At 95% accuracy on 300 messages it reaches about
# 2.5 points either side; on 149 messages it is wider; and it never shrinks to nothing at
# 100%. Two accuracies differ *beyond noise* only when their gap is larger than their two
# half-widths combined; the cell checks that for validation against test, in this run and in
# the book's.
#
# Why can validation and test differ at all? Not because anything was tuned on validation:
# the chapter chooses no setting by watching it. It is sampling noise. (If you do choose
# epochs or settings by validation, as you may when comparing runs in notebook 6, validation
# does become optimistic; then the test set is the honest number.)
#
# The cell evaluates with `runner`, the wrapped classifier of the training cell: the same
# numbers as `classifier` itself, without computing the frozen blocks again for the messages
# it has already seen.
#
# **Predict first.** Which ends higher on the whole splits, training or validation accuracy?
# And by more than noise? Run the cells below to check.

# %%
# the frozen blocks still to compute: the validation messages not yet evaluated, and the test split
estimate_time(profile.config, "evaluate", train=0, validation=len(val_dataset), test=len(test_dataset),
              max_length=train_dataset.max_length)

# %%
final = {name: calc_accuracy_loader(loader, runner, device)
         for name, loader in (("train", train_loader), ("validation", val_loader), ("test", test_loader))}
sizes = {"train": len(train_loader) * profile.batch_size, "validation": len(val_dataset), "test": len(test_dataset)}
for name, acc in final.items():
    print(f"{name.capitalize()} accuracy: {accuracy_with_interval(acc, sizes[name])}")
for who, val, n_val, test, n_test in (("this run", final["validation"], sizes["validation"], final["test"],
                                        sizes["test"]), ("the book", 0.9732, 149, 0.9567, 300)):
    beyond, band = differ_beyond_noise(val, n_val, test, n_test)
    print(f"Validation minus test, {who}: {100 * (val - test):+.2f} points, "
          f"{'beyond' if beyond else 'within'} the +-{100 * band:.1f} points of noise.")
book_note("test accuracy", final["test"], 0.9567, profile, n=sizes["test"])

# %% [markdown]
# ### Read the run you just made
#
# The numbers above, and the lists the training loop returned, say more than the final
# accuracy. `describe_run` works out from them how far training and validation ended apart
# (against their noise), whether the per-epoch validation accuracy moved by more than the
# noise of the few messages it counts, and where the validation loss was lowest. Every
# sentence below is computed from this run, not written in advance:

# %%
run_description = describe_run(
    train_accs, val_accs, val_losses, eval_freq=profile.eval_freq, batches_per_epoch=len(train_loader),
    messages_per_eval=min(profile.eval_iter * profile.batch_size, len(val_dataset)),
    final=final, sizes=sizes)
run_description

# %% [markdown]
# Accuracy hides which mistakes are made. For a spam filter, flagging a friend's message
# (a false positive) is usually worse than letting one spam through; precision and recall
# for the spam class, and the confusion matrix, show the two kinds separately:

# %%
metrics = classification_metrics(test_loader, runner, device)
print(f"spam precision {metrics['precision']:.3f}, recall {metrics['recall']:.3f}, F1 {metrics['f1']:.3f}")
pd.DataFrame(metrics["confusion_matrix"],
             index=[f"true {c}" for c in CLASS_NAMES], columns=[f"predicted {c}" for c in CLASS_NAMES])

# %% [markdown]
# ## Classifying new messages
#
# `classify_review` (the book's name) tokenizes a message, pads it to the training length,
# and returns the label of the larger logit at the last position. `gptlib.train.predict_proba`
# returns the two probabilities instead; the cell prints P(spam) beside each label. The book's
# two examples: the first is written as spam, the second is not, and the book's run gets both
# right. Whether this run does, the output below says.

# %%
show_source(classify_review)

# %% [markdown]
# **Predict first.** This classifier scored the accuracy printed above on the test split. Will
# it label both examples as the book's does? Run the cell below to check.

# %%
examples = [
    ("You are a winner you have been specially selected to receive $1000 cash or a $2000 award.", "spam"),
    ("Hey, just wanted to check if we're still on for dinner tonight? Let me know!", "not spam"),
]


def classify_examples(model, max_length):
    """describe_examples' rows: (text, expected, label from classify_review, P(spam))."""
    return [(text, expected, classify_review(text, model, tokenizer, device, max_length=max_length),
             predict_proba(text, model, tokenizer, device, max_length=max_length)[1])
            for text, expected in examples]


describe_examples(classify_examples(classifier, train_dataset.max_length))

# %% [markdown]
# If the spam example comes out as "not spam" with a low P(spam), look at where it is read:
# the message is padded to the longest training message, so the last position is a pad, and
# what the head reads there depends on what the network learned to gather into the pads. With
# random weights (the offline profile) that is rougher than with pretrained ones. Notebook 8
# shows this: the head applied at every position of this very message, and what each added
# pad does to P(spam).
#
# A message that is not an SMS at all still gets one of the two labels, sometimes with a
# confident probability (notebook 1 showed why: there is no third answer). The probability
# says which class the head prefers, not that the question made sense:

# %%
for text in ("What is the capital of France?", "Please write me a short poem about the sea."):
    probabilities = predict_proba(text, classifier, tokenizer, device, max_length=train_dataset.max_length)
    label = max(range(len(CLASS_NAMES)), key=probabilities.__getitem__)
    print(f"{CLASS_NAMES[label]} (P = {probabilities[label]:.3f})  <- {text}")

# %% [markdown]
# Try your own messages (needs a live Jupyter kernel):

# %%
classify_explorer(classifier, tokenizer, device, max_length=train_dataset.max_length)

# %% [markdown]
# ## Saving and loading the classifier
#
# The book saves only the state dict, so loading needs code that rebuilds the same model
# first. `save_classifier` also stores the model config (with the number of classes) and
# whatever else is needed to use it: here the padding length, which token is read and the
# class names. It also stores the settings the classifier was trained with, the data file's
# checksum and the final accuracies, so that notebook 8 can tell whether this is the run it
# needs and reuse it instead of training again. `load_classifier` rebuilds the model and
# returns it in eval mode, with everything stored.

# %%
settings = {
    "model_size": profile.config.effective().model_size, "weights": profile.weights,
    "data_sha256": sha256_of(data_file), "data_file": data_file.name,
    "epochs": profile.epochs, "lr": profile.lr, "weight_decay": profile.weight_decay,
    "drop_rate": 0.0, "batch_size": profile.batch_size, "seed": profile.seed,
    "eval_freq": profile.eval_freq, "eval_iter": profile.eval_iter,
    # what this notebook's cells did, whatever the profile says about them:
    "token": "last", "trainable": "last_block", "padding": "max_length", "max_length": None,
    "train_limit": None, "speed": "exact",
    "accuracy": final, "test_accuracy": final["test"],  # on whole splits (train, validation, test)
}
checkpoint = save_classifier(classifier, profile.work_dir / "classifier.pth",
                             max_length=train_dataset.max_length, token="last",
                             pad_token_id=train_dataset.pad_token_id, class_names=list(CLASS_NAMES),
                             settings=settings)
print("saved", os.path.relpath(checkpoint, project_root()))

# %%
# NBVAL_CHECK_OUTPUT
reloaded, meta = load_classifier(checkpoint, device=device)
print("stored with the weights:", sorted(meta))
print("settings stored:", ", ".join(sorted(meta["settings"])))
inputs, _ = next(iter(test_loader))
with torch.no_grad():
    same = torch.equal(reloaded(inputs.to(device)), classifier(inputs.to(device)))
print("reloaded classifier gives identical logits:", same)

# %% [markdown]
# The reloaded classifier gives the same labels and probabilities as before saving:

# %%
describe_examples(classify_examples(reloaded, meta["max_length"]))

# %% [markdown]
# The same checkpoint works from the command line (the path is the book profile's; the save
# cell above printed this profile's):
#
# ```bash
# python -m gptlib classify runs/notebooks/classifier.pth "You won a prize! Call now" "See you at 6?"
# ```

# %% [markdown]
# ## How many epochs? Overfitting, dropout and weight decay
#
# There is no formula for the number of epochs. Watch the validation curves: while
# validation loss falls, training helps; when training loss keeps falling but validation
# loss stalls or rises, the model has started to memorize the training messages
# (overfitting), and more epochs only make it worse. The book's rule of thumb: start with
# five; if validation gets worse after the first few epochs, use fewer; if it is still
# improving at the end, use more. In practice: train a little longer than needed, keep the
# checkpoint with the best validation score, and confirm once on the test set.
#
# Apply the rule to the run above: the description printed under the final accuracies
# ("Read the run you just made") says where this run's validation loss was lowest, whether its
# per-epoch validation accuracy moved by more than its noise, and how far training and
# validation accuracy ended apart. Two cautions when reading it. The per-epoch accuracy counts
# only `eval_iter` batches (40 messages with the book's settings), so a curve that seems to
# level off may be flat within noise. And the validation loss is measured on a few batches
# every `eval_freq` steps, so one low point can be luck. (Try 10 epochs in notebook 6's lab
# and watch the validation curve.)
#
# Two standard brakes on overfitting, both off or small in the book's run:
#
# * **Dropout** randomly zeroes activations during training, so the network cannot rely on
#   any single path. GPT-2's configs have `drop_rate` 0.0; load with e.g.
#   `GPTModel.from_pretrained(name, drop_rate=0.1)` (or `--drop-rate 0.1` on the command
#   line) to switch it on. It acts only in training mode: in eval mode the model is
#   deterministic again.
#
#   *Where* dropout acts matters once most of the model is frozen. In the book's code
#   (`dropout_scope="all"`) the frozen blocks drop too. They learn nothing from it: in a
#   frozen block, dropout is noise on the inputs of the part that trains, a different
#   noise at every step. With `dropout_scope="trainable"` dropout acts only in the blocks
#   that train, so the frozen blocks compute the same output for a message every time and
#   gptlib computes it once and reuses it (`gptlib.speed.cached`). The lab's fast mode uses
#   "trainable" and says so; "exact" and "book" keep the book's "all", and pay for it:
#   every step then runs all 12 blocks.
# * **Weight decay** pulls every weight a little towards zero at each step, which favours
#   simpler solutions. In AdamW it is separate from the gradient step: each step multiplies
#   a weight by `1 - lr * weight_decay` (for the book's settings, 1 - 5e-5 * 0.1). That is
#   tiny: after the run's 650 steps a weight keeps 99.7% of its size, so at this learning
#   rate the book's decay of 0.1 is practically off, and 0.2 would be too. To matter it has
#   to be much larger, or the learning rate higher. Note also that it pulls towards zero, not
#   back towards the pretrained weights.
#
# Both, demonstrated on small examples that do not depend on the profile:

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(123)
with_dropout = GPTModel(get_config("gpt2-tiny (test)", drop_rate=0.1))
ids = torch.tensor([tokenizer.encode("Do you have time")])
with torch.no_grad():
    with_dropout.train()
    print("training mode, two passes agree:", torch.equal(with_dropout(ids), with_dropout(ids)))
    with_dropout.eval()
    print("eval mode, two passes agree:    ", torch.equal(with_dropout(ids), with_dropout(ids)))

weight = torch.nn.Parameter(torch.ones(3))
decaying = torch.optim.AdamW([weight], lr=5e-5, weight_decay=0.1)
weight.grad = torch.zeros(3)  # no gradient at all: only the decay acts
decaying.step()
print(f"a weight of 1.0 after one AdamW step without gradient: {weight[0].item():.6f}")
print(f"the same decay over 650 steps keeps {(1 - 5e-5 * 0.1) ** 650:.4f} of a weight")

# %% [markdown]
# ### Dropout against overfitting, measured
#
# Does dropout shrink the gap between training and validation here? Two short runs answer it
# for this profile, on the same data with the same settings, except one: the second has
# dropout 0.5 in the parts that train. Both use speed "fast" with the settings of its preset
# (the last real token of messages padded per batch, dropout only where training happens), so
# their frozen blocks are computed once, shared by the two runs, and kept in the store. That
# makes them a few minutes together with the real data on a quiet machine (the cells above
# each say what they cost on yours), and not the chapter's run: compare them
# with each other, not with the numbers above. `run_finetune` is the chapter in one call (the
# lab and the command line use it too).
#
# **Predict first.** With dropout 0.5, will training accuracy end lower, and will the
# train-validation gap shrink? Will validation accuracy rise by more than noise? Run the cells
# below to check.

# %%
regularisation = {
    "no dropout": profile.run_config("05-regularisation-baseline", **PRESETS["fast"]),
    "dropout 0.5": profile.run_config("05-regularisation-dropout", **PRESETS["fast"], drop_rate=0.5),
}
fast_runs = {}
estimate_time(regularisation["no dropout"], "fast", **split_sizes, max_length=train_dataset.max_length)

# %%
fast_runs["no dropout"] = run_finetune(regularisation["no dropout"], progress=False, verbose=False, save=False)
print(f"no dropout: {fast_runs['no dropout'].seconds:.0f} s")

# %%
estimate_time(regularisation["dropout 0.5"], "fast", **split_sizes, max_length=train_dataset.max_length)

# %%
fast_runs["dropout 0.5"] = run_finetune(regularisation["dropout 0.5"], progress=False, verbose=False, save=False)
print(f"dropout 0.5: {fast_runs['dropout 0.5'].seconds:.0f} s")

# %%
table = pd.DataFrame({name: {"train": r.train_accuracy, "validation": r.val_accuracy, "test": r.test_accuracy,
                             "train - validation": r.train_accuracy - r.val_accuracy}
                      for name, r in fast_runs.items()}).T
display((100 * table).round(2))
for name, r in fast_runs.items():
    gap = describe_run(r.train_accs, r.val_accs, r.val_losses, eval_freq=profile.eval_freq,
                       batches_per_epoch=len(train_loader),
                       messages_per_eval=min(profile.eval_iter * profile.batch_size, len(val_dataset)),
                       final={"train": r.train_accuracy, "validation": r.val_accuracy}, sizes=sizes)
    print(f"{name}: {gap.sentences[0]}")
compare_runs("Dropout 0.5", fast_runs["dropout 0.5"].val_accuracy, "no dropout",
             fast_runs["no dropout"].val_accuracy, sizes["validation"], what="validation accuracy")

# %% [markdown]
# Read the two lines and the sentence above together: dropout is meant to lower training
# accuracy a little and to narrow the gap, and a narrower gap helps only if validation
# accuracy holds or rises. One short run of each on 149 validation messages can show a
# change, or show that the change is within noise; repeat with several seeds (notebook 6's
# lab, or `--seeds 3` on the command line) before you trust a difference of a point or two.
#
# To compare other settings, rerun this notebook with a changed profile, e.g.
# `profile = load_profile(epochs=3)` in the configuration cell, or use the command line:
#
# ```bash
# python -m gptlib finetune --epochs 3 --drop-rate 0.1 --weight-decay 0.05 --output runs/try1 --figures runs/try1
# ```
#
# %% [markdown]
# ## Check your understanding
#
# **1.** In the book's run the accuracy after each epoch moves in steps like 82.50, 85.00,
# 90.00. Why such coarse steps, when the final accuracies have two meaningful decimals?
#
# <details><summary>Answer</summary>
#
# The per-epoch accuracy uses only `eval_iter` = 5 batches of 8, that is 40 messages, so
# one message is 2.5 points. The final accuracies use every message of each split (one
# test message is 0.33 points). The per-epoch numbers are a quick, noisy look.
#
# </details>
#
# **2.** The book gets 97.32% validation and 95.67% test accuracy. Is the model worse on
# the test messages?
#
# <details><summary>Answer</summary>
#
# There is no evidence of that. It is 4 mistakes in 149 against 13 in 300. The 95% intervals
# are 93.3-99.0% on validation and 92.7-97.5% on test, and they overlap widely: the final
# accuracy cell works it out, and the book's 1.65-point gap is within noise. Nothing in the
# chapter was tuned on validation. The same cell says whether your own run's gap is beyond
# noise.
#
# </details>
#
# **3.** Running the training cell twice gives exactly the same numbers. Why, and how would
# you measure how much the result varies from run to run?
#
# <details><summary>Answer</summary>
#
# The cell makes a fresh copy of the untrained classifier and sets the seed right before
# training, so the batch order and everything else repeat. To measure the variation,
# repeat the run with several seeds (the loaders' too) and look at the spread of the test
# accuracies: notebook 6's lab has "repeat with N seeds", and the command line
# `python -m gptlib finetune --seeds 3` does the same.
#
# </details>

# %% [markdown]
# ## Recap
#
# * The book's loop is chapter 5's with examples seen instead of tokens seen and an accuracy check after each epoch; five epochs of AdamW (lr 5e-5) on 7 million weights.
# * Pretrained gpt2-small reaches 95.67% test (97.32% validation); random weights about 93-94%. Every accuracy comes with its 95% interval (about 2.5 points either side at 95% on 300 messages), and two runs differ beyond noise only when their gap exceeds the two half-widths combined (about 3.5 points for two such runs); `compare_runs` checks it.
# * Read the run you made: the train-validation gap, the validation curve against its noise, and the epoch of lowest validation loss (`describe_run`) tell you about overfitting and the number of epochs; dropout and weight decay are the brakes, and one measured comparison beats a rule.
# * `classify_review` pads a new message like the training data and reads the last position; it always answers with a class, even for questions that are not SMS at all.
#
# That completes the chapter's run: a GPT-2 turned into a spam filter by replacing one layer and
# training a small part of the network, in the minutes the estimate above the training cell
# gave for your machine. Notebooks 6 to 9 go further: the experiment lab (6), LoRA (7), inside
# the trained classifier (8), and the same recipe on a modern model (9).
