"""Each fact once a sentence, while decoding: the check of :func:`captioner.sense.restated_words`
turned into a rule for :class:`captioner.faithful.DraftWords`.

Once a sentence has stated a fact ("drums", "electronic", "lively", a mood word, "BPM"), none of
that fact's one-word forms may be written again before the sentence ends: the model may not end a
word on one, nor write a piece (or open a word with a token) that leads only to one (" B" may
open "beat", but "P" may not follow it toward "BPM"). Hyphenated forms ("even-keeled") are left to
the check after decoding, which also rejects whatever else slips through.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Iterable, Sequence

from captioner import sense

if TYPE_CHECKING:
    from captioner.faithful import TokenWords, WordRules


@functools.cache
def fact_forms() -> dict[str, frozenset[str]]:
    """Fact -> its one-word forms in lower-case letters, plurals too (as :class:`TokenWords` spells words)."""
    out: dict[str, set[str]] = {}
    for word, fact in sense.fact_words().items():
        if word.isalpha():
            out.setdefault(fact, set()).update({word, word + "s"})
    return {fact: frozenset(forms) for fact, forms in out.items()}


def sentence_words(words: "TokenWords", tokens: Sequence[int]) -> list[str]:
    """The whole words of the sentence ``tokens`` end in, in lower case, less the word being written."""
    out: list[str] = []
    current: str | None = None
    for t in tokens:
        letters = words.letters[t] if t < words.n else None
        if letters is None:  # punctuation, a number, a hyphen: the word ends
            if current:
                out.append(current)
            current = None
            if t < words.n and words.sentence_ends[t]:
                out = []
        elif words.spaced[t] or current is None:
            if current:
                out.append(current)
            current = letters
        else:
            current += letters
    return out


def stated_forms(sentence: Sequence[str]) -> frozenset[str]:
    """The forms of every fact the words ``sentence`` state, read as the check reads them ("hard
    rock" states hard rock, not rock)."""
    forms = fact_forms()
    return frozenset().union(*(forms[f] for f in set(sense.facts_in(" ".join(sentence))) if f in forms))


class Stated:
    """The forms one sentence has stated, and which beginnings of a word still lead somewhere else."""

    def __init__(self, rules: "WordRules", forms: Iterable[str]):
        self.rules = rules
        self.forms = frozenset(forms)
        self.prefixes = frozenset(f[:i] for f in self.forms for i in range(1, len(f) + 1))
        self._memo: dict[tuple[str, str], bool] = {}

    def __bool__(self) -> bool:
        return bool(self.forms)

    def leads_elsewhere(self, prefix: str, before: str = "") -> bool:
        """Whether ``prefix`` (an allowed beginning) may still end as an allowed form not stated.
        ``before``: the word written before it (guarded words, :class:`WordRules`)."""
        if prefix not in self.prefixes:
            return True  # it begins no stated form: whatever it becomes is allowed
        key = (prefix, before)
        if key not in self._memo:  # each step makes the prefix longer, so the recursion ends
            self._memo[key] = (self.rules.complete(prefix, before) and prefix not in self.forms) or any(
                self.leads_elsewhere(prefix + s, before) for s in self.rules.next_strings(prefix, before))
        return self._memo[key]

    def dead_openers(self, before: str = "") -> list[str]:
        """Beginnings of stated forms that may not open a word: they lead to stated forms only."""
        return [p for p in self.prefixes if not self.leads_elsewhere(p, before)]
