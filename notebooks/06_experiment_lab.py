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
# # 6. The fine-tuning lab: your own experiments
#
# **What this notebook covers.** Notebook 5 ran the book's fine-tuning once, with the book's
# settings. Here you change the settings yourself and compare: the number of epochs, the
# learning rate, weight decay and dropout, the batch size, which part of the network trains,
# which token's output is read, how messages are padded, the model size, pretrained or
# random weights, and how many training messages are used. A panel runs each experiment in
# the background, with a progress bar, live loss and accuracy curves and a Stop button; it
# keeps a table of all your runs (which you can save as CSV) beside the book's own results
# for the same changes, and lets you classify your own messages with the latest model.
#
# **Book sections.** Chapter 6, sections 6.7 (fine-tuning the model on supervised data) and
# 6.8 (using the LLM as a spam classifier), and the book's bonus experiments on
# classification fine-tuning (in the chapter 6 material of its code repository), whose
# results the table below repeats.
#
# **Time.** The first run with the book's settings computes the frozen blocks' outputs for
# every message once; every later run in the same kernel (or a later kernel: they are also
# kept on disk) takes them from a store and only trains the last block. On the shared 2-core
# machine this lab was tested on (gpt2-small shape, random weights, real data), speed "fast"
# took about 2 minutes for a first run and about half a minute for each run after it; speed
# "exact" (the book's numbers) about 6.5 minutes, then under a minute. A laptop with more
# cores is faster; a data-centre GPU needs seconds. Training all layers, larger models or
# padding to 1,024 tokens take several times longer. The first run with pretrained weights
# also downloads them (about 500 MB for gpt2-small). With `GPTLIB_PROFILE=smoke` (tiny random
# model, made-up data) a run takes about a second, and its accuracies mean nothing.

# %% tags=["parameters"]
from gptlib.notebook import load_profile
from gptlib.study.notes import profile_banner

# None reads $GPTLIB_PROFILE: unset means "book" (pretrained gpt2-small, the real data, the
# book's 5 epochs), "offline" the same with random gpt2-small-shaped weights (no network),
# "smoke" a tiny random model, 1 epoch and a small made-up data file
# (used by the tests). The profile gives the panel's starting settings; change the rest in it.
PROFILE = None
profile = load_profile(PROFILE)
print(profile)
profile_banner(profile)

# %%
from IPython.display import HTML

from gptlib.lab import ExperimentPanel, book_bonus_results

# %% [markdown]
# ## The panel
#
# Set the controls and press **Run**. The settings are checked first: combinations that
# cannot work (a batch larger than the training set, a fixed length longer than the
# model's context, pretrained weights for a model that has none) are refused with a message
# and nothing runs; slow ones (padding to 1,024 tokens on a CPU, a large model) run after a
# warning. **Stop** ends a run after its current step: the curves so far, the final
# accuracies and the model are kept, and the row says "stopped early". The menu *try the
# book's* sets the controls for one of the book's bonus experiments.
#
# What the controls mean, and where the book discusses them:
#
# | control | choices | book |
# |---|---|---|
# | what trains | the new head only; the last N blocks + final norm (the book: 1); everything; LoRA adapters beside every frozen Linear (rank, alpha, and the scale: alpha as printed, or alpha/rank as appendix E's notebook does today; notebook 07) | 6.5, ex. 6.2, app. E |
# | token read | last (the book), first, last real (non-pad) token, mean over real tokens, mean over every position with the pads (the bonus script's "averaged embeddings") | 6.5, ex. 6.3 |
# | padding | to the longest training message (the book: 120), per batch, none (each message at its own length, batch size 1), to the model's context (1,024), a fixed length | 6.3, ex. 6.1 |
# | advanced | the causal mask (off: every token sees every token), gradient accumulation steps, a target the loss ignores | bonus |
# | speed | "book": the plain loop; "exact": same numbers, reuses what frozen layers computed; "fast": also keeps them in bfloat16; choosing it sets its preset (last real token, padding per batch, dropout only where training happens), which you can change after | - |
# | dropout acts in | every block, frozen ones too (the book's, and "exact"/"book"'s default); only the parts that train ("fast"'s default: the frozen blocks stay reusable, so dropout costs no extra time) | 6.7 |
# | training messages | "all" for all 1,045; fewer to see how much data matters | - |
# | repeat with N seeds | N runs with seeds seed, seed+1, ...: the table then shows each setting's mean, spread and 95% interval | - |
#
# The table of runs gives the final accuracies on the whole training, validation and test
# sets, the epoch with the best validation accuracy (measured on a few batches after each
# epoch, as in the book), the gap between training and validation accuracy (a large
# positive gap is a sign of overfitting), the time and whether the run was stopped. It
# shows the settings that differ between your runs; tick *every column* for all of them.
#
# **How much is noise?** 300 test messages make one message 0.33 points, and a single run's
# test accuracy near 95% has a 95% interval of about +-2.5 points; another seed moves it
# too. Use *repeat with N seeds* before reading much into a difference of a point or two:
# runs that differ only in their seed form one group, and the table below the runs gives the
# group's mean, spread and interval. `panel.engine.compare_with_book(group, "last_real")`
# says whether a group differs from a row of the book's table by more than noise.

# %%
panel = ExperimentPanel(profile)
panel

# %% [markdown]
# ## One experiment from code
#
# The buttons call methods that work from code too: `panel.set(...)` changes controls,
# `panel.run(wait=True)` runs and waits, `panel.stop()` stops. This cell runs the profile's
# settings unchanged (in the book profile: the book's run), so that the table starts with a
# baseline to compare against. Running the cell again adds another row; the panel above
# shows its progress and curves.

# %%
panel.run(wait=True)
print(panel.last_message)

# %% [markdown]
# For example `panel.set(token="last_real", epochs=3)` followed by `panel.run(wait=True)`
# repeats the book's "flexible" experiment with three epochs; `panel.apply_book_setting("last2")`
# sets the controls for a bonus experiment by its key (the index of the table below).

# %% [markdown]
# ## All runs, and the book's results
#
# `panel.runs` is a pandas DataFrame with one row per finished run (accuracies as fractions).

# %%
panel.runs

# %% [markdown]
# Below them, the book's bonus experiments: each changes one thing in the baseline (gpt2-small,
# last token, last block trained, padded to the longest message) and reports training,
# validation and test accuracy and minutes on an A100 GPU. The book's script shuffles the
# data once more before splitting, so its baseline is not the chapter's run: compare
# *differences* to the baseline rather than single numbers. Things to look for:
#
# * reading the **first token** or training **only the head** costs about 20 points;
# * the **last real token** instead of the last (often a pad) position, or **two** trained
#   blocks instead of one, gain a few points;
# * **padding to 1,024** tokens is slower and worse: the last position is then almost always
#   a pad token far from the message;
# * training **all layers** of a **randomly initialised** model still learns spam, but
#   generalises less well than the pretrained model (a larger train-validation gap).

# %%
HTML(panel.comparison_html())

# %% [markdown]
# The table can be saved as a CSV file (the panel's *Export CSV* button does the same). The
# file is written completely or not at all.

# %%
csv_file = panel.export_csv(profile.work_dir / "lab" / "runs.csv")
print("wrote", csv_file)

# %%
# NBVAL_CHECK_OUTPUT
row = panel.runs.iloc[-1]
print("runs in the table:", len(panel.runs))
print("accuracies between 0 and 1:", all(0 <= row[k] <= 1 for k in ("train_acc", "val_acc", "test_acc")))
print("stopped early:", row["stopped_early"])
print("bonus experiments in the book's table:", len(book_bonus_results()))

# %% [markdown]
# ## Classifying your own messages
#
# The box at the bottom of the panel classifies a message with the model of the latest run,
# padded and read the way that run was trained. The same from code:

# %%
for text in ("You have won a free cruise! Reply YES to claim your prize.",
             "Running late, be there in 10 minutes."):
    probs = panel.classify(text)
    print(f"spam {probs['spam']:.1%}  <- {text}")
