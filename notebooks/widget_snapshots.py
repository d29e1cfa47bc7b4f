"""Static renderings of the stored widgets, for readers whose viewer runs no widget code.

A stored notebook keeps each widget as a view (``application/vnd.jupyter.widget-view+json``)
plus the widgets' saved state in the notebook's metadata. Only a trusted notebook in a live
JupyterLab draws that view; GitHub, nbviewer, an untrusted notebook and an HTML export made
offline fall back to the output's ``text/html`` or ``text/plain``, which ipywidgets fills with
the widget's repr as it was when the cell first displayed it: ``VBox(children=(HTML(...``, or a
progress bar at "0%".

:func:`add_snapshots` (run by ``build.py`` on every document build) renders each stored view
from the saved state as it ended: plain HTML with no styles or scripts (a sanitiser keeps it)
and a short text, both headed by one line saying it is a stored copy. It also marks the saved
state itself: every button's tooltip, and the lab's status line, say that a stored copy does
nothing until the cells above run in a live kernel.
"""

from __future__ import annotations

import html
import re
from typing import Any

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
STORED_NOTE = ("A stored copy of an interactive widget, as it was when the notebook was built: "
               "it comes alive when the cells above run in a live kernel.")
STORED_BUTTON = "Stored copy: run the cells above in a live kernel first; until then this does nothing."
STORED_STATUS = ("<i>stored copy: the buttons do nothing until the cells above run (from the top) in a "
                 "live kernel</i>")
_BOXES = ("VBoxModel", "HBoxModel", "BoxModel", "GridBoxModel", "AccordionModel", "TabModel", "StackModel")
_CHOICES = ("DropdownModel", "SelectModel", "ToggleButtonsModel", "RadioButtonsModel", "SelectionSliderModel")


def clean_html(value: str) -> str:
    """HTML without styles, scripts, SVG or event handlers: what every sanitiser keeps."""
    value = re.sub(r"(?is)<(style|script|svg)\b.*?</\1>", "", value)
    value = re.sub(r"(?i)\s(on\w+|style)=(\"[^\"]*\"|'[^']*')", "", value)
    return value.strip()


def text_of(value: str) -> str:
    """The visible text of an HTML string."""
    return html.unescape(re.sub(r"<[^>]+>", " ", clean_html(value))).strip()


def _bar(value: float, high: float, width: int = 20) -> str:
    share = 0.0 if not high else max(0.0, min(1.0, value / high))
    return "|" + "#" * round(share * width) + "." * (width - round(share * width)) + "|"


class Renderer:
    """Renders one widget (by model id) from a notebook's saved widget state."""

    def __init__(self, state: dict[str, Any]):
        self.state = state

    def model(self, ref: str) -> dict[str, Any] | None:
        return self.state.get(ref.removeprefix("IPY_MODEL_"))

    def hidden(self, model: dict[str, Any]) -> bool:
        layout = self.model(model["state"].get("layout") or "") or {}
        return (layout.get("state") or {}).get("display") == "none"

    def parts(self, ref: str) -> list[tuple[str, str]]:
        """(html, text) pieces of a widget and its children, in display order."""
        model = self.model(ref)
        if model is None or self.hidden(model):
            return []
        name, s = model["model_name"], model["state"]
        label = s.get("description") or ""
        if name in _BOXES:
            inner = [p for child in s.get("children", []) for p in self.parts(child)]
            if name == "HBoxModel":
                return [(" ".join(h for h, _ in inner), " ".join(t for _, t in inner if t))] if inner else []
            return inner
        if name in ("HTMLModel", "HTMLMathModel"):
            return [(clean_html(s.get("value", "")), text_of(s.get("value", "")))]
        if name == "LabelModel":
            return [(html.escape(s.get("value", "")), s.get("value", ""))]
        if name in ("ButtonModel", "ToggleButtonModel"):
            return [(f"<code>[{html.escape(label)}]</code>", f"[{label}]")] if label else []
        if name in ("IntProgressModel", "FloatProgressModel"):
            value, high = s.get("value", 0), s.get("max", 100)
            number = f"{value:g}/{high:g}" if label else ""  # tqdm prints its own count beside the bar
            return [(f"<code>{html.escape(label)} {_bar(value, high)} {number}</code>",
                     f"{label} {_bar(value, high)} {number}".strip())]
        if name in _CHOICES:
            labels, index = s.get("_options_labels", []), s.get("index")
            chosen = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else ""
            return [(f"{html.escape(label)} <b>{html.escape(str(chosen))}</b>", f"{label} {chosen}".strip())]
        if name == "OutputModel":
            return [p for out in s.get("outputs", []) for p in output_parts(out)]
        if "value" in s and not isinstance(s["value"], (dict, list)):
            value = str(s["value"])
            shown = value if len(value) < 300 else value[:300] + "..."
            return [(f"{html.escape(label)} <code>{html.escape(shown)}</code>", f"{label} {shown}".strip())]
        return []

    def render(self, ref: str) -> tuple[str, str]:
        """The widget as (HTML, text), each headed by the stored-copy note."""
        pieces = self.parts(ref)
        body = "\n".join(f"<div>{h}</div>" for h, _ in pieces if h)
        text = "\n".join(t for _, t in pieces if t)
        if len(text) > 2000:
            text = text[:2000] + "\n..."
        return (f"<div><p><i>{html.escape(STORED_NOTE)}</i></p>\n{body}\n</div>", f"[{STORED_NOTE}]\n{text}")


def output_parts(out: dict[str, Any]) -> list[tuple[str, str]]:
    """(html, text) of one output kept inside an Output widget."""
    if out.get("output_type") == "stream":
        text = "".join(out.get("text", ""))
        return [(f"<pre>{html.escape(text)}</pre>", text)]
    data = out.get("data", {})
    if "image/png" in data:
        return [(f'<img src="data:image/png;base64,{"".join(data["image/png"]).strip()}"/>', "[figure]")]
    if "text/html" in data:
        value = "".join(data["text/html"])
        return [(clean_html(value), text_of(value))]
    if "text/plain" in data:
        text = "".join(data["text/plain"])
        return [(f"<pre>{html.escape(text)}</pre>", text)]
    return []


def mark_stored_state(state: dict[str, Any]) -> int:
    """Say in the saved state itself that a stored copy does nothing: each button's tooltip, and
    the lab's status line. Returns the number of widgets marked."""
    marked = 0
    for model in state.values():
        s = model["state"]
        if model["model_name"] == "ButtonModel":
            s["tooltip"] = STORED_BUTTON
            marked += 1
        elif "gptlib-status" in s.get("_dom_classes", []):
            s["value"] = STORED_STATUS
            marked += 1
    return marked


def add_snapshots(nb) -> int:
    """Give every stored widget view a static ``text/html`` and ``text/plain`` rendering from the
    saved state, and mark the state as a stored copy. Returns the number of views rendered."""
    saved = (nb.metadata.get("widgets") or {}).get(STATE, {}).get("state", {})
    if not saved:
        return 0
    renderer = Renderer(saved)
    rendered = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(VIEW)
            if not view or view.get("model_id") not in saved:
                continue
            output["data"]["text/html"], output["data"]["text/plain"] = renderer.render(view["model_id"])
            rendered += 1
    mark_stored_state(saved)
    return rendered
