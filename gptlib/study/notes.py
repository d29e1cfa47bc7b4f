"""What a notebook says beside its results: the banner under its settings cell (which profile
runs, and what to expect from it) and the book's figure set beside this run's, with how to
read the difference.

Shown by every chapter notebook: ``profile_banner(profile)`` under the settings cell.
"""

from __future__ import annotations

from gptlib.notebook import PROFILE_ENV, Profile

# What each profile runs and what to expect from it: the banner at the top of every notebook.
PROFILE_NOTES = {
    "book": ("the book's run: OpenAI's pretrained gpt2-small, the real SMS Spam Collection, the book's "
             "settings (5 epochs). Expect the book's figures (test 95.67%) up to noise; the weights "
             "(500 MB) are downloaded once."),
    "offline": ("no network needed: gpt2-small-shaped *random* weights, the real SMS Spam Collection "
                "shipped with gptlib, the book's settings. Expect about 93-94% test after 5 epochs (one run "
                "on 300 messages moves by about ±2.5 points). Without pretraining, reading the last real "
                "token is no better than the last position, within noise over 3 seeds (with pretrained "
                "weights the book finds it about 3 points better). Numbers that depend on pretraining "
                "are not the book's."),
    "smoke": ("a seconds-long check of the code: a tiny random model, 200 made-up messages, 1 epoch. "
              "The numbers mean nothing."),
}


class Banner:
    """The one line at the top of a notebook: which profile runs, and what to expect from it."""

    def __init__(self, profile: Profile):
        self.profile = profile

    def text(self) -> str:
        note = PROFILE_NOTES.get(self.profile.name, "")
        return (f"Profile {self.profile.name!r}: {note} Switch with {PROFILE_ENV}=book|offline|smoke "
                "before starting Jupyter.")

    def _repr_markdown_(self) -> str:
        note = PROFILE_NOTES.get(self.profile.name, "")
        return (f"> **Profile `{self.profile.name}`**: {note}  \n> Switch with "
                f"`{PROFILE_ENV}=book|offline|smoke` before starting Jupyter.")

    def __repr__(self) -> str:
        return self.text()


def profile_banner(profile: Profile) -> Banner:
    """The banner every notebook shows under its settings cell."""
    return Banner(profile)


class BookNote:
    """A short block beside a result: the book's pretrained figure, this run's, and how to
    read the difference (noise, and what random weights change)."""

    def __init__(self, what: str, ours: float | None, book: float, n: int, profile: Profile, source: str):
        self.what, self.ours, self.book, self.n, self.profile, self.source = what, ours, book, n, profile, source

    def _parts(self) -> tuple[str, str, str]:
        from gptlib.support.noise import differ_beyond_noise, interval_text

        book = f"{100 * self.book:.2f}%"
        if self.ours is None:
            return book, "not run here", f"one run's {interval_text(self.book, self.n)}"
        diff = 100 * (self.ours - self.book)
        here = f"{100 * self.ours:.2f}% ({diff:+.2f} points; {interval_text(self.ours, self.n)})"
        beyond, band = differ_beyond_noise(self.ours, self.n, self.book, self.n)
        how = f"{'beyond' if beyond else 'within'} noise (the two runs' 95% band is ±{100 * band:.1f} points)"
        if self.profile.weights != "pretrained":
            how += ("; with random weights instead of OpenAI's, expect a point or two lower and patterns "
                    "that rest on pretraining to differ")
        return book, here, how

    def _repr_markdown_(self) -> str:
        book, here, how = self._parts()
        return (f"> **The book** ({self.source}): {self.what} {book}. **Here** (profile `{self.profile.name}`, "
                f"{self.profile.weights} weights): {here}: {how}.")

    def __repr__(self) -> str:
        book, here, how = self._parts()
        return f"The book ({self.source}): {self.what} {book}. Here ({self.profile.name}): {here}: {how}."


def book_note(what: str, ours: float | None, book: float, profile: Profile, n: int = 300,
              source: str = "pretrained gpt2-small, chapter 6") -> BookNote:
    """The block a notebook shows beside a result, e.g. ``book_note("test accuracy", acc, 0.9567,
    profile)``; ``book`` is the figure from the book (0..1), ``n`` the messages it counts."""
    return BookNote(what, ours, book, n, profile, source)
