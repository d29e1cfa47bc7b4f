"""Views of a trained spam classifier: what it reads where, what padding does, where it errs,
and what a linear model on word counts gets on the same split.

* :func:`readout_curve`: P(spam) at every position of one message (the head on each token).
* :func:`padding_probe`: P(spam) as pads are added, read at the last position and at the
  last real token.
* :func:`score_messages`, :func:`misclassified`, :func:`threshold_table`: error analysis,
  with precision at the data's natural spam rate.
* :func:`train_bow_baseline`: a bag-of-words logistic regression in plain torch.

Each returns data (DataFrames, dicts); the ``plot_*`` functions draw it and return a figure.
ipywidgets is imported only inside :func:`threshold_explorer`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from gptlib.classifier import ClassifierRunner, classifier_logits, select_token_logits
from gptlib.data import create_balanced_dataset, map_labels, random_split, read_sms_spam
from gptlib.plots import plt
from gptlib.tokenizer import END_OF_TEXT_ID, get_tokenizer
from gptlib.train import encode_message

# 747 spam among the 5,572 messages the book reads: the share a real inbox of this data has.
NATURAL_SPAM_RATE = 747 / 5572


def _plain(model: torch.nn.Module) -> torch.nn.Module:
    """The GPT model itself (a speed wrapper from gptlib.speed.cached holds it as ``.model``)."""
    return model.model if isinstance(model, ClassifierRunner) else model


def _context(model: torch.nn.Module) -> int:
    return _plain(model).pos_emb.weight.shape[0]


# --- 1. read-out curve ---------------------------------------------------------------------


def readout_curve(text: str, model: torch.nn.Module, tokenizer=None, device: str | torch.device = "cpu",
                  max_length: int | None = None, pad_token_id: int = END_OF_TEXT_ID) -> pd.DataFrame:
    """P(spam) at every position of one message: the head applied to each token's final state.

    ``model(ids)`` already gives logits for every position, shape (1, T, 2); this is their
    softmax, row by row. Columns: ``position``, ``token``, ``token_id``, ``is_pad``,
    ``p_spam``. With ``max_length`` the message is padded (or cut) as ``classify_review``
    does, so the last row is what the book's classifier reads.

    Shown in notebooks/08_inside_the_classifier.
    """
    tokenizer = tokenizer or get_tokenizer()
    plain = _plain(model).eval()
    ids = encode_message(text, tokenizer, _context(plain), max_length, pad_token_id)
    n_real = len(tokenizer.encode(text, disallowed_special=()))
    with torch.no_grad():
        logits = plain(torch.tensor([ids], device=device))[0].float()
    p_spam = torch.softmax(logits, dim=-1)[:, 1].cpu()
    return pd.DataFrame({
        "position": range(len(ids)),
        "token": [tokenizer.decode([i]) if pos < n_real else "<pad>" for pos, i in enumerate(ids)],
        "token_id": ids,
        "is_pad": [pos >= n_real for pos in range(len(ids))],
        "p_spam": p_spam.tolist(),
    })


def plot_readout_curve(curves: pd.DataFrame | Sequence[pd.DataFrame],
                       titles: Sequence[str] | None = None, suptitle: str | None = None) -> plt.Figure:
    """Draw one or more read-out curves, one panel each, tokens along the bottom."""
    curves = [curves] if isinstance(curves, pd.DataFrame) else list(curves)
    fig, axes = plt.subplots(len(curves), 1, figsize=(11, 3.4 * len(curves)), squeeze=False)
    for i, (ax, curve) in enumerate(zip(axes[:, 0], curves, strict=True)):
        real = curve[~curve["is_pad"]]
        ax.plot(curve["position"], curve["p_spam"], marker="o", markersize=3.5, color="tab:red",
                label="P(spam) with the head on this token")
        ax.axhline(0.5, color="gray", linestyle=":", linewidth=1, label="decision line 0.5")
        if curve["is_pad"].any():
            first_pad = int(curve.loc[curve["is_pad"], "position"].min())
            ax.axvspan(first_pad - 0.5, len(curve) - 0.5, color="gray", alpha=0.15, label="padding")
        ax.scatter([curve["position"].iloc[-1]], [curve["p_spam"].iloc[-1]], s=80, zorder=3,
                   facecolors="none", edgecolors="black", label="last position (what the book reads)")
        step = max(1, len(real) // 40)  # at most ~40 token labels
        ax.set_xticks(real["position"][::step])
        ax.set_xticklabels([repr(t.strip() or t)[1:-1] for t in real["token"][::step]], rotation=90,
                           fontsize=8)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlim(-0.5, len(curve) - 0.5)
        ax.set_ylabel("P(spam)")
        ax.set_title((titles[i] if titles else "Read-out curve").replace("$", r"\$"), fontsize=11)  # no mathtext
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("token (position in the message)")
    if suptitle:
        fig.suptitle(suptitle.replace("$", r"\$"), fontsize=12)
    fig.tight_layout()
    return fig


# --- 2. padding probe ----------------------------------------------------------------------


def padding_probe(text: str, model: torch.nn.Module, tokenizer=None, device: str | torch.device = "cpu",
                  max_pads: int = 20, pad_token_id: int = END_OF_TEXT_ID) -> pd.DataFrame:
    """P(spam) of one message with k = 0..max_pads pads added, each k its own forward pass.

    ``p_spam_last`` reads the last position (the book's default, a pad once k > 0);
    ``p_spam_last_real`` reads the message's last real token. With the causal mask no token
    sees the pads after it, so the second column stays the same for every k.

    Shown in notebooks/08_inside_the_classifier.
    """
    tokenizer = tokenizer or get_tokenizer()
    plain = _plain(model).eval()
    ids = encode_message(text, tokenizer, _context(plain), None, pad_token_id)
    ids = ids[: _context(plain) - max_pads]
    rows = []
    with torch.no_grad():
        for k in range(max_pads + 1):
            logits = plain(torch.tensor([ids + [pad_token_id] * k], device=device))[0].float()
            p_spam = torch.softmax(logits, dim=-1)[:, 1]
            rows.append({"pads": k, "p_spam_last": p_spam[-1].item(), "p_spam_last_real": p_spam[len(ids) - 1].item()})
    return pd.DataFrame(rows)


def plot_padding_probe(probe: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """P(spam) against the number of pads, for both read positions."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(probe["pads"], probe["p_spam_last"], marker="o", label="read at the last position (book)")
    ax.plot(probe["pads"], probe["p_spam_last_real"], marker="s", linestyle="--", label="read at the last real token")
    ax.axhline(0.5, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("pad tokens added after the message")
    ax.set_ylabel("P(spam)")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(title or "Padding-sensitivity probe")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


# --- 3. error analysis ---------------------------------------------------------------------


def book_splits(data_file: str | Path, random_state: int = 123) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The book's train/validation/test DataFrames (read, balance, map labels, split 70/10/20)."""
    df = map_labels(create_balanced_dataset(read_sms_spam(data_file), random_state))
    return random_split(df, 0.7, 0.1, random_state)


def score_messages(texts: Sequence[str], labels: Sequence[int], model: torch.nn.Module, tokenizer=None,
                   device: str | torch.device = "cpu", max_length: int | None = None, token: str = "last",
                   pad_token_id: int = END_OF_TEXT_ID, batch_size: int = 16,
                   also: Sequence[str] = ()) -> pd.DataFrame:
    """Each message's P(spam) and cross-entropy loss, read at ``token`` after padding to ``max_length``.

    Columns: ``text``, ``label`` (1 = spam), ``p_spam``, ``loss``, ``predicted`` (argmax), and
    ``p_spam_<choice>`` for each read position in ``also`` (e.g. ``("first", "last_real")``),
    from the same forward pass. ``max_length=None`` pads each batch to its longest message.

    Shown in notebooks/08_inside_the_classifier.
    """
    tokenizer = tokenizer or get_tokenizer()
    texts, labels = list(texts), [int(x) for x in labels]
    model.eval()
    p_spam, losses, preds = [], [], []
    extra: dict[str, list[float]] = {choice: [] for choice in also}
    for start in range(0, len(texts), batch_size):
        chunk = [encode_message(t, tokenizer, _context(model), max_length, pad_token_id)
                 for t in texts[start:start + batch_size]]
        width = max(map(len, chunk))
        batch = torch.tensor([ids + [pad_token_id] * (width - len(ids)) for ids in chunk], device=device)
        target = torch.tensor(labels[start:start + batch_size], device=device)
        with torch.no_grad():
            every = _plain(model)(batch).float() if also else None
            logits = (select_token_logits(every, batch, token, pad_token_id) if also
                      else classifier_logits(model, batch, token, pad_token_id).float())
        for choice in also:
            extra[choice] += torch.softmax(select_token_logits(every, batch, choice, pad_token_id), -1)[:, 1].tolist()
        p_spam += torch.softmax(logits, -1)[:, 1].tolist()
        losses += F.cross_entropy(logits, target, reduction="none").tolist()
        preds += logits.argmax(-1).tolist()
    out = pd.DataFrame({"text": texts, "label": labels, "p_spam": p_spam, "loss": losses, "predicted": preds})
    for choice, values in extra.items():
        out[f"p_spam_{choice}"] = values
    return out


def misclassified(scores: pd.DataFrame) -> pd.DataFrame:
    """The wrongly classified messages, the most confident mistakes (highest loss) first."""
    wrong = scores[scores["predicted"] != scores["label"]]
    return wrong.sort_values("loss", ascending=False).reset_index(drop=True)


def threshold_table(scores: pd.DataFrame, thresholds: Sequence[float] | None = None,
                    prior: float = NATURAL_SPAM_RATE) -> pd.DataFrame:
    """Precision and recall for spam when "spam" means ``p_spam > threshold``.

    ``precision`` and ``accuracy`` are on the scored messages as they are (the balanced
    split); ``precision_at_prior`` and ``accuracy_at_prior`` are what the same classifier
    would get where a share ``prior`` of messages is spam: precision = prior * TPR /
    (prior * TPR + (1 - prior) * FPR). That is the same as weighting each ham message by
    (n_spam / n_ham) * (1 - prior) / prior. Recall (TPR) does not depend on the prior.
    Undefined precisions (nothing flagged) are NaN.

    Shown in notebooks/08_inside_the_classifier.
    """
    thresholds = [i / 20 for i in range(21)] if thresholds is None else list(thresholds)
    spam = scores["label"] == 1
    rows = []
    for t in thresholds:
        flagged = scores["p_spam"] > t
        tp, fp = int((flagged & spam).sum()), int((flagged & ~spam).sum())
        fn, tn = int((~flagged & spam).sum()), int((~flagged & ~spam).sum())
        tpr = tp / (tp + fn) if tp + fn else float("nan")
        fpr = fp / (fp + tn) if fp + tn else float("nan")
        flagged_at_prior = prior * tpr + (1 - prior) * fpr
        rows.append({
            "threshold": t, "tp": tp, "fp": fp, "fn": fn, "tn": tn, "recall": tpr, "fpr": fpr,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "accuracy": (tp + tn) / len(scores),
            "precision_at_prior": prior * tpr / flagged_at_prior if flagged_at_prior else float("nan"),
            "accuracy_at_prior": prior * tpr + (1 - prior) * (1 - fpr),
        })
    return pd.DataFrame(rows)


def plot_error_analysis(scores: pd.DataFrame, prior: float = NATURAL_SPAM_RATE, threshold: float = 0.5,
                        title: str | None = None) -> plt.Figure:
    """Left: P(spam) of the test messages by true class. Right: precision and recall against
    the threshold, on the balanced split and at the natural spam rate ``prior``."""
    table = threshold_table(scores, [i / 100 for i in range(101)], prior)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    bins = [i / 25 for i in range(26)]
    for label, name, colour in ((0, "ham (not spam)", "tab:blue"), (1, "spam", "tab:red")):
        left.hist(scores.loc[scores["label"] == label, "p_spam"], bins=bins, alpha=0.6, color=colour,
                  label=f"true {name} ({int((scores['label'] == label).sum())})")
    left.axvline(threshold, color="black", linestyle=":", label=f"threshold {threshold:g}")
    left.set_yscale("log")
    left.set_xlabel("P(spam) given by the classifier")
    left.set_ylabel("test messages (log scale)")
    left.set_title("Where the test messages land")
    left.legend(fontsize=9)
    right.plot(table["threshold"], table["recall"], color="tab:red", label="recall (any spam rate)")
    right.plot(table["threshold"], table["precision"], color="tab:blue", label="precision, balanced test split")
    right.plot(table["threshold"], table["precision_at_prior"], color="tab:blue", linestyle="--",
               label=f"precision at {prior:.1%} spam (natural rate)")
    right.axvline(threshold, color="black", linestyle=":")
    right.set_xlabel("threshold: spam if P(spam) > threshold")
    right.set_ylabel("precision / recall for spam")
    right.set_ylim(-0.02, 1.02)
    right.set_title("Precision and recall against the threshold")
    right.grid(alpha=0.3)
    right.legend(fontsize=9, loc="lower left")
    wrong = int((scores["predicted"] != scores["label"]).sum())
    fig.suptitle(title or f"Error analysis: {wrong} of {len(scores)} test messages misclassified", fontsize=12)
    fig.tight_layout()
    return fig


def threshold_explorer(scores: pd.DataFrame, prior: float = NATURAL_SPAM_RATE,
                       thresholds: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9)):
    """A threshold slider showing precision and recall; without ipywidgets, or when
    ``$NBGRADER_EXECUTION`` is set (a headless run), the table at a few ``thresholds``."""
    columns = ["threshold", "tp", "fp", "fn", "recall", "precision", "precision_at_prior"]
    try:
        if os.environ.get("NBGRADER_EXECUTION"):
            raise ImportError
        import ipywidgets as widgets
    except ImportError:
        return threshold_table(scores, thresholds, prior)[columns].round(3)
    slider = widgets.FloatSlider(value=0.5, min=0.0, max=0.99, step=0.01, description="threshold",
                                 continuous_update=True, readout_format=".2f")
    out = widgets.HTML()

    def update(_=None) -> None:
        row = threshold_table(scores, [slider.value], prior).iloc[0]
        out.value = (f"flagged as spam: {int(row.tp + row.fp)} ({int(row.tp)} spam, {int(row.fp)} ham); missed spam: {int(row.fn)}"
                     f"<br><b>recall</b> {row.recall:.1%} &nbsp; <b>precision</b> {row.precision:.1%} "
                     f"(balanced split), {row.precision_at_prior:.1%} (at {prior:.1%} spam)")

    slider.observe(update, names="value")
    update()
    return widgets.VBox([slider, out])


# --- 4. bag-of-words baseline --------------------------------------------------------------

WORD = re.compile(r"[a-z0-9£$€']+|[^\sa-z0-9]")


def bow_units(text: str, units: str = "bpe", tokenizer=None) -> list:
    """The units a message is counted in: GPT-2 BPE token ids, or lowercased words and symbols."""
    if units == "bpe":
        return (tokenizer or get_tokenizer()).encode(text, disallowed_special=())
    if units == "words":
        return WORD.findall(text.lower())
    raise ValueError(f"units must be 'bpe' or 'words'; got {units!r}.")


@dataclass
class BowBaseline:
    """A trained bag-of-words model: its vocabulary (unit -> column), linear layer and accuracies."""

    units: str
    vocab: dict
    linear: torch.nn.Linear
    accuracy: dict[str, float] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)

    def features(self, texts: Sequence[str], tokenizer=None) -> torch.Tensor:
        """Counts of each vocabulary unit, shape (messages, vocabulary); unknown units are dropped."""
        tokenizer = tokenizer or (get_tokenizer() if self.units == "bpe" else None)
        x = torch.zeros(len(texts), len(self.vocab))
        for row, text in enumerate(texts):
            for unit, n in Counter(bow_units(text, self.units, tokenizer)).items():
                if unit in self.vocab:
                    x[row, self.vocab[unit]] = n
        return x

    def predict_proba(self, texts: Sequence[str]) -> torch.Tensor:
        """P(spam) of each message."""
        with torch.no_grad():
            return torch.softmax(self.linear(self.features(texts)), -1)[:, 1]

    def top_units(self, k: int = 15, tokenizer=None) -> pd.DataFrame:
        """The units that push hardest towards spam and towards ham (weight difference spam - ham)."""
        tokenizer = tokenizer or get_tokenizer()
        weight = (self.linear.weight[1] - self.linear.weight[0]).detach()
        names = {col: (tokenizer.decode([u]) if self.units == "bpe" else u) for u, col in self.vocab.items()}
        order = weight.argsort()
        pick = lambda cols: [(repr(names[int(c)]), round(weight[c].item(), 3)) for c in cols]  # noqa: E731
        spam, ham = pick(order.flip(0)[:k]), pick(order[:k])
        return pd.DataFrame({"towards spam": [u for u, _ in spam], "weight": [w for _, w in spam],
                             "towards ham": [u for u, _ in ham], "weight ": [w for _, w in ham]})


def train_bow_baseline(train: pd.DataFrame, validation: pd.DataFrame, test: pd.DataFrame, units: str = "bpe",
                       epochs: int = 30, batch_size: int = 32, lr: float = 0.01, weight_decay: float = 0.01,
                       seed: int = 123, tokenizer=None) -> BowBaseline:
    """Logistic regression on unit counts (a linear layer, cross-entropy, AdamW), trained on
    ``train`` (columns ``Text``, ``Label`` 0/1), vocabulary from the training messages only.
    Deterministic for a given ``seed`` (the initial weights and the batch order).
    Returns the model with train/validation/test accuracy.

    Shown in notebooks/08_inside_the_classifier.
    """
    tokenizer = tokenizer or (get_tokenizer() if units == "bpe" else None)
    vocab: dict = {}
    for text in train["Text"]:
        for unit in bow_units(text, units, tokenizer):
            vocab.setdefault(unit, len(vocab))
    generator = torch.Generator().manual_seed(seed)
    linear = torch.nn.Linear(len(vocab), 2)
    with torch.no_grad():
        linear.weight.normal_(0.0, 0.01, generator=generator)
        linear.bias.zero_()
    model = BowBaseline(units, vocab, linear)
    x, y = model.features(list(train["Text"]), tokenizer), torch.tensor(train["Label"].astype(int).tolist())
    optimizer = torch.optim.AdamW(linear.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        total = 0.0
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(linear(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.losses.append(total / len(y))
    for name, frame in (("train", train), ("validation", validation), ("test", test)):
        p = model.predict_proba(list(frame["Text"]))
        labels = torch.tensor(frame["Label"].astype(int).tolist())
        model.accuracy[name] = ((p > 0.5).long() == labels).float().mean().item() if len(labels) else float("nan")
    return model
