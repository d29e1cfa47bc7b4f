"""Checks of assignment 1: the book's exercises 6.1-6.3, the head swap by hand, what trains.

Each check judges what it measures itself: student functions run on models the check
builds (gpt2-small on the meta device, small random models of other shapes), and runs are
verified by :func:`gptlib.assignments.verify.verified_run` before anything is read from them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import gptlib.classifier as classifier
import gptlib.finetune as finetune
import gptlib.speed.shared_base as base_models
from gptlib.assignments import inputs
from gptlib.assignments.channel import ReportedRun
from gptlib.assignments.feedback import fail, number, ok
from gptlib.assignments.profiles import active_profile
from gptlib.assignments.student import call
from gptlib.assignments.verify import verified_run
from gptlib.model import GPTModel, count_parameters, get_config

EXERCISE_61_MESSAGES = 200  # exercise 6.1 trains on the first 200 training messages (minutes, not 23)
BOOK_TRAINABLE = 7_090_946  # gpt2-small: the last block, the final norm and a 768 -> 2 head
HEAD_REFERENCES = (classifier.add_classification_head, classifier.set_trainable,
                   base_models.classifier_from_base, finetune.build_model)


def _profile():
    return active_profile("A01")


def _parts(model: nn.Module) -> dict[str, bool]:
    """Whether each part of a GPT classifier trains (any of its parameters)."""
    def trains(module: nn.Module) -> bool:
        return any(p.requires_grad for p in module.parameters())

    blocks = list(model.trf_blocks)
    return {"embeddings": trains(model.tok_emb) or trains(model.pos_emb),
            "lower blocks": any(trains(b) for b in blocks[:-1]), "last block": trains(blocks[-1]),
            "final norm": trains(model.final_norm), "head": trains(model.out_head)}


def _check_classifier(out: Any, base: nn.Module, num_classes: int, where: str) -> GPTModel:
    if out is None:
        fail(f"make_classifier returned None ({where}); return the classifier.")
    if out is base:
        fail(f"make_classifier changed the model it was given and returned it ({where}); work on a copy "
             "(copy.deepcopy(model)), so that base_model stays as it is for every other run.")
    if type(out) is not GPTModel:
        fail(f"make_classifier should return a GPTModel; got a {type(out).__name__} ({where}).")
    head = out.out_head
    emb = base.tok_emb.weight.shape[1]
    if type(head) is not nn.Linear:
        fail(f"the classifier's out_head should be a torch.nn.Linear layer; got a {type(head).__name__} ({where}).")
    if head.in_features != emb:
        fail(f"your head takes {head.in_features} inputs, but this model's embeddings have another width "
             f"({where}): read the width from the model (model.tok_emb.weight.shape[1]).")
    if head.out_features != num_classes:
        extra = " (that is still the language model's head)" if head.out_features == base.tok_emb.weight.shape[0] else ""
        fail(f"your head has {head.out_features} outputs{extra} ({where}); it needs one per class: "
             "use the num_classes argument.")
    parts = _parts(out)
    wrong = [f"the {p} {'train' if p in ('embeddings', 'lower blocks') else 'trains'}" for p in
             ("embeddings", "lower blocks") if parts[p]]
    wrong += [f"the {p} is frozen" for p in ("last block", "final norm", "head") if not parts[p]]
    if wrong:
        fail(f"in your classifier {', '.join(wrong)} ({where}). The book freezes every parameter, then "
             "makes the new head, the last transformer block and the final norm trainable.")
    partial = [n for n, p in out.named_parameters() if not p.requires_grad and
               (n.startswith(f"trf_blocks.{len(out.trf_blocks) - 1}.") or n.startswith(("final_norm.", "out_head.")))]
    if partial:
        fail(f"some parameters of the parts that should train are frozen, e.g. {partial[0]} ({where}).")
    return out


def _base_unchanged(base: nn.Module, before: dict[str, bool], where: str) -> None:
    if type(base.out_head) is not nn.Linear or base.out_head.out_features != base.tok_emb.weight.shape[0]:
        fail(f"make_classifier replaced the head of the model it was given ({where}); change only the copy.")
    now = {n: p.requires_grad for n, p in base.named_parameters()}
    if now != before:
        fail(f"make_classifier froze parameters of the model it was given ({where}); freeze the copy's.")


def make_classifier(make_classifier: Any) -> None:
    """``make_classifier(model, num_classes)``: the book's head swap and freezing, by hand."""
    big = inputs.meta_model()
    before = {n: p.requires_grad for n, p in big.named_parameters()}
    out = call(make_classifier, "make_classifier", big, 2, reference=HEAD_REFERENCES)
    _check_classifier(out, big, 2, "gpt2-small")
    _base_unchanged(big, before, "gpt2-small")
    trainable = count_parameters(out, trainable_only=True)
    if trainable != BOOK_TRAINABLE:
        fail(f"on gpt2-small your classifier has {trainable:,} trainable parameters; the parts that "
             "train are right, so look at the head's size and bias.")
    small = inputs.tiny_model(seed=11, context_length=96, emb_dim=48, n_layers=3, n_heads=3)
    weights = {k: v.clone() for k, v in small.state_dict().items()}
    before = {n: p.requires_grad for n, p in small.named_parameters()}
    clf = _check_classifier(call(make_classifier, "make_classifier", small, 3, reference=HEAD_REFERENCES),
                            small, 3, "a 3-block model with 48-wide embeddings and 3 classes")
    _base_unchanged(small, before, "the small model")
    if any(not torch.equal(weights[k], v) for k, v in small.state_dict().items()):
        fail("make_classifier changed the weights of the model it was given; only the copy gets a new head.")
    copied = clf.state_dict()
    if any(not torch.equal(weights[k].cpu(), copied[k].cpu()) for k in weights if not k.startswith("out_head.")):
        fail("the classifier's pretrained layers hold other weights than the model it was made from; "
             "copy the model (copy.deepcopy), do not build a new one.")
    ids = inputs.padded_batch(5, [7, 12, 4, 9])
    clf.train()
    loss = F.cross_entropy(clf(ids)[:, -1, :], torch.tensor([0, 1, 2, 1]))
    loss.backward()
    missing = [n for n, p in clf.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    leaked = [n for n, p in clf.named_parameters() if not p.requires_grad and p.grad is not None]
    if missing or leaked:
        fail(f"gradients should reach exactly the trainable tensors; {'none reached ' + missing[0] if missing else leaked[0] + ' got one'}.")
    ok(f"the head swap and freezing are the book's: {BOOK_TRAINABLE:,} trainable parameters on gpt2-small; "
       f"on a small 3-class model gradients reach exactly the {sum(p.requires_grad for p in clf.parameters())} "
       "trainable tensors, and the models you were given are unchanged.")


def context_length(context_length_of: Any) -> None:
    """``context_length_of(model)``: the longest input the model takes, read from the model."""
    cases = [(inputs.meta_model(), "gpt2-small"), (inputs.tiny_model(context_length=96), "a small model"),
             (inputs.tiny_model(seed=3, context_length=40, emb_dim=32, n_heads=2), "another small model"),
             (inputs.tiny_model(seed=4, context_length=inputs.rng(5).choice([n for n in range(12, 161) if n not in
                                                                             (40, 96)]),
                                emb_dim=16, n_heads=2, n_layers=1), "a third small model")]
    for model, where in cases:
        got = number(call(context_length_of, "context_length_of", model), "context_length_of(model)")
        want = model.pos_emb.weight.shape[0]
        if got == want:
            continue
        hint = ""
        if got == model.tok_emb.weight.shape[1]:
            hint = " That is the embedding width; the context length is the number of positions."
        elif got == model.tok_emb.weight.shape[0]:
            hint = " That is the vocabulary size; the context length is the number of positions."
        fail(f"context_length_of gives {got:g} for {where}, which is not its context length.{hint} "
             "Read it from the model: model.pos_emb has one row per position.")
    ok("context_length_of reads the context length from the model (1,024 for gpt2-small).")


def _base_numbers(baseline: Any) -> dict[str, dict[str, float]] | None:
    """The notebook's baseline numbers, for the report only (they decide nothing)."""
    acc, loss = getattr(baseline, "accuracy", None), getattr(baseline, "loss", None)
    if isinstance(acc, dict) and isinstance(loss, dict) and "train" in loss and "test" in acc:
        return {"accuracy": acc, "loss": loss}
    return None


def _versus(run: Any, baseline: Any, book: str, lower_loss: bool | None) -> str:
    """``training loss a -> b, test accuracy c -> d (the book's ...)``, with a note when the
    loss moved against what the book's run shows (the run itself was verified)."""
    base = _base_numbers(baseline)
    if base is None:
        return f"training loss {run.loss['train']:.3f}, test accuracy {run.accuracy['test']:.2%} (the book's: {book})"
    moved = run.loss["train"] - base["loss"]["train"]
    note = ""
    if lower_loss is not None and (moved < 0) != lower_loss:
        note = " Unlike the book's run, the training loss moved the other way: worth a sentence in your answer."
    return (f"training loss {base['loss']['train']:.3f} -> {run.loss['train']:.3f}, test accuracy "
            f"{base['accuracy']['test']:.2%} -> {run.accuracy['test']:.2%} (the book's bonus table: {book}).{note}")


def _pad_facts(dataset: Any) -> tuple[float, float]:
    """Share of messages whose last position is a pad, and the mean distance (tokens) from
    each message's last real token to the last position."""
    from gptlib.tokenizer import END_OF_TEXT_ID

    rows = [list(map(int, dataset[i][0])) for i in range(len(dataset))]
    gaps = []
    for row in rows:
        n = len(row)
        while n > 1 and row[n - 1] == END_OF_TEXT_ID:
            n -= 1
        gaps.append(len(row) - n)
    return sum(g > 0 for g in gaps) / max(len(rows), 1), sum(gaps) / max(len(rows), 1)


def run_61(run_61: Any, baseline_200: Any = None) -> None:
    """Exercise 6.1 trained: padded to the context length, on the first EXERCISE_61_MESSAGES
    training messages (grading it on all 1,045 would take about 45 CPU minutes per submission)."""
    profile = _profile()
    context = get_config(profile.model_size)["context_length"]
    run = verified_run(run_61, "run_61", profile, {"max_length": context, "train_limit": EXERCISE_61_MESSAGES},
                       hints={"max_length": "exercise 6.1 pads every message to the model's context length; pass "
                                            "max_length=context_length_of(base_model).",
                              "train_limit": "here exercise 6.1 trains on the first EXERCISE_61_MESSAGES training "
                                             "messages (train_limit=EXERCISE_61_MESSAGES)."})
    pads, distance = _pad_facts(run.loaders[0].dataset)
    ok(f"run_61 is padded to {context} tokens and verified: the check trained it again. Position -1 is a pad "
       f"token in {pads:.1%} of its {run.train_size} training messages, on average {distance:.0f} tokens after "
       f"the message's last real token. Against the baseline on the same messages: "
       f"{_versus(run, baseline_200, '95.00% -> 78.33%, on all 1,045 messages', lower_loss=False)}")


def run_62(run_62: Any, baseline: Any = None) -> None:
    """Exercise 6.2 trained: every layer trains; the embeddings move."""
    profile = _profile()
    run = verified_run(run_62, "run_62", profile, {"trainable": "all"}, hints={
        "trainable": "exercise 6.2 trains every parameter of the model (see the trainable setting)."})
    start = inputs_base_embeddings(profile)
    moved = (run.model.tok_emb.weight.detach().cpu() - start).norm().item()
    if not moved > 0:
        fail("the token embeddings of run_62's model did not move, so the lowest layers did not train.")
    ok(f"all {run.trainable_params:,} parameters trained (the token embeddings moved by {moved:.3g}); "
       f"{_versus(run, baseline, '95.00% -> 96.67%', lower_loss=True)}")


def inputs_base_embeddings(profile) -> torch.Tensor:
    """The token embeddings of the profile's model before any training."""
    return base_models.shared_base(profile.model_size, profile.weights, profile.seed, progress=False).tok_emb.weight.detach().cpu()


def run_63(run_63: Any, baseline: Any = None) -> None:
    """Exercise 6.3 trained: the first token read; answers depend on the first token only."""
    from gptlib.assignments.runner import collect_predictions

    profile = _profile()
    run = verified_run(run_63, "run_63", profile, {"token": "first"}, hints={
        "token": "exercise 6.3 reads the output at the first token (see run_experiment's token setting)."})
    test_loader = run.loaders[2]
    preds, _ = collect_predictions(test_loader, run.model, token="first")
    firsts = [int(ids[0]) for ids, _ in test_loader.dataset]
    answer_of: dict[int, int] = {}
    for first, pred in zip(firsts, preds):
        if answer_of.setdefault(first, pred) != pred:
            fail("two test messages with the same first token got different answers from run_63's model.")
    ok(f"the {len(preds)} test messages start with {len(answer_of)} different tokens, so this classifier "
       f"can give at most {len(answer_of)} different answers; {_versus(run, baseline, '95.00% -> 75.00%', None)}")


def _freeze_final_norm(model: nn.Module) -> nn.Module:
    """The checker's own version: the final norm stops training, nothing else changes."""
    for p in model.final_norm.parameters():
        p.requires_grad = False
    return model


def freeze_final_norm(freeze_final_norm: Any) -> None:
    """``freeze_final_norm(model)``: the final norm stops training; nothing else changes."""
    clf = inputs.tiny_classifier(seed=5, n_layers=3)
    before = {n: p.requires_grad for n, p in clf.named_parameters()}
    weights = {k: v.clone() for k, v in clf.state_dict().items()}
    out = call(freeze_final_norm, "freeze_final_norm", clf, reference=(classifier.set_trainable,))
    out = clf if out is None else out
    if not isinstance(out, GPTModel):
        fail(f"freeze_final_norm should return the model (or None); got a {type(out).__name__}.")
    now = {n: p.requires_grad for n, p in out.named_parameters()}
    still = [n for n in now if n.startswith("final_norm.") and now[n]]
    if still:
        fail(f"after freeze_final_norm, {still[0]} still trains; set requires_grad to False on every "
             "parameter of model.final_norm.")
    changed = [n for n in now if not n.startswith("final_norm.") and now[n] != before.get(n)]
    if changed:
        fail(f"freeze_final_norm also changed whether {changed[0]} trains; change only the final norm.")
    if any(not torch.equal(weights[k], v) for k, v in out.state_dict().items()):
        fail("freeze_final_norm changed weights; it should only stop the final norm from training.")
    ok("freeze_final_norm freezes the final norm and nothing else.")


def _final_norm_trains(run: Any) -> bool:
    if isinstance(run, ReportedRun):
        return run.trains("final_norm.")
    norm = getattr(getattr(run, "model", None), "final_norm", None)
    return isinstance(norm, nn.Module) and any(p.requires_grad for p in norm.parameters())


def what_trains(run_head: Any, run_no_norm: Any, baseline: Any = None) -> None:
    """Head only, and the last block without the final norm, beside the baseline."""
    profile = _profile()
    head = verified_run(run_head, "run_head", profile, {"trainable": "head"}, hints={
        "trainable": "run_head trains only the new output head (see the trainable setting)."})
    if _final_norm_trains(run_no_norm):
        fail("in run_no_norm's model the final norm still trains; pass adjust=freeze_final_norm.")
    no_norm = verified_run(run_no_norm, "run_no_norm", profile, adjust=_freeze_final_norm)
    rows = [("head only", head), ("last block, final norm frozen", no_norm)]
    base = _base_numbers(baseline)
    shown = "; ".join(f"{name}: {r.trainable_params:,} trainable, training loss {r.loss['train']:.3f}, "
                      f"validation accuracy {r.accuracy['validation']:.2%}" for name, r in rows)
    if base is not None:
        shown += f"; the baseline: training loss {base['loss']['train']:.3f}"
    ok(f"both runs verified (the check trained them again). {shown}.")


__all__ = ["EXERCISE_61_MESSAGES", "context_length", "freeze_final_norm", "make_classifier", "run_61", "run_62", "run_63", "what_trains"]
