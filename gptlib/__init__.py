"""gptlib: GPT-2 from scratch, fine-tuned as an SMS spam classifier (the book's Chapter 6).

The top of the package is the chapter in reading order: ``tokenizer``, ``model``, ``weights``,
``data``, ``classifier``, ``train``, ``plots``, then appendix E's ``lora``, the run's
``settings``, ``finetune`` (the chapter in one call), ``cli`` and ``notebook``. What a reader
need not open lives below: ``speed`` (the speed-ups, behind one door), ``support`` (files,
downloads, checks), ``study`` (notebook 08's tools, the experiments registry), ``lab`` and
``assignments``.

The book's names are importable from here, so a reader's code works with ours::

    from gptlib import GPTModel, SpamDataset, create_data_loaders, train_classifier_simple

They load on first use (PEP 562): ``import gptlib`` loads torch and tiktoken, never pandas or
ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import Any

from gptlib.support import moved as _moved

_moved.install()  # old import paths (gptlib.fast, gptlib.files, ...) keep working for one release

from gptlib import weights as _weights  # noqa: E402,F401  (registers GPTModel.from_pretrained's loader)

__version__ = "0.1.0"

# name -> the module that defines it, in the book's reading order
_EXPORTS = {
    "get_tokenizer": "tokenizer",
    "BASE_CONFIG": "model", "MODEL_CONFIGS": "model", "GPTModel": "model", "count_parameters": "model",
    "get_config": "model",
    "load_pretrained": "weights",
    "download_and_unzip_spam_data": "data", "create_balanced_dataset": "data", "random_split": "data",
    "SpamDataset": "data", "create_data_loaders": "data",
    "add_classification_head": "classifier", "set_trainable": "classifier",
    "save_classifier": "classifier", "load_classifier": "classifier",
    "calc_accuracy_loader": "train", "calc_loss_batch": "train", "calc_loss_loader": "train",
    "evaluate_model": "train", "train_classifier_simple": "train", "classify_review": "train",
    "plot_values": "plots",
    "FinetuneConfig": "settings",
    "run_finetune": "finetune",
    "get_device": "support.device",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"gptlib.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gptlib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
