"""Tools for studying a trained classifier and the book's experiments, beyond the chapter's
code: notebook 08's inspection tools (:mod:`~gptlib.study.inspection`) and the registry of the
book's experiments by key (:mod:`~gptlib.study.experiments`)."""
