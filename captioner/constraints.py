"""Phrases a caption of one clip may not contain, kept out while the LLM writes it.

The grounding check (:mod:`captioner.grounding`) rejects a caption after the fact; a small model
asked to write from tags names an instrument the tagger did not hear, or a tempo word the
measurement contradicts, often enough that most clips would need the fallback (measured in
docs/captioner.md, "Choosing the LLM"). :func:`banned_phrases` lists, per clip, the phrases the
check would fail on by themselves (a claim whose evidence is below its support, a scale word outside
the measured band, a mood word the VA label rules out, content no captioner without ears can know),
and :class:`BannedPhrases` is the logits processor that gives their tokens no probability during
decoding, one list per row of the batch. The check still runs afterwards: constraints cover
phrases, not claims spread over words (a wrong BPM number, a key), and a tokenisation other than
the canonical one can slip past them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from captioner import content
from captioner.grounding import CONTRADICTION_ATTRIBUTES, FORBIDDEN_ALWAYS, FORBIDDEN_UNHEARD, pitch_class
from captioner.vocab import (MOOD_LEXICON, NO_PULSE_PHRASES, SCALES, all_phrases, key_is_confident, mood_problem,
                             tempo_is_confident)


def banned_phrases(descriptors: dict[str, Any] | None, valence: float | None, arousal: float | None,
                   tags: dict[str, Any] | None, hears_audio: bool = False, mood_given: bool = True) -> tuple[str, ...]:
    """Every phrase whose mere presence fails :func:`captioner.grounding.ground` or ``forbidden`` for this clip."""
    out: set[str] = {p for ps in FORBIDDEN_ALWAYS.values() for p in ps}
    if not hears_audio:
        out |= {p for ps in FORBIDDEN_UNHEARD.values() for p in ps}
        out |= set(_unsupported_content(tags))
    out |= set(_out_of_band(descriptors or {}))
    out |= set(_other_keys(descriptors or {}))
    out |= set(_unfit_moods(valence, arousal, mood_given))
    return tuple(sorted(out))


def allowed_phrases(banned: Iterable[str]) -> tuple[str, ...]:
    """Vocabulary phrases not in ``banned``: a banned phrase inside one of them ("loud" in "moderately
    loud") stays allowed there."""
    banned = {b.lower() for b in banned}
    vocab = [*all_phrases(), *content.all_phrases()]
    return tuple(sorted({p for p in vocab if p.lower() not in banned and " " in p}))


def _unsupported_content(tags: dict[str, Any] | None) -> Iterable[str]:
    for word in content.WORDS:
        # untagged clips: no content word is known (``forbidden`` rejects them all)
        if content.evidence(tags, word) is None or content.claim_problem(tags, word):
            yield from word.phrases


def _out_of_band(d: dict[str, Any]) -> Iterable[str]:
    for name, scale in SCALES.items():
        x = d.get(scale.field)
        if x is None:
            continue
        x = float(x)
        if name == "tempo" and x <= 0:  # no pulse: no tempo claim at all
            yield from scale.phrase_bands()
            yield "BPM"
            continue
        if name == "tempo" and d.get("beat_strength") is not None and not tempo_is_confident(d):
            yield from ("BPM", "beats per minute", "beats a minute")  # too weak a beat to count
        # One band where two neighbouring ones would contradict each other ("lively ... fast").
        allowed = {scale.index(x)} if name in CONTRADICTION_ATTRIBUTES else scale.allowed(x)
        yield from (p for p, band in scale.phrase_bands().items() if band not in allowed)
        if name == "tempo":
            yield from NO_PULSE_PHRASES


_LETTERS = "ABCDEFG"
_ACCIDENTALS = ("", "#", "b", "♯", "♭", "-sharp", "-flat", " sharp", " flat")


def _other_keys(d: dict[str, Any]) -> Iterable[str]:
    """Every key name but the measured one (all of them where the estimate is too weak to state), bare
    tonics ("in E flat") and the other mode's "minor key": what ``_key_problem`` fails."""
    key, mode = str(d.get("key") or ""), str(d.get("mode") or "").lower()
    if not key or key[0] not in _LETTERS or mode not in ("major", "minor") or d.get("key_strength") == 0.0:
        return
    measured = pitch_class(key[0], key[1:] or None)
    if d.get("key_strength") is not None and not key_is_confident(d):
        measured = -1  # too weak an estimate to state: every key is banned
    for letter in _LETTERS:
        for acc in _ACCIDENTALS:
            pitch = pitch_class(letter, acc or None)
            for m in ("major", "minor"):
                if pitch != measured or m != mode:
                    yield f"{letter}{acc} {m}"
                    yield f"{letter}{acc}-{m}"
    # A tonic alone ("in E flat"): banned where no spelling of the measured tonic starts the same way,
    # since a token ban cannot wait for the accidental ("in A" may become "in A#").
    spellings = {f"{letter}{acc}" for letter in _LETTERS for acc in _ACCIDENTALS
                 if pitch_class(letter, acc or None) == measured}
    for letter in _LETTERS:
        for acc in _ACCIDENTALS:
            name = f"{letter}{acc}"
            if pitch_class(letter, acc or None) != measured \
                    and not any(s.startswith(name) for s in spellings):
                yield f"in {name}"
    other = "minor" if mode == "major" else "major"
    if measured < 0:
        yield from (f"{m}{sep}{w}" for m in ("major", "minor") for sep in (" ", "-")
                    for w in ("key", "mode", "tonality", "scale"))
        return
    yield from (f"{other}{sep}{w}" for sep in (" ", "-") for w in ("key", "mode", "tonality", "scale"))


def _unfit_moods(valence: float | None, arousal: float | None, mood_given: bool) -> Iterable[str]:
    if not mood_given:
        yield from MOOD_LEXICON
    elif valence is not None and arousal is not None:
        yield from (w for w in MOOD_LEXICON if mood_problem(w, valence, arousal))


@dataclass(frozen=True)
class Banned:
    """One row's banned token sequences: after a space (anywhere), and as the answer's first word."""

    spaced: tuple[tuple[int, ...], ...]
    opening: tuple[tuple[int, ...], ...]
    allowed: tuple[tuple[int, ...], ...] = ()  # longer allowed phrases that end in a banned one
    wanted: tuple[tuple[tuple[int, ...], ...], ...] = ()  # per content word to name: its token forms


def wanted_sequences(tokenizer, words: Sequence[str]) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """Token forms (after a space or opening, lower case or capitalised) of each content word to name."""
    return tuple(tuple(sorted({tuple(tokenizer.encode(f"{sep}{form}", add_special_tokens=False))
                               for form in _forms(w) for sep in ("", " ")} - {()}))
                 for w in words)


def token_sequences(tokenizer, phrases: Sequence[str], allowed: Sequence[str] = ()) -> Banned:
    """The token ids of each phrase, lower case and capitalised, after a space or opening the answer.

    Forms without a space are banned only at the answer's start: mid-text, a word's bare tokens are
    pieces of other words ("rap" in "therapy"), and banning them would push the model to misspell.
    """
    spaced: set[tuple[int, ...]] = set()
    opening: set[tuple[int, ...]] = set()
    for phrase in phrases:
        for form in _forms(phrase):
            spaced.add(tuple(tokenizer.encode(" " + form, add_special_tokens=False)))
            opening.add(tuple(tokenizer.encode(form, add_special_tokens=False)))
    keep = {tuple(tokenizer.encode(" " + form, add_special_tokens=False)) for phrase in allowed for form in _forms(phrase)}
    spaced.discard(())
    ends_banned = {a for a in keep for s in spaced if len(a) > len(s) and a[-len(s):] == s}
    return Banned(tuple(sorted(spaced)), tuple(sorted(s for s in opening if s)), tuple(sorted(ends_banned)))


def _forms(phrase: str) -> set[str]:
    """How a phrase is written: as given and capitalised; lower-cased too unless it holds a capital on
    purpose ("A minor", "in E", "BPM": lower-cased, "in a" is the article)."""
    forms = {phrase, phrase[:1].upper() + phrase[1:]}
    return forms if phrase != phrase.lower() else forms | {phrase.lower()}


class BannedPhrases:
    """Logits processor: per batch row, no token that would complete one of its banned sequences;
    with ``boost``, the first token of each content word the clip's tags pass (``Banned.wanted``)
    gets that much more logit until the word is written (small models drop the instruments otherwise).

    A one-token phrase is banned outright; a longer one loses its last token where the answer ends
    with the rest of it. Only the answer (columns from ``prompt_len``) is read, since the prompt
    names banned words itself ("instruments: piano" forbids nothing).
    """

    def __init__(self, prompt_len: int, rows: Sequence[Banned], boost: float = 0.0):
        self.prompt_len = prompt_len
        self.rows = [(_table(b.spaced), _table(b.opening), _table(b.allowed)) for b in rows]
        self.wanted = [b.wanted for b in rows]
        self.boost = boost

    def __call__(self, input_ids, scores):
        answer = input_ids[:, self.prompt_len:].tolist()
        for row, tokens in enumerate(answer):
            spaced, opening, allowed = self.rows[row]
            banned = set(_completions(spaced, tokens)) - set(_completions(allowed, tokens))
            banned = sorted(banned | set(_completions(opening, tokens, at_start=True)))
            if banned:
                scores[row, banned] = float("-inf")
            if self.boost:
                first = sorted({f[0] for forms in self.wanted[row] if not _written(forms, tokens) for f in forms})
                if first:
                    scores[row, first] += self.boost
        return scores


def _written(forms: Sequence[tuple[int, ...]], tokens: list[int]) -> bool:
    """Whether one of a word's token forms occurs in ``tokens``."""
    return any(tuple(tokens[i:i + len(f)]) == f for f in forms for i in range(len(tokens) - len(f) + 1))


def _table(seqs: Sequence[tuple[int, ...]]) -> dict[tuple[int, ...], list[int]]:
    """Prefix -> the last tokens that would complete a banned sequence after it."""
    table: dict[tuple[int, ...], list[int]] = {}
    for s in seqs:
        table.setdefault(s[:-1], []).append(s[-1])
    return table


def _completions(table: dict[tuple[int, ...], list[int]], tokens: list[int], at_start: bool = False) -> list[int]:
    out: list[int] = []
    for prefix, last in table.items():
        n = len(prefix)
        if at_start and len(tokens) != n:
            continue
        if len(tokens) >= n and (n == 0 or tuple(tokens[-n:]) == prefix):
            out += last
    return out
