"""Checks of assignment 2: the loop by hand, overfitting, dropout and weight decay."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

import gptlib.classifier as classifier
import gptlib.train as train
from gptlib.assignments import inputs, runner
from gptlib.assignments.feedback import close, fail, number, ok, plain_dict, plain_list
from gptlib.assignments.profiles import active_profile
from gptlib.assignments.student import call
from gptlib.assignments.verify import verified_run

TRAIN_MESSAGES = 200
SETTINGS = {"book": (0.0, 0.1), "dropout 0.3": (0.3, 0.1), "weight decay 10": (0.0, 10.0)}
ACCURACY_REFERENCES = (train.calc_accuracy_loader, train._predictions, train.classification_metrics,
                       runner.evaluate_loader, runner.collect_predictions)
LOOP_REFERENCES = (train.train_classifier_simple, *ACCURACY_REFERENCES)


def calc_accuracy_loader(calc_accuracy_loader: Any) -> None:
    """``calc_accuracy_loader(data_loader, model, device, num_batches=None)``, as the book's."""
    model = inputs.tiny_classifier(seed=4, drop_rate=0.8)  # dropout changes its answers a lot
    frame = inputs.messages(11, offset=20)
    for batch_size, num_batches in ((3, None), (3, 2), (4, 10), (5, 1)):
        loader = inputs.loader(frame, batch_size=batch_size)
        model.train()  # the book's function switches to eval mode itself
        want = train.calc_accuracy_loader(loader, copy.deepcopy(model), "cpu", num_batches)
        model.train()
        got = number(call(calc_accuracy_loader, "calc_accuracy_loader", loader, model, "cpu", num_batches,
                          reference=ACCURACY_REFERENCES), "calc_accuracy_loader(...)")
        if close(got, want, 1e-9):
            continue
        shown = f"calc_accuracy_loader(loader, model, device, num_batches={num_batches})"
        hint = ""
        if model.training:
            hint = " The model is still in training mode afterwards: call model.eval() first, so that dropout is off."
        elif num_batches is not None and close(got, train.calc_accuracy_loader(loader, model, "cpu"), 1e-9):
            hint = " It counts every batch; stop after the first num_batches batches (all when it is None)."
        elif 1 < got <= 100:
            hint = " Return a fraction between 0 and 1, not a percentage."
        else:
            for token in ("first", "mean"):
                if close(got, train.calc_accuracy_loader(loader, model, "cpu", num_batches, token=token), 1e-9):
                    hint = " Read the logits at the last token (logits[:, -1, :]), as the book does."
        fail(f"{shown} is not the share of correct predictions on a loader the check made "
             f"({len(frame)} messages, batches of {batch_size}).{hint}")
    ok("calc_accuracy_loader matches the book's on loaders it never saw, with and without num_batches.")


def train_epochs(train_epochs: Any) -> None:
    """``train_epochs(model, train_loader, val_loader, optimizer, device, num_epochs, eval_iter)``:
    the book's loop without the loss evaluations -> (train_accs, val_accs, examples_seen)."""
    start = inputs.tiny_classifier(seed=9, drop_rate=0.1)
    frame = inputs.messages(10, offset=40)
    train_loader = inputs.loader(frame, batch_size=3)
    val_loader = inputs.loader(inputs.messages(6, offset=60), batch_size=4)
    epochs, eval_iter = 2, 2

    def fresh():
        model = copy.deepcopy(start)
        return model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3, weight_decay=0.1)

    ref_model, ref_opt = fresh()
    torch.manual_seed(1)
    ref = train.train_classifier_simple(ref_model, train_loader, val_loader, ref_opt, "cpu", epochs,
                                        eval_freq=10**9, eval_iter=eval_iter, verbose=False)
    model, opt = fresh()
    torch.manual_seed(1)
    out = call(train_epochs, "train_epochs", model, train_loader, val_loader, opt, "cpu", epochs, eval_iter,
               reference=LOOP_REFERENCES)
    if type(out) not in (tuple, list) or len(out) != 3:
        fail("train_epochs should return three things: (train_accs, val_accs, examples_seen).")
    train_accs = [number(v, "train_accs[i]") for v in plain_list(out[0], "train_accs")]
    val_accs = [number(v, "val_accs[i]") for v in plain_list(out[1], "val_accs")]
    seen = number(out[2], "examples_seen")
    n, steps = len(frame), len(train_loader)
    if seen != ref[4]:
        hint = " Count messages, not batches: add input_batch.shape[0] after each step." if seen == epochs * steps else ""
        if seen == epochs * steps * train_loader.batch_size:
            hint = " The last batch is smaller than the others: add input_batch.shape[0], not the batch size."
        elif seen > epochs * n:
            hint = " Count messages (one label each), not tokens."
        fail(f"examples_seen is {seen:g} after {epochs} epochs over {n} messages in batches of "
             f"{train_loader.batch_size}; that is not the number of messages the model trained on.{hint}")
    if len(train_accs) != epochs or len(val_accs) != epochs:
        fail(f"train_epochs returned {len(train_accs)} training and {len(val_accs)} validation accuracies for "
             f"{epochs} epochs; measure both once after every epoch.")
    moved = any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), start.state_dict().values()))
    if not moved:
        fail("after train_epochs the model's weights are unchanged: call loss.backward() and optimizer.step() "
             "for every batch.")
    same = all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in
               zip(model.state_dict().values(), ref_model.state_dict().values()))
    if not same:
        fail("train_epochs trains, but not as the book's loop does: for every batch, optimizer.zero_grad(), "
             "the cross-entropy of the last token's logits, loss.backward(), optimizer.step(); and "
             "model.train() at the start of every epoch.")
    for label, got, want in (("training", train_accs, ref[2]), ("validation", val_accs, ref[3])):
        if not all(close(g, w, 1e-9) for g, w in zip(got, want)):
            fail(f"the {label} accuracies are not those of the model after each epoch: measure them with "
                 "your calc_accuracy_loader on eval_iter batches, after the epoch's last step.")
    ok(f"train_epochs is the book's loop: {ref[4]} examples seen in {epochs} epochs of {steps} batches, "
       "accuracy after each epoch, the same weights as train_classifier_simple.")


def with_dropout(with_dropout: Any) -> None:
    """``with_dropout(model, rate)``: a copy whose every dropout layer has ``p == rate``."""
    model = inputs.tiny_model(seed=4, n_layers=3)
    count = sum(isinstance(m, nn.Dropout) for m in model.modules())
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    for rate in (0.25, 0.0, 0.6, round(inputs.rng(1).uniform(0.05, 0.9), 3)):
        out = call(with_dropout, "with_dropout", model, rate, reference=(classifier.set_dropout,))
        if out is None:
            fail("with_dropout returned None; return the new model.")
        if out is model:
            fail("with_dropout changed the model it was given and returned it; work on a copy "
                 "(copy.deepcopy(model)), so that every run starts from the same model.")
        if not isinstance(out, nn.Module):
            fail(f"with_dropout should return a model; got a {type(out).__name__}.")
        wrong = [n for n, m in out.named_modules() if isinstance(m, nn.Dropout) and m.p != rate]
        if wrong:
            fail(f"with_dropout(model, {rate}) left {len(wrong)} of {count} dropout layers at another rate, "
                 f"e.g. {wrong[0]}; set p on every torch.nn.Dropout module (model.modules() visits them all).")
        if any(m.p != 0.0 for m in model.modules() if isinstance(m, nn.Dropout)):
            fail("with_dropout changed the dropout of the model it was given; change only the copy.")
        if any(not torch.equal(weights[k], v) for k, v in out.state_dict().items()):
            fail("the model with_dropout returned has other weights; only the dropout rates should change.")
    ok(f"with_dropout sets all {count} dropout layers of a copy and leaves the model it was given unchanged.")


def decay_shrink(decay_shrink: Any) -> None:
    """``decay_shrink(lr, weight_decay, steps)``: the factor AdamW's decay alone leaves of a weight."""
    g = inputs.rng(2)
    drawn = (round(g.uniform(1e-4, 0.05), 5), round(g.uniform(0.01, 5.0), 3), g.randint(2, 400))
    for lr, wd, steps in ((5e-5, 0.1, 650), (0.1, 0.5, 10), (1e-3, 0.0, 100), (0.01, 2.0, 30), (0.02, 3.0, 7), drawn):
        got = number(call(decay_shrink, "decay_shrink", lr, wd, steps), f"decay_shrink({lr}, {wd}, {steps})")
        want = (1 - lr * wd) ** steps
        if close(got, want, 1e-9):
            continue
        hint = ""
        if close(got, 1 - lr * wd * steps, 1e-9):
            hint = (" That is a straight-line guess (as if each step removed the same amount); the shrink "
                    "compounds, because each step removes a share of what is left.")
        elif close(got, (1 - wd) ** steps, 1e-9):
            hint = " The learning rate is missing: AdamW scales the decay by lr."
        elif close(got, 1 - want, 1e-9):
            hint = " That is how much is removed; return the factor that remains."
        fail(f"decay_shrink({lr}, {wd}, {steps}) returned {got:.6g}, which is not the factor that remains."
             f"{hint}")
    ok(f"decay_shrink is right: at the book's settings (lr 5e-5, weight decay 0.1, 650 steps) weight decay "
       f"alone keeps {(1 - 5e-6) ** 650:.4%} of each weight.")


def _trainable_norm(model: nn.Module) -> float:
    return math.sqrt(sum(p.detach().float().pow(2).sum().item() for p in model.parameters() if p.requires_grad))


def regularisation_runs(runs: Any) -> None:
    """One verified run per entry of the assignment's SETTINGS; strong decay shrinks the weights."""
    runs = plain_dict(runs, "runs", "from each name of SETTINGS to its run") if runs is not None else \
        fail("`runs` is still None: make one run_experiment(...) per entry of SETTINGS.")
    missing = [k for k in SETTINGS if runs.get(k) is None]
    if missing:
        fail(f"`runs` has no run for {missing}; make one run per entry of SETTINGS, named as there.")
    profile = active_profile("A02")
    checked = {}
    for name, (drop, wd) in SETTINGS.items():
        checked[name] = verified_run(runs[name], f"runs[{name!r}]", profile, {
            "train_limit": TRAIN_MESSAGES, "drop_rate": drop, "weight_decay": wd}, hints={
            "drop_rate": "use the dropout rate SETTINGS gives for this name (drop_rate=...).",
            "weight_decay": "use the weight decay SETTINGS gives for this name (weight_decay=...).",
            "train_limit": "train on the first TRAIN_MESSAGES messages (train_limit=TRAIN_MESSAGES)."})
    low, high = checked["book"], checked["weight decay 10"]
    ratio = _trainable_norm(high.model) / _trainable_norm(low.model)
    if not ratio < 1:
        fail("the trained weights of 'weight decay 10' are not smaller than those of 'book'.")
    steps = low.examples_seen // max(low.config["batch_size"], 1)
    predicted = ((1 - high.config["lr"] * 10.0) / (1 - low.config["lr"] * 0.1)) ** steps
    ok(f"{len(SETTINGS)} runs with the asked settings, each trained again by the check; the trainable weights "
       f"of 'weight decay 10' are {ratio:.2%} the size of those of 'book' (decay alone predicts "
       f"{predicted:.2%} over {steps} steps).")


def train_val_gaps(train_val_gaps: Any) -> None:
    """``train_val_gaps(run) -> (accuracy_gap, loss_gap)`` from a run's final numbers."""
    cases = [({"train": 0.96, "validation": 0.9, "test": 0.88}, {"train": 0.12, "validation": 0.31, "test": 0.3},
              [0.7, 1.0], [0.6, 0.8]),
             ({"train": 0.75, "validation": 0.8, "test": 0.7}, {"train": 0.5, "validation": 0.45, "test": 0.6},
              [0.7, 0.7], [0.9, 0.5])]
    g = inputs.rng(3)
    drawn = [round(g.uniform(0.5, 1.0), 4) for _ in range(6)]
    cases.append((dict(zip(("train", "validation", "test"), drawn[:3])), dict(zip(("train", "validation", "test"),
                  drawn[3:])), [0.6, drawn[0] - 0.1], [0.5, drawn[1] + 0.05]))
    for acc, loss, train_accs, val_accs in cases:
        run = SimpleNamespace(accuracy=dict(acc), loss=dict(loss), train_accs=list(train_accs), val_accs=list(val_accs))
        out = call(train_val_gaps, "train_val_gaps", run)
        if type(out) not in (tuple, list) or len(out) != 2:
            fail("train_val_gaps should return two numbers: (accuracy_gap, loss_gap).")
        got_acc, got_loss = number(out[0], "accuracy_gap"), number(out[1], "loss_gap")
        for label, got, first, second, table, curve in (
                ("accuracy gap", got_acc, "train", "validation", acc, train_accs[-1] - val_accs[-1]),
                ("loss gap", got_loss, "validation", "train", loss, None)):
            want = table[first] - table[second]
            if close(got, want, 1e-9):
                continue
            hint = ""
            if close(got, -want, 1e-9):
                hint = f" The sign is reversed: take {first} minus {second}."
            elif close(got, 100 * want, 1e-9):
                hint = " Give fractions, as run.accuracy holds them, not percentage points."
            elif curve is not None and close(got, curve, 1e-9):
                hint = (" That uses the last point of the curves, measured on a few batches; use the final "
                        "numbers on the whole splits (run.accuracy, run.loss).")
            fail(f"the {label} is {got:.4f} for a run the check made up, which is not {first} minus "
                 f"{second} of its final numbers.{hint}")
    ok("train_val_gaps takes the final train and validation numbers, with the right signs.")


def best_step(best_step: Any) -> None:
    """``best_step(val_losses, eval_freq)``: the optimizer step with the lowest validation loss."""
    g = inputs.rng(4)
    drawn = ([round(g.uniform(0.1, 1.0), 4) for _ in range(g.randint(3, 9))], g.randint(2, 60))
    for losses, freq in (([0.9, 0.7, 0.5, 0.6, 0.8], 10), ([0.8, 0.6, 0.61, 0.4, 0.45], 50), ([0.3, 0.5], 7), drawn):
        got = number(call(best_step, "best_step", list(losses), freq), "best_step(...)")
        index = min(range(len(losses)), key=losses.__getitem__)
        if got == index * freq:
            continue
        hint = ""
        if got == index:
            hint = " That is the index of the evaluation; evaluations happen every eval_freq steps, starting at step 0."
        elif got == (index + 1) * freq:
            hint = " Off by one evaluation: the first evaluation is at step 0."
        elif got == max(range(len(losses)), key=losses.__getitem__) * freq:
            hint = " That is the highest validation loss; look for the lowest."
        fail(f"best_step({losses}, {freq}) returned {got:g}, which is not the step of the lowest loss.{hint}")
    ok("best_step reads the step of the lowest validation loss from a curve.")


__all__ = ["SETTINGS", "TRAIN_MESSAGES", "best_step", "calc_accuracy_loader", "decay_shrink",
           "regularisation_runs", "train_epochs", "train_val_gaps", "with_dropout"]
