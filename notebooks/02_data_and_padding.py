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
# # 2. The SMS data: imbalance, splits and padding
#
# **What this notebook covers.** Getting the SMS Spam Collection (download or a local copy),
# how lopsided its classes are and how the book balances them, the 70/10/20 split, how long
# the messages are in tokens, and how they are padded with `<|endoftext|>` (id 50256) into
# equal-length batches: padding to the longest message of the whole training set (the
# book's way) against padding each batch to its own longest message, and what each costs.
# Validation and test messages are cut to the training length, and the book's other option,
# cutting every message to the shortest one, is shown too. At the end, a text box shows
# what the pipeline makes of any message you type.
#
# **Book sections.** Chapter 6, sections 6.2 (preparing the dataset) and 6.3 (creating data
# loaders); exercise 6.1 (padding to the full context).
#
# **Time:** about 15 minutes to read, seconds to run (plus a 200 kB download the first time
# in the book profile; without a network the copy shipped with gptlib is used). **Needs:**
# nothing; notebook 1 says why the chapter wants labelled data. No model is loaded, so the
# book and offline profiles give the same numbers here: both read the real data. With
# `GPTLIB_PROFILE=smoke` it uses a small made-up data file shipped with gptlib, unless
# `GPTLIB_DATA_DIR` points at a copy of the real data.

# %% tags=["parameters"]
from gptlib.notebook import load_profile
from gptlib.study.notes import profile_banner

# None reads $GPTLIB_PROFILE: unset means "book" (the real SMS Spam Collection, as in the
# book), "offline" the same data from the copy shipped with gptlib, "smoke" a 200-message
# made-up file shipped with gptlib (used by the tests).
PROFILE = None
profile = load_profile(PROFILE)
print(profile)
profile_banner(profile)

# %%
import matplotlib.pyplot as plt
import pandas as pd

from gptlib import get_tokenizer
from gptlib.data import (
    SpamDataset,
    create_balanced_dataset,
    create_data_loaders,
    download_and_unzip_spam_data,
    map_labels,
    random_split,
    read_sms_spam,
    save_splits,
)
from gptlib.finetune import resolve_data_file
from gptlib.lab.explorers import token_explorer
from gptlib.notebook import describe_message, is_book_data, show_source, spam_data_file
from gptlib.support.download import DownloadError
from gptlib.tokenizer import END_OF_TEXT, END_OF_TEXT_ID

tokenizer = get_tokenizer()
split_dir = profile.work_dir / "data"

# %% [markdown]
# ## Getting the data
#
# The book downloads a zip from the UCI Machine Learning Repository (with a mirror as a
# fallback) and unpacks the tab-separated file `SMSSpamCollection` from it. gptlib's
# `download_and_unzip_spam_data` keeps the book's name and arguments and adds what a
# classroom needs: the file is checked against its known sha256, it lands atomically (an
# interrupted download never leaves a half file behind), a second call does nothing, and
# without a network you can point `GPTLIB_DATA_DIR` at a folder holding the file or the zip.
#
# The data is also shipped with gptlib (it is about 500 kB, under a CC BY 4.0 licence), so
# when the download fails the cell below says so in one line and uses that copy: the same
# bytes, checked against the same sha256. The offline profile uses the shipped copy from
# the start, the smoke profile its small made-up file.

# %%
if profile.data is None:
    try:
        data_file = download_and_unzip_spam_data()  # downloads once, later calls reuse the file
    except DownloadError:  # offline: fall back on the copy shipped with gptlib (the same file)
        data_file = resolve_data_file(None, verbose=False)
        print(f"The download failed (no network?); using the copy shipped with gptlib: {data_file}")
else:
    data_file = spam_data_file(profile)  # the file the profile names
BOOK_DATA = is_book_data(data_file)  # True: the real file, so the book's numbers apply
print(data_file)
print("this is the book's data file:", BOOK_DATA)

# %% [markdown]
# Each line is a label (`ham` or `spam`), a tab, and the message. The book reads it with
# pandas' defaults:

# %%
df = read_sms_spam(data_file)
df.head()

# %% [markdown]
# One quirk is worth knowing. Some messages begin with a double quote that is never closed.
# With its default CSV quoting, pandas then reads on past the end of the line until the next
# quote, gluing several messages into one row. The file has 5,574 lines; read the book's
# way it gives 5,572 rows. gptlib reads it the book's way by default (the split, and so every
# number in the chapter, depends on it); `strict=True` keeps every line.

# %%
strict_df = read_sms_spam(data_file, strict=True)
print(f"rows read the book's way: {len(df):,}")
print(f"rows with quoting off:    {len(strict_df):,}")
merged = df[df["Text"].str.contains("\n")]
print(f"rows that swallowed following lines: {len(merged)}")
if len(merged):
    print(repr(merged["Text"].iloc[0][:160]))
if BOOK_DATA:
    assert (len(df), len(strict_df)) == (5572, 5574)

# %% [markdown]
# ## Class imbalance
#
# Most text messages are harmless ("ham").
#
# **Predict first.** What share of the messages in the file is spam: about a half, a
# quarter, or less? Run the cell below to check.

# %%
counts = df["Label"].value_counts()
class_table = pd.DataFrame({"messages": counts, "share": (counts / counts.sum()).round(3)})
if BOOK_DATA:
    assert counts.to_dict() == {"ham": 4825, "spam": 747}
class_table

# %%
fig, ax = plt.subplots(figsize=(4, 3))
ax.bar(counts.index, counts.values, color=["tab:blue", "tab:red"])
for x, n in enumerate(counts.values):
    ax.text(x, n, f"{n:,}", ha="center", va="bottom")
ax.set_ylim(0, 1.12 * counts.max())  # room for the labels
ax.set_ylabel("messages")
ax.set_title("Classes in the raw data")
fig.tight_layout()
plt.show()

# %% [markdown]
# On the real data spam is 13.4% of the messages, about one in seven and a half. Trained
# on such data, a model could reach about 87% accuracy by calling everything ham, and
# accuracy would hide that it never catches any spam. The book keeps things simple and
# *undersamples*: it keeps all spam messages and a random sample of the same number of ham
# messages. That throws away most of the ham, which is acceptable here because the task is
# easy and it keeps training short. (Other options: weight the loss by class, or report
# precision and recall instead of accuracy alone.)

# %%
show_source(create_balanced_dataset)

# %%
balanced_df = create_balanced_dataset(df)
balanced_counts = balanced_df["Label"].value_counts()
if BOOK_DATA:
    assert balanced_counts.to_dict() == {"ham": 747, "spam": 747}
balanced_counts.to_frame("messages")

# %% [markdown]
# The labels become class ids: ham → 0, spam → 1. In the book, running that cell twice turns
# the labels into NaN (the second mapping finds no "ham" or "spam" left). `map_labels`
# returns a new table and leaves 0/1 alone, so running it again changes nothing:

# %%
# NBVAL_CHECK_OUTPUT
labelled_df = map_labels(balanced_df)
print("labels after mapping:", sorted(labelled_df["Label"].unique().tolist()))
print("mapping again changes nothing:", map_labels(labelled_df).equals(labelled_df))
print("the input table is untouched:", balanced_df["Label"].isin(["ham", "spam"]).all())

# %% [markdown]
# ## Train, validation and test split
#
# One shuffle (with a fixed seed), then 70% for training, 10% for validation (watched during
# training to choose settings) and the rest, 20%, for the final test. The split is saved as
# three CSV files, which the datasets below read.

# %%
show_source(random_split)

# %%
train_df, validation_df, test_df = random_split(labelled_df, 0.7, 0.1)
train_csv, validation_csv, test_csv = save_splits(train_df, validation_df, test_df, split_dir)
split_sizes = {"train": len(train_df), "validation": len(validation_df), "test": len(test_df)}
if BOOK_DATA:
    assert split_sizes == {"train": 1045, "validation": 149, "test": 300}
pd.DataFrame({
    "messages": split_sizes,
    "spam share": {"train": train_df["Label"].mean(), "validation": validation_df["Label"].mean(),
                   "test": test_df["Label"].mean()},
}).round(3)

# %% [markdown]
# ## How long are the messages in tokens?
#
# The model reads token ids from GPT-2's tokenizer. Most messages are short, but a few are
# long, and that tail matters for padding.

# %%
train_lengths = [len(tokenizer.encode(t, disallowed_special=())) for t in train_df["Text"]]
longest, mean_length = max(train_lengths), sum(train_lengths) / len(train_lengths)
print(f"training messages: mean {mean_length:.1f} tokens, longest {longest}")
if BOOK_DATA:
    assert longest == 120

fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(train_lengths, bins=40, color="tab:gray")
ax.axvline(mean_length, color="tab:blue", linestyle="--", label=f"mean {mean_length:.0f}")
ax.axvline(longest, color="tab:red", label=f"longest {longest}")
ax.set_xlabel("tokens per training message")
ax.set_ylabel("messages")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Padding with `<|endoftext|>`
#
# A batch is one tensor, so its rows must have equal length. Shorter messages are filled up
# on the right with a padding token. GPT-2 has no dedicated one; the book reuses
# `<|endoftext|>`, id 50256. Three short messages show the idea; `SpamDataset` (the book's
# class) pads every message to the longest one it holds:

# %%
# NBVAL_CHECK_OUTPUT
toy = pd.DataFrame({"Label": [0, 0, 1],
                    "Text": ["Ok", "See you at 7 then", "WIN a prize now! Call 0800"]})
toy_dataset = SpamDataset(toy, tokenizer)
print("pad token:", repr(END_OF_TEXT), "=", END_OF_TEXT_ID)
print("padded to", toy_dataset.max_length, "tokens:")
for text, ids in zip(toy["Text"], toy_dataset.encoded_texts, strict=True):
    print(f"  {ids}  <- {text!r}")

# %%
show_source(SpamDataset)

# %% [markdown]
# Now the real splits. The training set sets `max_length` (its longest message: 120 tokens
# in the book); validation and test use the same length. (Later notebooks do these three
# lines with one call, `gptlib.data.spam_datasets(train_csv, validation_csv, test_csv, tokenizer)`.)

# %%
train_dataset = SpamDataset(train_csv, tokenizer)
val_dataset = SpamDataset(validation_csv, tokenizer, max_length=train_dataset.max_length)
test_dataset = SpamDataset(test_csv, tokenizer, max_length=train_dataset.max_length)
print("max_length:", train_dataset.max_length)
if BOOK_DATA:
    assert train_dataset.max_length == 120

# %% [markdown]
# ### What padding costs
#
# Padding is wasted work: the model computes on pad tokens like on real ones. We count the
# tokens the model processes in one epoch of training batches for three strategies:
#
# * **longest in the dataset** (the book): every message padded to the training set's
#   longest message;
# * **longest in the batch**: each batch padded to its own longest message
#   (`padding="batch"`, which pads in the loader with `pad_collate`);
# * **full context** (exercise 6.1): every message padded to GPT-2's 1,024 tokens.
#
# **Predict first.** The training messages average about 30 tokens and the longest has
# 120 (the histogram above). What share of the tokens in an epoch is padding when every
# message is padded to 120? And when padded to 1,024? Write down two percentages, then run
# the cell to check.

# %%
def padding_cost(loader):
    """(pad tokens, all tokens) over one pass through a loader."""
    pads = total = 0
    for inputs, _ in loader:
        pads += int((inputs == END_OF_TEXT_ID).sum())
        total += inputs.numel()
    return pads, total


strategies = {
    "longest in the dataset (book)": SpamDataset(train_csv, tokenizer),
    "longest in the batch": SpamDataset(train_csv, tokenizer, padding="batch"),
    "full context, 1024": SpamDataset(train_csv, tokenizer, max_length=1024),
}
rows = []
for name, dataset in strategies.items():
    loader = create_data_loaders(dataset, val_dataset, test_dataset, batch_size=profile.batch_size)[0]
    pads, total = padding_cost(loader)
    rows.append({"padding": name, "tokens per epoch": total, "pad tokens": pads,
                 "share that is padding": round(pads / total, 3)})
pd.DataFrame(rows).set_index("padding")

# %% [markdown]
# On the book's data, padding to the dataset's longest message makes about three quarters
# of all tokens padding; per-batch padding cuts the work by more than half; padding to 1,024
# makes nearly everything padding, which is slow, and in exercise 6.1 it also hurts
# accuracy: 78.33% test in the book's bonus experiments, against 95.00% for the book's
# padding in the same script (16.7 points worse). The exercise numbers come from that bonus
# script, which shuffles the data once more before splitting, so they belong with its
# baseline of 95.00%, not with the chapter's 95.67%.
#
# Per-batch padding gives the same predictions only if the model reads the last *real*
# token of each message, because with padding the last position of a row may be a pad
# token (notebook 4 shows this).

# %% [markdown]
# ### Truncation of validation and test messages
#
# Validation and test messages are padded to the training length, and a longer one would
# be cut to it. The book treats the cut as optional: it is a side effect of using one
# length for all three splits. The padding is what matters. The model reads position -1,
# and a message of a given length should end up with the same number of pads behind it in
# every split, as it did in training. On the book's split no validation or test message is
# longer than 120 tokens, so nothing is cut; other data (or a smaller training set) can
# differ.

# %%
for name, frame in (("validation", validation_df), ("test", test_df)):
    lengths = [len(tokenizer.encode(t, disallowed_special=())) for t in frame["Text"]]
    cut = sum(n > train_dataset.max_length for n in lengths)
    print(f"{name}: longest {max(lengths)} tokens; {cut} message(s) cut to {train_dataset.max_length}")

long_message = pd.DataFrame({"Label": [0], "Text": ["This message goes on and on. " * 40]})
cut_dataset = SpamDataset(long_message, tokenizer, max_length=train_dataset.max_length)
print(f"a {len(tokenizer.encode(long_message['Text'][0]))}-token message becomes "
      f"{len(cut_dataset.encoded_texts[0])} tokens")

# %% [markdown]
# ### The other way: truncate everything to the shortest message
#
# The book mentions a second way to make all rows the same length: cut every message to
# the length of the *shortest* one, and no padding is needed at all.
#
# **Predict first.** The shortest training message is only a few tokens long. If every
# message is cut to that length, what share of all training tokens is left? Run the cell to
# check.

# %%
shortest = min(train_lengths)
shortest_text = train_df["Text"].iloc[train_lengths.index(shortest)]
kept = sum(min(n, shortest) for n in train_lengths) / sum(train_lengths)
print(f"shortest training message: {shortest} tokens, {shortest_text!r}")
print(f"cutting every message to {shortest} tokens keeps {kept:.1%} of all training tokens")
if BOOK_DATA:
    assert shortest == 2
short_dataset = SpamDataset(train_csv, tokenizer, max_length=shortest)
print("what is left of two ham and two spam messages:")
for row in train_df.reset_index(drop=True).groupby("Label").head(2).index:
    kept_ids, text = short_dataset.encoded_texts[row], train_df["Text"].iloc[row]
    print(f"  {'spam' if train_df['Label'].iloc[row] else 'ham':<5}{tokenizer.decode(kept_ids)!r:<14} <- {text[:60]!r}")

# %% [markdown]
# The shortest message is tiny, so the cut costs a lot. After it the model sees only a
# message's first couple of tokens ("Dude", "Reminder" on the book's data) and nothing
# more: most of what tells spam from ham is thrown away.
# That is why the book pads instead. To see what a cut costs in accuracy, try a fixed
# padding length (for example 16) in notebook 6's lab.
# %% [markdown]
# ## Data loaders
#
# Batches of 8, the training batches shuffled (with a fixed seed) and the last incomplete
# training batch dropped, as in the book.

# %%
train_loader, val_loader, test_loader = create_data_loaders(
    train_dataset, val_dataset, test_dataset, batch_size=profile.batch_size, seed=profile.seed)
inputs, targets = next(iter(train_loader))
print(f"batches: {len(train_loader)} train, {len(val_loader)} validation, {len(test_loader)} test")
print("one batch:", tuple(inputs.shape), "token ids,", tuple(targets.shape), "labels")
if BOOK_DATA:
    assert (len(train_loader), len(val_loader), len(test_loader)) == (130, 19, 38)
    assert tuple(inputs.shape) == (8, 120)

# %% [markdown]
# ## Try it: from a message to padded token ids
#
# Type a message to see its tokens, their ids, and the sequence the model receives after
# padding (or truncation) to `max_length`. The work is done by gptlib's `encode_message`,
# the same function `classify_review` uses. (The box needs a live Jupyter kernel; the line
# below it prints the same for one message.)

# %%
token_explorer(tokenizer, max_length=train_dataset.max_length,
               value="Are we still on for dinner tonight?")

# %%
# NBVAL_CHECK_OUTPUT
info = describe_message("Do you have time", tokenizer, max_length=8)
print("tokens:", info["tokens"])
print("ids:   ", info["ids"])
print("padded:", info["padded"])

# %% [markdown]
# ## Check your understanding
#
# **1.** How could you have worked out the padding shares of the table (74.6% at 120 tokens,
# 97.0% at 1,024 on the book's data) from the histogram alone?
#
# <details><summary>Answer</summary>
#
# A message of n tokens padded to L has L - n pads, so the pad share is about
# 1 - mean/L: 1 - 30/120, three quarters, and 1 - 30/1024, nearly 97%.
#
# </details>
#
# **2.** After balancing, spam is half of the training data; in the raw file it is 13.4%.
# What does the model lose, and what changes when it meets messages at the natural rate?
#
# <details><summary>Answer</summary>
#
# It never sees 4,078 of the 4,825 ham messages. And it learns in a world where spam is
# one message in two: at the natural rate of about one in seven and a half, the same
# mistakes on ham weigh far more against the few real spams, so spam precision drops even
# if accuracy per class stays the same.
#
# </details>
#
# **3.** A validation message has 150 tokens and the training length is 120. What does
# `SpamDataset` do with it, and why not pad validation to its own longest message instead?
#
# <details><summary>Answer</summary>
#
# It keeps the first 120 tokens. With the book's reading of position -1, what the model
# sees there depends on how many pads follow a message; padding validation and test to the
# training length keeps that the same as in training.
#
# </details>

# %% [markdown]
# ## Recap
#
# * The raw data is 13.4% spam; the book undersamples ham to get 747 + 747 messages, split 70/10/20 into 1,045/149/300.
# * Rows in a batch need equal length: the book pads with `<|endoftext|>` (50256) to the longest training message, 120 tokens, so about three quarters of the work is padding.
# * Per-batch padding halves that work; cutting everything to the shortest message (2 tokens) would keep only 6.6% of the text.
#
# **Next:** notebook 3 turns GPT-2 into a classifier by replacing its output layer.
