"""What the lab says when a run fails: one short line in the lab's own words.

gptlib's errors are written for every way in: the command line (``--weights random``), Python
(``weights="random"``) and the notebooks' profiles. In the lab only its controls exist, so
:func:`lab_words` turns a flag or a keyword setting into the control's name, and
:func:`failure_message` makes the one line the panel shows (the whole exception stays in
``panel.last_error``). No widgets here.
"""

from __future__ import annotations

import re
from typing import Any

from gptlib.lab.controls import SIMPLE_CONTROLS, control_label

MAX_CHARS = 400  # a failure line longer than this is cut (the whole error is in last_error)
# The settings with a control (the rest, such as data files, keep their flags' names).
_SETTINGS = {*SIMPLE_CONTROLS, "trainable", "padding", "max_length", "train_limit", "seeds"}
_ALIASES = {"model": "model_size"}
_VALUE = r"(?:\"[^\"]*\"|'[^']*'|[\w.()/+-]+(?: \([\w .]+\))?)"
_FLAG = re.compile(rf"--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?:[ =]({_VALUE}))?")
_KEYWORD = re.compile(rf"\b([a-z][a-z0-9_]*)=({_VALUE})")
_PROFILE = re.compile(r"[,;]?\s*(?:or\s+)?(?:in the notebooks,?\s+)?GPTLIB_PROFILE=\w+(?:\s+(?:for|in) the "
                      r"notebooks)?")


def _setting_phrase(name: str, value: str | None) -> str | None:
    name = _ALIASES.get(name, name)
    if name not in _SETTINGS:
        return None
    label = control_label(name)
    if value is None:
        return f"the lab's '{label}' setting"
    return f"'{label}' set to '{value.strip(chr(34) + chr(39))}' in the lab's settings"


def lab_words(text: str) -> str:
    """``text`` with every command-line flag (``--weights random``, ``--model-size X``) and
    keyword setting (``weights="random"``) of a setting the lab has a control for named by that
    control, and the notebooks' profile advice and "on the command line" left out."""
    def flag(match: re.Match) -> str:
        phrase = _setting_phrase(match.group(1).replace("-", "_"), match.group(2))
        return phrase or match.group(0)

    def keyword(match: re.Match) -> str:
        return _setting_phrase(match.group(1), match.group(2)) or match.group(0)

    out = _FLAG.sub(flag, text)
    out = _KEYWORD.sub(keyword, out)
    out = _PROFILE.sub("", out).replace(" on the command line", "")
    out = re.sub(r"(\(?)('[^']+' set to '[^']+' in the lab's settings)(?:,? or \2)+", r"\1\2", out)
    return re.sub(r"\s+", " ", out).replace(" ,", ",").replace(" .", ".").strip()


def _download_line(err: BaseException, cfg: Any) -> str | None:
    """The one line for pretrained weights that could not be fetched (None for other errors)."""
    if type(err).__name__ != "DownloadError" or cfg is None or getattr(cfg, "weights", "") != "pretrained":
        return None
    from gptlib.models.hf_weights import weights_file

    reasons = list(dict.fromkeys(re.sub(r" \(\d+ tries\)$", "", t.split(": ", 1)[-1])
                                 for t in getattr(err, "tried", ()) or ()))
    why = f" ({'; '.join(reasons)})" if reasons else ""
    return (f"{cfg.model_size}'s pretrained weights are not in the cache and could not be downloaded{why}. "
            f"Choose 'random' in the lab's '{control_label('weights')}' setting, or copy the weights file to "
            f"{weights_file(cfg.model_size)}.")


def failure_message(err: BaseException, cfg: Any = None, seconds: float | None = None) -> str:
    """One line for a failed run: when it failed and why, in the lab's words, never a traceback.
    ``cfg``: the run's FinetuneConfig (it names the model whose weights were missing)."""
    line = _download_line(err, cfg)
    if line is None:
        text = " ".join(str(err).split()) or type(err).__name__
        if not isinstance(err, (ValueError, OSError)) and type(err).__module__.split(".")[0] != "gptlib":
            text = f"{type(err).__name__}: {text}"
        line = lab_words(text)
    if len(line) > MAX_CHARS:
        line = line[:MAX_CHARS - 1].rstrip() + "…"
    when = f" after {seconds:.1f} s" if seconds is not None else ""
    return f"The run failed{when}: {line}"
