"""Small interactive explorers for the chapter notebooks: see a message's tokens, what trains,
and how a classifier answers. ipywidgets is imported inside each function, so importing this
module costs nothing extra."""

from __future__ import annotations

import html
from typing import Any

import torch

from gptlib.classifier import add_classification_head, trainable_summary
from gptlib.model import GPTModel
from gptlib.notebook import TRAINABLE_CHOICES, describe_message
from gptlib.tokenizer import END_OF_TEXT_ID, get_tokenizer
from gptlib.train import predict_proba


def _message_html(info: dict[str, Any], max_length: int, pad_token_id: int) -> str:
    if not info["ids"]:
        return "<i>Type a message above.</i>"
    pieces = " ".join(f"<code>{html.escape(repr(t))}</code>" for t in info["tokens"])
    padded = ", ".join(
        f"<b>{i}</b>" if pos >= info["n_tokens"] and i == pad_token_id else str(i)
        for pos, i in enumerate(info["padded"])
    )
    note = (f"{info['truncated_tokens']} token(s) cut off" if info["truncated_tokens"]
            else f"{info['pad_tokens']} pad token(s) ({pad_token_id}, shown in bold) added")
    return (f"<p>{info['n_tokens']} tokens: {pieces}</p>"
            f"<p>ids: <code>{info['ids']}</code></p>"
            f"<p>padded to {max_length} ({note}):<br><code>[{padded}]</code></p>")


def token_explorer(tokenizer=None, max_length: int = 120, pad_token_id: int = END_OF_TEXT_ID,
                   value: str = "Do you have time"):
    """A text box: type a message and see its tokens, ids and padded sequence."""
    import ipywidgets as widgets

    tokenizer = tokenizer or get_tokenizer()
    text = widgets.Textarea(value=value, description="message", layout=widgets.Layout(width="95%"))
    length = widgets.IntSlider(value=max_length, min=1, max=max(1024, max_length),
                               description="max_length", continuous_update=False)
    out = widgets.HTML()

    def update(_=None) -> None:
        info = describe_message(text.value, tokenizer, length.value, pad_token_id)
        out.value = _message_html(info, length.value, pad_token_id)

    text.observe(update, names="value")
    length.observe(update, names="value")
    update()
    return widgets.VBox([text, length, out])


def trainable_explorer(model: GPTModel, choices: tuple[str, ...] = TRAINABLE_CHOICES,
                       value: str = "last_block"):
    """A dropdown of what to train; shows ``trainable_summary`` of the resulting classifier.

    Each choice builds a fresh classifier with ``add_classification_head`` (a copy), so
    ``model`` is never changed. A model on the meta device makes this instant.
    """
    import ipywidgets as widgets

    dropdown = widgets.Dropdown(options=list(choices), value=value, description="trainable")
    out = widgets.HTML()

    def update(_=None) -> None:
        clf = add_classification_head(model, trainable=dropdown.value)
        out.value = f"<code>{html.escape(trainable_summary(clf))}</code>"

    dropdown.observe(update, names="value")
    update()
    return widgets.VBox([dropdown, out])


def classify_explorer(model: GPTModel, tokenizer=None, device: str | torch.device = "cpu",
                      max_length: int | None = None, token: str = "last",
                      class_names: tuple[str, ...] = ("not spam", "spam"),
                      value: str = "Congratulations! You have won a free holiday. Call now to claim."):
    """A text box that classifies what is typed, with the class probabilities."""
    import ipywidgets as widgets

    tokenizer = tokenizer or get_tokenizer()
    text = widgets.Textarea(value=value, description="message", layout=widgets.Layout(width="95%"))
    out = widgets.HTML()

    def update(_=None) -> None:
        if not text.value.strip():
            out.value = "<i>Type a message above.</i>"
            return
        probs = predict_proba(text.value, model, tokenizer, device, max_length=max_length, token=token)
        best = max(range(len(probs)), key=probs.__getitem__)
        shown = ", ".join(f"{name} {p:.1%}" for name, p in zip(class_names, probs, strict=False))
        out.value = f"<b>{html.escape(class_names[best])}</b> ({shown})"

    text.observe(update, names="value")
    update()
    return widgets.VBox([text, out])
