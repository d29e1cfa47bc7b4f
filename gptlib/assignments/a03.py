"""Checks of assignment 3: padding, the position that is read, and the loss by hand."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import gptlib.classifier as classifier
import gptlib.speed.plan as plan
import gptlib.train as train
from gptlib.assignments import inputs
from gptlib.assignments.feedback import close, fail, number, ok, plain_list, plain_tensor
from gptlib.assignments.profiles import active_profile
from gptlib.assignments.student import call
from gptlib.assignments.verify import verified_run

PAD = inputs.PAD_ID
LAST_REAL_REFERENCES = (classifier.last_real_index, classifier.select_token_logits, plan.row_lengths)
LOSS_REFERENCES = (F.cross_entropy, F.nll_loss, nn.CrossEntropyLoss, nn.NLLLoss, train.calc_loss_batch,
                   train.calc_loss_loader)


def _fraction_hint(got: float, want: float, complement: str) -> str:
    if close(got, 1 - want, 1e-9) and not close(want, 0.5, 1e-9):
        return " " + complement
    if close(got, 100 * want, 1e-9) and want:
        return " Give a fraction between 0 and 1, not a percentage."
    return ""


def pad_share(pad_share: Any) -> None:
    """``pad_share(dataset, pad_token_id)``: the share of messages whose last position is a pad."""
    frame = inputs.messages(30, offset=5)
    shortest = min(len(ids) for ids in inputs.dataset(frame).token_ids)
    cases = [(inputs.dataset(frame), "padded to the longest message"),
             (inputs.dataset(frame, max_length=40), "padded to 40 tokens"),
             (inputs.dataset(frame, max_length=shortest), "cut to the shortest message"),
             (inputs.dataset(frame, padding="batch"), "not padded (per-batch padding)")]
    for ds, how in cases:
        got = number(call(pad_share, "pad_share", ds, PAD), "pad_share(dataset, pad_token_id)")
        rows = [ds[i][0].tolist() for i in range(len(ds))]
        want = sum(r[-1] == PAD for r in rows) / len(rows)
        if close(got, want, 1e-9):
            continue
        hint = _fraction_hint(got, want, "That is the share that ends with a real token.")
        fail(f"pad_share is {got:.4f} for {len(rows)} messages {how}, which is not the share whose last "
             f"position holds the pad token.{hint} (dataset[i] is a pair (token ids, label).)")
    ok("pad_share is right on datasets the check made, padded in four ways.")


def last_real_positions(last_real_positions: Any) -> None:
    """``last_real_positions(input_ids, pad_token_id)``: each row's last non-pad position."""
    cases = [(inputs.padded_batch(1, [3, 5, 1], width=6), PAD), (inputs.padded_batch(2, [4, 4]), PAD),
             (inputs.padded_batch(3, [1, 7, 2, 7]), PAD), (inputs.padded_batch(4, [2, 6, 3], pad=0), 0)]
    g = inputs.rng(10)
    lengths = [g.randint(1, 12) for _ in range(g.randint(2, 6))]
    cases.append((inputs.padded_batch(5, lengths, width=max(lengths) + g.randint(0, 3)), PAD))
    for ids, pad in cases:
        got = plain_list(call(last_real_positions, "last_real_positions", ids.clone(), pad,
                              reference=LAST_REAL_REFERENCES), "last_real_positions(...)")
        got = [int(number(v, "a position")) for v in got]
        if len(got) != ids.shape[0]:
            fail(f"for input ids of shape {tuple(ids.shape)} you returned {len(got)} value(s); return one "
                 "position per row.")
        for row, g in zip(ids.tolist(), got):
            w = max(i for i, t in enumerate(row) if t != pad) if any(t != pad for t in row) else 0
            if g == w:
                continue
            hint = ""
            if pad != PAD and g == max(i for i, t in enumerate(row) if t != PAD):
                hint = " Use the pad_token_id argument, not a fixed 50256."
            elif g == len(row) - 1:
                hint = " That is the last position, which is a pad token whenever the message is shorter."
            elif g == w + 1:
                hint = " That is the first pad position (the length); subtract one."
            fail(f"for a row of {len(row)} ids (pad id {pad}) you returned {g}, which is not its last real "
                 f"token's position.{hint}")
    ok("last_real_positions finds the last real token, with and without padding, for any pad id.")


def position_runs(run_last_real: Any, run_batch: Any, baseline: Any = None) -> None:
    """Reading the last real token; per-batch padding gives the same results."""
    profile = active_profile("A03")
    a = verified_run(run_last_real, "run_last_real", profile, {"token": "last_real"}, hints={
        "token": "run_last_real reads the last real token of each message (see the token setting).",
        "padding": "run_last_real keeps the book's padding; only the token read changes."})
    b = verified_run(run_batch, "run_batch", profile, {"token": "last_real", "padding": "batch"}, hints={
        "token": "run_batch reads the last real token too: with per-batch padding position -1 is still "
                 "a pad token for all but the longest message of a batch.",
        "padding": "run_batch pads each batch only to its own longest message (see the padding setting)."})
    for split in ("train", "validation", "test"):
        if abs(a.loss[split] - b.loss[split]) > 1e-3 + 1e-3 * abs(a.loss[split]):
            fail(f"run_batch and run_last_real should agree (the pads come after the token read, and the "
                 f"causal mask hides them), but their {split} losses differ.")
    base = getattr(baseline, "loss", None)
    versus = f"{base['train']:.3f} -> " if isinstance(base, dict) and "train" in base else ""
    ok(f"both runs verified (the check trained them again). Last real token: training loss {versus}"
       f"{a.loss['train']:.3f}; per-batch padding gives the same results ({a.seconds:.1f} s vs "
       f"{b.seconds:.1f} s when the check trained them).")


def _loss_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(inputs.random_logits(s, rows, k), inputs.random_targets(s, rows, k))
            for s, rows, k in ((1, 5, 2), (2, 7, 3), (3, 4, 2), (4, 6, 5))] + \
        [(torch.tensor([[3.0, -1.0], [0.2, 0.1]]), torch.tensor([1, 0]))]


def _loss_value(out: Any, name: str) -> torch.Tensor:
    value = plain_tensor(out, name) if type(out) is torch.Tensor else None
    if value is None:
        number(out, name)  # a plain number: say it should be a tensor
        fail(f"{name} returned a number; return the loss as a tensor (no .item()), so that it can be "
             "backpropagated.")
    if value.numel() != 1:
        fail(f"{name} returned a tensor of shape {tuple(value.shape)}; the loss is one number: the mean "
             "over the rows.")
    return out


def cross_entropy_by_hand(cross_entropy_by_hand: Any) -> None:
    """``cross_entropy_by_hand(logits, targets)``: log-softmax, then the mean negative log-likelihood."""
    for logits, targets in _loss_cases():
        z = logits.clone().requires_grad_(True)
        got = _loss_value(call(cross_entropy_by_hand, "cross_entropy_by_hand", z, targets.clone(),
                               reference=LOSS_REFERENCES), "cross_entropy_by_hand")
        want = F.cross_entropy(logits, targets)
        value = got.detach().float()
        if not torch.allclose(value, want, atol=1e-5, rtol=1e-5):
            logp = torch.log_softmax(logits, dim=-1)
            picked = logp[torch.arange(len(targets)), targets]
            hint = ""
            if torch.allclose(value, -picked.sum(), atol=1e-5):
                hint = " That is the sum over the rows; take the mean, as cross-entropy does."
            elif torch.allclose(value, picked.mean(), atol=1e-5):
                hint = " The sign is wrong: the loss is the *negative* log-probability of the target."
            elif torch.allclose(value, -torch.softmax(logits, -1)[torch.arange(len(targets)), targets].mean(), atol=1e-5):
                hint = " That uses probabilities; take the log-softmax first."
            elif torch.allclose(value, -logp[:, 0].mean(), atol=1e-5) or torch.allclose(value, -logp.mean(), atol=1e-5):
                hint = " Pick each row's log-probability at its target class (gather, or indexing with targets)."
            fail(f"cross_entropy_by_hand is not the cross-entropy on {tuple(logits.shape)} logits the check "
                 f"made.{hint}")
        if not got.requires_grad:
            fail("cross_entropy_by_hand's result carries no gradient: compute it with torch operations on "
                 "the logits (no .item(), no numpy), so that loss.backward() works.")
        got.backward()
        check = logits.clone().requires_grad_(True)
        F.cross_entropy(check, targets).backward()
        if z.grad is None or not torch.allclose(z.grad, check.grad, atol=1e-5):
            fail("cross_entropy_by_hand has the right value but not the right gradient; compute it from the "
                 "logits with torch operations only.")
    ok("cross_entropy_by_hand equals F.cross_entropy, value and gradient: log-softmax plus the mean "
       "negative log-likelihood.")


def nll_of_softmax(nll_of_softmax: Any) -> None:
    """``nll_of_softmax(logits, targets)``: the common mistake, F.nll_loss on probabilities."""
    for logits, targets in _loss_cases():
        got = _loss_value(call(nll_of_softmax, "nll_of_softmax", logits.clone(), targets.clone(),
                               reference=(F.cross_entropy, nn.CrossEntropyLoss)), "nll_of_softmax").detach()
        probs = torch.softmax(logits, dim=-1)
        want = -probs[torch.arange(len(targets)), targets].mean()
        if torch.allclose(got.float(), want, atol=1e-5):
            continue
        hint = ""
        if torch.allclose(got.float(), F.cross_entropy(logits, targets), atol=1e-5):
            hint = " That is the right loss; this task computes the mistake: F.nll_loss on softmax probabilities."
        fail(f"nll_of_softmax is not what F.nll_loss gives on the softmax probabilities.{hint}")
    z, y = torch.tensor([[3.0, -1.0]]), torch.tensor([1])
    wrong = -torch.softmax(z, -1)[0, 1].item()
    ok(f"nll_of_softmax shows the mistake: for logits [3, -1] and target 1 (confident and wrong) "
       f"cross-entropy is {F.cross_entropy(z, y).item():.3f}, F.nll_loss on probabilities only {wrong:.3f}: it "
       "negates the probability instead of taking its log.")


def one_logit_loss(one_logit_loss: Any) -> None:
    """``one_logit_loss(logits, targets)``: BCEWithLogitsLoss on ``z_spam - z_ham``."""
    refs = (*LOSS_REFERENCES, F.log_softmax, torch.log_softmax, torch.softmax, F.softmax)
    for logits, targets in [c for c in _loss_cases() if c[0].shape[1] == 2]:
        got = _loss_value(call(one_logit_loss, "one_logit_loss", logits.clone(), targets.clone(), reference=refs),
                          "one_logit_loss").detach().float()
        want = F.cross_entropy(logits, targets)
        if torch.allclose(got, want, atol=1e-5):
            continue
        flipped = F.binary_cross_entropy_with_logits(logits[:, 0] - logits[:, 1], targets.float())
        hint = " The single logit is z_spam - z_ham (column 1 minus column 0)." if \
            torch.allclose(got, flipped, atol=1e-5) else ""
        fail(f"one_logit_loss is not the two-logit cross-entropy on {tuple(logits.shape)} logits the check "
             f"made.{hint} Use torch.nn.BCEWithLogitsLoss on one logit per row, with float targets.")
    ok("one logit z_spam - z_ham with BCEWithLogitsLoss gives exactly the two-logit cross-entropy: "
       "softmax over two logits is the sigmoid of their difference.")


__all__ = ["cross_entropy_by_hand", "last_real_positions", "nll_of_softmax", "one_logit_loss", "pad_share",
           "position_runs"]
