"""gptlib: GPT-2 from scratch, fine-tuned as an SMS spam classifier (the book's Chapter 6).

The names follow the book, so a reader's code works with ours::

    from gptlib import GPTModel, get_tokenizer
    model = GPTModel.from_pretrained("gpt2-small (124M)")

Importing gptlib loads torch and tiktoken, never ipywidgets (that is ``gptlib.lab``'s panel).
"""

from gptlib.device import get_device
from gptlib.model import BASE_CONFIG, MODEL_CONFIGS, GPTModel, count_parameters, get_config
from gptlib.tokenizer import get_tokenizer
from gptlib.weights import load_pretrained  # registers GPTModel.from_pretrained's loader

__version__ = "0.1.0"

__all__ = [
    "BASE_CONFIG",
    "MODEL_CONFIGS",
    "GPTModel",
    "count_parameters",
    "get_config",
    "get_device",
    "get_tokenizer",
    "load_pretrained",
]
