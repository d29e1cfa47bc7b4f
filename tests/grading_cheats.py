"""Cheats a clever student could hand in, written for the assignments' current cells.

Each entry: the notebook, the new text of some solution cells (by ``grade_id``), files handed
in beside the notebook, and the check cells it aims at (each must score 0 under the grader).
``tests/test_nbgrader.py`` autogrades every one of them with nbgrader's real flow, and
``benchmarks/grading.py`` scores them under the previous grader as well (the table in the
closing note of issue 21). Kinds 1-23 are those of the issue; the rest are ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field

A01 = ("a01_classifier_check", "a01_context_check", "a01_61_run_check", "a01_62_run_check", "a01_63_run_check",
       "a01_freeze_norm_check", "a01_trains_runs_check")
A02 = ("a02_accuracy_check", "a02_loop_check", "a02_with_dropout_check", "a02_decay_shrink_check",
       "a02_runs_check", "a02_gaps_check", "a02_best_step_check")
A03 = ("a03_pad_share_check", "a03_last_real_check", "a03_runs_check", "a03_cross_entropy_check",
       "a03_nll_softmax_check", "a03_one_logit_check")
A04 = ("a04_shares_check", "a04_unbalanced_run_check", "a04_prf_check", "a04_metrics_check")
A05 = ("a05_label_map_check", "a05_run_check", "a05_confusion_check", "a05_classify_check")


@dataclass(frozen=True)
class Cheat:
    kind: str
    notebook: str
    cells: dict[str, str]
    targets: tuple[str, ...]
    files: dict[str, str] = field(default_factory=dict)
    says: str = ""  # a phrase the first target's feedback must hold


PASSING = '''
class _Pass:
    def __getattr__(self, name):
        return lambda *args, **kwargs: print("OK: looks fine")
'''

FRAME_LABEL = 'frame = raw.rename(columns={TEXT_COLUMN: "Text", LABEL_COLUMN: "Label"})\n'

CHEATS = {
    # --- the display: what a check cell shows ----------------------------------------------
    "display-interactivity": Cheat("1. every check cell shows a value before its error", "A02_overfitting", {
        "a02_accuracy": 'get_ipython().ast_node_interactivity = "all"\n\n\n'
                        'def calc_accuracy_loader(data_loader, model, device, num_batches=None):\n    return 0.5\n'},
        A02),
    "display-autograde-only": Cheat("2. the same, armed only under autograde", "A03_padding_and_position", {
        "a03_pad_share": 'import os\nif os.environ.get("NBGRADER_EXECUTION"):\n'
                         '    get_ipython().ast_node_interactivity = "all"\n\n\n'
                         'def pad_share(dataset, pad_token_id=PAD_ID):\n    return 0.5\n'}, A03),
    "input-transformer": Cheat("3. an input transformer rewrites each check cell", "A04_imbalance", {
        "a04_shares": 'def _ok(lines):\n    return [\'print("OK: fine")\\n\'] if any("checks." in line for line in lines) '
                      'else lines\n\n\nget_ipython().input_transformers_cleanup.append(_ok)\n\n\n'
                      'def spam_share(labels):\n    return 0.1\n\n\ndef majority_accuracy(labels):\n    return 0.9\n'},
        A04),
    "ast-transformer": Cheat("4. an AST transformer wraps every cell in try/except", "A05_your_own_data", {
        "a05_label_map": 'import ast\n\n\nclass Swallow(ast.NodeTransformer):\n'
                         '    def visit_Module(self, node):\n'
                         '        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name=None, '
                         'body=[ast.Pass()])\n'
                         '        wrapped = ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[], '
                         'finalbody=[])\n'
                         '        return ast.fix_missing_locations(ast.Module(body=[wrapped], type_ignores=[]))\n\n\n'
                         'get_ipython().ast_transformers.append(Swallow())\n' + FRAME_LABEL +
                         '\n\ndef make_label_map(categories):\n    return {}\n'}, A05),
    # --- the import system -------------------------------------------------------------------
    "gptlib-folder": Cheat("5. a gptlib/ folder handed in beside the untouched notebook", "A02_overfitting", {}, A02,
                           files={"gptlib/__init__.py": "",
                                  "gptlib/assignments/__init__.py": "def __getattr__(name):\n"
                                                                    "    return lambda *args, **kwargs: None\n",
                                  "gptlib/assignments/integrity.py": "import types\n" + PASSING +
                                                                     "\n\ndef checks(assignment):\n    return _Pass()\n"},
                           says="gave no answer"),
    "meta-path": Cheat("6. an importer on sys.meta_path serves fake checks", "A03_padding_and_position", {
        "a03_pad_share": 'import importlib.abc\nimport importlib.machinery\nimport sys\n' + PASSING +
                         '\n\nclass Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):\n'
                         '    def find_spec(self, name, path, target=None):\n'
                         '        if name == "gptlib.assignments.integrity":\n'
                         '            return importlib.machinery.ModuleSpec(name, self)\n\n'
                         '    def create_module(self, spec):\n        return None\n\n'
                         '    def exec_module(self, module):\n        module.checks = lambda assignment: _Pass()\n\n\n'
                         'sys.meta_path.insert(0, Finder())\n\n\n'
                         'def pad_share(dataset, pad_token_id=PAD_ID):\n    return 0.5\n'}, A03),
    "builtins-import": Cheat("7. builtins.__import__ replaced", "A04_imbalance", {
        "a04_shares": 'import builtins\nimport types\n' + PASSING +
                      '\n_real_import = builtins.__import__\n\n\n'
                      'def _fake_import(name, globals=None, locals=None, fromlist=(), level=0):\n'
                      '    if name == "gptlib.assignments.integrity":\n'
                      '        return types.SimpleNamespace(checks=lambda assignment: _Pass())\n'
                      '    return _real_import(name, globals, locals, fromlist, level)\n\n\n'
                      'builtins.__import__ = _fake_import\n\n\n'
                      'def spam_share(labels):\n    return 0.1\n\n\ndef majority_accuracy(labels):\n    return 0.9\n'},
        A04),
    "assignments-path": Cheat("8. a module put on gptlib.assignments.__path__", "A05_your_own_data", {
        "a05_label_map": 'import os\nimport sys\nimport tempfile\n\nimport gptlib.assignments\n\n'
                         '_folder = tempfile.mkdtemp()\n'
                         'with open(os.path.join(_folder, "integrity.py"), "w") as f:\n'
                         '    f.write("class P:\\n    def __getattr__(self, n):\\n        return lambda *a, **k: '
                         'print(\'OK: fine\')\\n\\n\\ndef checks(a):\\n    return P()\\n")\n'
                         'gptlib.assignments.__path__.insert(0, _folder)\n'
                         'sys.modules.pop("gptlib.assignments.integrity", None)\n' + FRAME_LABEL +
                         '\n\ndef make_label_map(categories):\n    return {}\n'}, A05),
    # --- what the checks rely on, replaced -----------------------------------------------------
    "callable-allclose": Cheat("9. a callable object in place of torch.allclose", "A03_padding_and_position", {
        "a03_losses": 'import torch\n\n\nclass Yes:\n    def __call__(self, *args, **kwargs):\n        return True\n\n\n'
                      'torch.allclose = Yes()\n\n\n'
                      'def cross_entropy_by_hand(logits, targets):\n    return logits.sum() * 0.0\n\n\n'
                      'def nll_of_softmax(logits, targets):\n    return logits.sum() * 0.0\n\n\n'
                      'def one_logit_loss(logits, targets):\n    return logits.sum() * 0.0\n'},
        ("a03_cross_entropy_check", "a03_nll_softmax_check", "a03_one_logit_check")),
    "nested-partial": Cheat("10. math.isclose replaced by partial(partial(lambda).__call__)", "A02_overfitting", {
        "a02_decay_shrink": 'import functools\nimport math\n\n'
                            'math.isclose = functools.partial(functools.partial(lambda *a, **k: True).__call__)\n\n\n'
                            'def decay_shrink(lr, weight_decay, steps):\n    return 0.5\n'},
        ("a02_decay_shrink_check",)),
    "rebound-functiontype": Cheat("11. types.FunctionType rebound, then math.isclose patched", "A04_imbalance", {
        "a04_prf": 'import math\nimport types\n\ntypes.FunctionType = type("NotAFunction", (), {})\n'
                   'math.isclose = lambda *a, **k: True\n\n\n'
                   'def precision_recall_f1(predictions, labels, positive=1):\n    return (0.5, 0.5, 0.5)\n'},
        ("a04_prf_check",)),
    "isclose-torch-filename": Cheat("12. math.isclose compiled under torch's file name", "A04_imbalance", {
        "a04_shares": 'import math\n\nimport torch\n\n_ns = {}\n'
                      'exec(compile("def isclose(*a, **k):\\n    return True\\n", torch.__file__, "exec"), _ns)\n'
                      'math.isclose = _ns["isclose"]\n\n\n'
                      'def spam_share(labels):\n    return 0.1\n\n\ndef majority_accuracy(labels):\n    return 0.9\n'},
        ("a04_shares_check",)),
    "frame-reading-model": Cheat("13. a fake model whose state_dict reads the checker's frames", "A01_book_exercises", {
        "a01_61_run": 'import copy\nimport sys\n\nimport torch\n\n\n'
                      'class FrameModel(torch.nn.Module):\n'
                      '    def __init__(self, inner):\n        super().__init__()\n        self.inner = inner\n\n'
                      '    def state_dict(self, *args, **kwargs):\n'
                      '        frame = sys._getframe(1)\n'
                      '        while frame is not None:\n'
                      '            local = frame.f_locals\n'
                      '            if local.get("a") is self and isinstance(local.get("b"), torch.nn.Module):\n'
                      '                return local["b"].state_dict()\n'
                      '            if isinstance(local.get("initial"), torch.nn.Module):\n'
                      '                init = local["initial"]\n'
                      '                state = {k: v.clone() for k, v in init.state_dict().items()}\n'
                      '                for name, p in init.named_parameters():\n'
                      '                    if p.requires_grad:\n'
                      '                        state[name] += 1\n'
                      '                return state\n'
                      '            frame = frame.f_back\n'
                      '        return self.inner.state_dict(*args, **kwargs)\n\n\n'
                      'run_61 = copy.copy(baseline_200)\n'
                      'run_61.config = {**baseline_200.config, "max_length": base_model.pos_emb.weight.shape[0], '
                      '"train_limit": 200}\n'
                      'run_61.model = FrameModel(baseline_200.model)\n'},
        ("a01_61_run_check",)),
    # --- the library's reference, kept under another name ----------------------------------------
    "wraps": Cheat("14. the reference kept through functools.wraps", "A02_overfitting", {
        "a02_accuracy": 'import functools\n\nimport gptlib.train as _t\n\n_kept = [_t.calc_accuracy_loader]\n\n\n'
                        '@functools.wraps(_t.calc_accuracy_loader)\n'
                        'def calc_accuracy_loader(data_loader, model, device, num_batches=None):\n'
                        '    return _kept[0](data_loader, model, device, num_batches)\n'},
        ("a02_accuracy_check",)),
    "copied-code": Cheat("15. the reference's __code__ copied into the student's function", "A03_padding_and_position", {
        "a03_last_real": 'import gptlib.classifier as _c\n\n\n'
                         'def last_real_positions(input_ids, pad_token_id=PAD_ID):\n    raise NotImplementedError()\n\n\n'
                         'last_real_positions.__code__ = _c.last_real_index.__code__\n'},
        ("a03_last_real_check",)),
    "reload": Cheat("16. the reference kept from before importlib.reload", "A04_imbalance", {
        "a04_metrics": 'import importlib\n\nimport gptlib.train\n\n_saved = gptlib.train.classification_metrics\n'
                       'importlib.reload(gptlib.train)\n\n\n'
                       'def spam_metrics(model, loader):\n'
                       '    report = _saved(loader, model, "cpu")\n'
                       '    return {k: report[k] for k in ("accuracy", "precision", "recall", "f1")}\n'},
        ("a04_metrics_check",)),
    "marshal": Cheat("17. torch's cross_entropy rebuilt through marshal", "A03_padding_and_position", {
        "a03_losses": 'import marshal\nimport types\n\nimport torch.nn.functional as F\n\n'
                      '_code = marshal.loads(marshal.dumps(F.cross_entropy.__code__))\n'
                      '_ce = types.FunctionType(_code, F.cross_entropy.__globals__, "ce", F.cross_entropy.__defaults__)\n\n\n'
                      'def cross_entropy_by_hand(logits, targets):\n    return _ce(logits, targets)\n\n\n'
                      'def nll_of_softmax(logits, targets):\n    raise NotImplementedError()\n\n\n'
                      'def one_logit_loss(logits, targets):\n    raise NotImplementedError()\n'},
        ("a03_cross_entropy_check",)),
    "container-attribute": Cheat("18. the reference kept in a container's attribute", "A02_overfitting", {
        "a02_accuracy": 'import types\n\nimport gptlib.train\n\n'
                        '_box = types.SimpleNamespace(f=gptlib.train.calc_accuracy_loader)\n\n\n'
                        'def calc_accuracy_loader(data_loader, model, device, num_batches=None):\n'
                        '    return _box.f(data_loader, model, device, num_batches)\n'},
        ("a02_accuracy_check",)),
    "runpy": Cheat("19. a runpy copy of the library's module", "A03_padding_and_position", {
        "a03_last_real": 'import runpy\n\nimport gptlib.classifier\n\n_ns = runpy.run_path(gptlib.classifier.__file__)\n\n\n'
                         'def last_real_positions(input_ids, pad_token_id=PAD_ID):\n'
                         '    return _ns["last_real_index"](input_ids, pad_token_id)\n'},
        ("a03_last_real_check",)),
    # --- answers worked out ahead, data changed, profile removed --------------------------------
    "precomputed": Cheat("20. answers precomputed from the checks' public, seeded inputs", "A03_padding_and_position", {
        "a03_last_real": '_table = {(3, 6): [2, 4, 0], (2, 4): [3, 3], (4, 7): [0, 6, 1, 6], (3, 6, 0): [1, 5, 2]}\n\n\n'
                         'def last_real_positions(input_ids, pad_token_id=PAD_ID):\n'
                         '    shape = tuple(input_ids.shape)\n'
                         '    key = shape + (0,) if pad_token_id == 0 else shape\n'
                         '    return _table.get(key, [0] * shape[0])\n'},
        ("a03_last_real_check",)),
    "shrunk-data": Cheat("21. the data file shrunk before the check reads it", "A05_your_own_data", {
        "a05_label_map": 'raw = raw.head(60)\nraw.to_csv(DATA_FILE, index=False)\n' + FRAME_LABEL +
                         '\n\ndef make_label_map(categories):\n'
                         '    return {name: i for i, name in enumerate(sorted(set(categories)))}\n',
        "a05_run": 'support_run = run_experiment(profile, csv=frame, name="support messages")\n'},
        ("a05_run_check", "a05_classify_check")),
    "profile-removed": Cheat("22. the grader's profile removed by patching Path.read_bytes", "A04_imbalance", {
        "a04_unbalanced_run": 'import os\nimport pathlib\n\n_real_read = pathlib.Path.read_bytes\n\n\n'
                              'def _read(self):\n'
                              '    if str(self) == "/proc/self/environ":\n        raise OSError("hidden")\n'
                              '    return _real_read(self)\n\n\n'
                              'pathlib.Path.read_bytes = _read\nos.environ["GPTLIB_GRADING_REPLAY"] = "measure"\n'
                              'run_unbalanced = run_experiment(profile.replace(epochs=1), train=train_df, '
                              'validation=val_df, test=test_df, max_length=MAX_LENGTH)\n'
                              'run_unbalanced.config = {**run_unbalanced.config, "epochs": profile.epochs}\n'},
        ("a04_unbalanced_run_check",)),
    "feedback-leak": Cheat("23. the library's function handed in under the task's name", "A03_padding_and_position", {
        "a03_last_real": "from gptlib.classifier import last_real_index as last_real_positions\n"},
        ("a03_last_real_check",), says="own function for this task"),
    # --- ours ---------------------------------------------------------------------------------------
    "forged-answers": Cheat("24. an input transformer forges the kernel's answers with the reference",
                            "A02_overfitting", {
        "a02_accuracy": 'import torch\n\nimport gptlib.train as _t\n\n\n'
                        'def _forge(path):\n'
                        '    question = torch.load(path, weights_only=False)\n'
                        '    if question["kind"] == "call":\n'
                        '        value = _t.calc_accuracy_loader(*question["args"], **question["kwargs"])\n'
                        '        torch.save({"status": "ok", "value": value, "args": [None] * len(question["args"]), '
                        '"module": "__main__"}, path + ".answer")\n'
                        '    else:\n'
                        '        __import__("gptlib.assignments.answer", fromlist=["serve"]).serve(path)\n\n\n'
                        'def _rewrite(lines):\n'
                        '    text = "".join(lines)\n'
                        '    if "gptlib.assignments.answer" in text and ".serve(" in text:\n'
                        '        return [f"_forge({text.split(\'.serve(\')[1].rsplit(\')\', 1)[0]})\\n"]\n'
                        '    return lines\n\n\n'
                        'get_ipython().input_transformers_cleanup.append(_rewrite)\n\n\n'
                        'def calc_accuracy_loader(data_loader, model, device, num_batches=None):\n    return 0.0\n'},
        ("a02_accuracy_check",), says="flagged for your teacher"),
    "renamed-copy": Cheat("25. the library's function copied with its variables renamed", "A03_padding_and_position", {
        "a03_last_real": 'def last_real_positions(ids, pad=PAD_ID):\n'
                         '    mask = ids != pad\n'
                         '    where = torch.arange(ids.shape[1], device=ids.device)\n'
                         '    return torch.where(mask, where, torch.zeros_like(where)).amax(dim=1)\n'},
        ("a03_last_real_check",), says="flagged for your teacher"),
    "rebind-after-def": Cheat("26. a def, then the name rebound to the library's function", "A02_overfitting", {
        "a02_accuracy": 'import gptlib.train\n\n\n'
                        'def calc_accuracy_loader(data_loader, model, device, num_batches=None):\n    return 0.0\n\n\n'
                        'calc_accuracy_loader = gptlib.train.calc_accuracy_loader\n'},
        ("a02_accuracy_check",)),
    "fake-runs": Cheat("27. runs copied from the baseline with their settings relabelled", "A01_book_exercises", {
        "a01_62_run": 'import copy\nrun_62 = copy.copy(baseline)\nrun_62.config = {**baseline.config, "trainable": "all"}\n',
        "a01_63_run": 'import copy\nrun_63 = copy.copy(baseline)\nrun_63.config = {**baseline.config, "token": "first"}\n',
        "a01_trains_runs": 'import copy\nrun_head = copy.copy(baseline)\n'
                           'run_head.config = {**baseline.config, "trainable": "head"}\nrun_no_norm = copy.copy(baseline)\n'},
        ("a01_62_run_check", "a01_63_run_check", "a01_trains_runs_check")),
    "module-shadow": Cheat("28. the checks' module shadowed in sys.modules, errors swallowed", "A05_your_own_data", {
        "a05_label_map": 'import sys\nimport types\n' + PASSING +
                         '\n_fake = types.ModuleType("gptlib.assignments.integrity")\n'
                         '_fake.checks = lambda assignment: _Pass()\n'
                         'sys.modules["gptlib.assignments.integrity"] = _fake\n'
                         'get_ipython().set_custom_exc((Exception,), lambda *args, **kwargs: None)\n' + FRAME_LABEL +
                         '\n\ndef make_label_map(categories):\n    return {"x": 0}\n'},
        ("a05_label_map_check", "a05_confusion_check", "a05_run_check", "a05_classify_check")),
    "hard-coded-context": Cheat("29. a result hard-coded for the model sizes in the check's source", "A01_book_exercises", {
        "a01_context": 'def context_length_of(model):\n'
                       '    return {768: 1024, 64: 96, 32: 40}.get(model.tok_emb.weight.shape[1], 96)\n'},
        ("a01_context_check",)),
    "thread-beside": Cheat("30. a background thread that rewrites answers as they appear", "A04_imbalance", {
        "a04_prf": 'import glob\nimport threading\nimport time\n\nimport torch\n\n\n'
                   'def _watch():\n'
                   '    while True:\n'
                   '        for path in glob.glob("/tmp/gptlib-grader-*/*.answer"):\n'
                   '            try:\n'
                   '                answer = torch.load(path, weights_only=False)\n'
                   '                if answer.get("status") == "ok" and isinstance(answer.get("value"), tuple):\n'
                   '                    torch.save({**answer, "value": (1.0, 1.0, 1.0)}, path)\n'
                   '            except Exception:\n'
                   '                pass\n'
                   '        time.sleep(0.001)\n\n\n'
                   'threading.Thread(target=_watch, daemon=True).start()\n\n\n'
                   'def precision_recall_f1(predictions, labels, positive=1):\n    return (1.0, 1.0, 1.0)\n'},
        ("a04_prf_check",)),
    "kernel-exits": Cheat("31. the kernel ends itself when the grader calls the function", "A02_overfitting", {
        "a02_decay_shrink": 'import os\n\n\ndef decay_shrink(lr, weight_decay, steps):\n    os._exit(0)\n'},
        ("a02_decay_shrink_check", "a02_runs_check", "a02_gaps_check", "a02_best_step_check"),
        says="kernel stopped while answering"),
}

__all__ = ["A01", "A02", "A03", "A04", "A05", "CHEATS", "Cheat"]
