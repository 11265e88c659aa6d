"""Hold an LLM's caption to its draft: no word that states something the draft does not, and no
sentence that states nothing.

A captioner without ears (tags-llm) knows only the facts its prompt gives, and the descriptor
template writes those facts as a sentence: the *draft* (the prompt itself with the ``draft``
design; the same facts as the tag lines with ``tags``). Grounding checks every word of the
vocabulary a caption uses, but a 135M model also writes clauses outside it that every check
passed: "is a fan favorite", "a metallic, dry-docked sound", "on both sides of the board",
"gentle and soothing" (mood words the VA check does not know). Two rules catch them:

- **Added words.** Every word must be a word of the draft, a word of the project's vocabularies
  (the grounding check reads those against the measurements: "mellow" for a dark clip), one of
  :data:`PLAIN_WORDS` (function words and the frame words a paraphrase needs: "piece", "carries",
  "overall"), or a form of one of these that is an English word ("drum" of "drums",
  "percussively" of "percussive"; :func:`written_forms`). Anything else is a claim the draft does
  not make.
- **Empty sentences.** Every sentence must state at least one of the draft's facts or a
  vocabulary word; "It seems to be some kind of sound that just is not quite what you're used to."
  states none.

The same words steer decoding (:class:`DraftWords`): a token that cannot begin or continue an
allowed word gets no probability, and a word may end only where it is whole, so the model cannot
write an added word nor a misspelt one; the check stays, for captioners and settings that decode
without it.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from captioner import once

# Articles, pronouns, prepositions, conjunctions, auxiliaries and degree words: no claim in them.
FUNCTION_WORDS = frozenset("""
    a an the this that these those it its it's itself they them their there here which who whose what while
    whilst and but or nor so yet as of in on at by for with without within from to into onto over under
    through throughout across around along between behind beneath underneath above below about up down
    out off than then when where whereas though although because since until each every all both some
    any no not one two three few either neither is are was were be been being has have had having does do
    did can could may might will would should must also too very quite fairly rather somewhat slightly
    mostly mainly largely partly partially almost just only still even more most less least much many
    such same other another overall whole together alongside against toward towards upon per s like
    """.split())
# Frame words: the music, its parts and the verbs that tie a subject to a fact. None claims a fact
# ("builds" and "steady" do: they are vocabulary words, checked by grounding).
FRAME_WORDS = frozenset("""
    music musical piece track clip song tune composition recording excerpt work number selection
    sound sounds sounding feel feels feeling mood tone character atmosphere quality style nature
    part parts section sections layer layers element elements instrument instruments instrumentation
    arrangement ensemble backdrop background foreground texture level harmony harmonies rhythm rhythms
    rhythmic beat beats pulse tempo pace speed key mode tonality minute
    play plays played playing feature features featured featuring carry carries carried carrying
    move moves moving moved keep keeps kept keeping stay stays stayed staying remain remains remained
    hold holds held holding sit sits sitting set sets setting give gives giving make makes made making
    create creates created creating add adds added adding bring brings brought come comes run runs
    running unfold unfolds unfolding proceed proceeds seem seems seemed appear appears offer offers
    convey conveys conveyed conveying evoke evokes evoking suggest suggests express expresses
    present presents driven drive drives led lead leads marked defined shaped
    heard hear listener listeners overall roughly approximately nearly close near pattern patterns
    genre genres
    """.split())
PLAIN_WORDS = FUNCTION_WORDS | FRAME_WORDS
# Endings a paraphrase puts on a word; a form counts only if it is an English word (the dictionary
# of captioner.sense), so "moderately" and "drum" are forms, "mod" (of "mode") is not. No verb
# endings: "clean" gives no "cleaning", "moderate" no "moderated" (the frame verbs list their own).
_ENDINGS = ("s", "es", "ly", "ness")
_AFTER_Y = ("ies", "ily")  # busy: busily (not "business")
_KEY_LETTERS = frozenset("abcdefg")  # "in F major": one letter is a whole word
_CONTRACTIONS = ("'s", "'re", "'ve", "'ll", "'d", "'m")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
_NUMBER = re.compile(r"\d")


@functools.cache
def written_forms(word: str) -> frozenset[str]:
    """``word`` and those of its forms with an ending that are English words."""
    from captioner.sense import allowed_words

    if len(word) < 3:  # "b" of "R&B" is no stem: not "bally"
        return frozenset({word})
    known = allowed_words()
    forms = {word + x for x in _ENDINGS}
    if word.endswith("y"):
        forms |= {word[:-1] + x for x in _AFTER_Y}
    if word.endswith("s") and len(word) > 3:
        forms.add(word[:-1])  # drums: drum
    # relaxed: relax, relaxing; composed: compose; shifting: shift, shifts
    # the e-form first: "faded" and "fading" are of "fade", not "fad"
    for ending, stems in (("ed", (word[:-1], word[:-2])), ("ing", (word[:-3] + "e", word[:-3]))):
        stem = next((s for s in stems if s in known), None) if word.endswith(ending) and len(word) > 5 else None
        if stem:  # a participle's verb, and its other participle
            forms |= written_forms(stem) | {stem + "ing", stem + "ed", stem + "d", stem[:-1] + "ing"}
    return frozenset({word} | {f for f in forms if f in known})


@functools.cache
def vocabulary_phrases() -> tuple[str, ...]:
    """Every phrase of the measured-attribute, mood and content vocabularies, lower case (grounding reads them)."""
    from captioner import content
    from captioner.vocab import all_phrases

    return tuple(sorted({p.lower() for p in [*all_phrases(), *content.all_phrases()]}))


@functools.cache
def vocabulary_words() -> frozenset[str]:
    """Every word of the vocabularies' phrases."""
    return frozenset(_words(" ".join(vocabulary_phrases())))


@functools.cache
def vocabulary_compounds() -> frozenset[str]:
    """Hyphenated words of the vocabularies ("even-keeled", "mid-tempo")."""
    return frozenset(w for p in vocabulary_phrases() for w in _WORD.findall(p) if "-" in w)


@functools.cache
def common_forms() -> frozenset[str]:
    """Forms of the words every clip may use: plain words, the vocabularies, key letters."""
    return frozenset({f for w in PLAIN_WORDS | vocabulary_words() for f in written_forms(w)} | _KEY_LETTERS)


@functools.cache
def _plain_and_fact_forms() -> tuple[frozenset[str], frozenset[str]]:
    """Forms of the plain words, and the vocabularies' forms that state a fact (not plain ones):
    the same for every caption, so worked out once, not at every check."""
    plain = frozenset(f for w in PLAIN_WORDS for f in written_forms(w))
    return plain, frozenset(f for w in vocabulary_words() for f in written_forms(w)) - plain


def _words(text: str) -> list[str]:
    """Lower-case words, hyphenated compounds split into their parts."""
    return [p for w in _WORD.findall(text.lower()) for p in w.split("-") if p]


def compounds_of(draft: str) -> frozenset[str]:
    """Hyphenated words a caption of this draft may write: the draft's and the vocabularies'."""
    return vocabulary_compounds() | {w for w in _WORD.findall(draft.lower()) if "-" in w}


def draft_forms(draft: str) -> frozenset[str]:
    return frozenset(f for w in _words(draft) for f in written_forms(w))


@dataclass(frozen=True)
class Lexicon:
    """What one clip's caption may say: forms of the draft's words, the vocabularies and the plain words."""

    allowed: frozenset[str]
    facts: frozenset[str]  # forms that state a fact (the draft's and the vocabularies', less plain words)
    compounds: frozenset[str]  # hyphenated words it may write: the draft's and the vocabularies'

    @classmethod
    def of(cls, draft: str) -> "Lexicon":
        own = draft_forms(draft)
        plain, vocabulary_facts = _plain_and_fact_forms()
        return cls(own | common_forms(), frozenset((own - plain) | vocabulary_facts), compounds_of(draft))

    def admits(self, word: str) -> bool:
        word = word.lower().replace("’", "'")
        for ending in _CONTRACTIONS:
            if word.endswith(ending) and len(word) > len(ending):
                word = word[:-len(ending)]
                break
        # a compound only as the draft or the vocabularies write it ("light-hearted": "lighthearted");
        # "guitar-drum-faded", "dark-leaded" are made up of allowed parts, and mean nothing
        return word in self.allowed or word in self.compounds or word.replace("-", "") in self.allowed

    def states_fact(self, sentence: str) -> bool:
        return bool(_NUMBER.search(sentence)) or any(w in self.facts for w in _words(sentence))


@dataclass(frozen=True)
class Faithfulness:
    """What a caption adds to its draft (empty tuples: nothing)."""

    added: tuple[str, ...]  # words, in order, each once
    empty: tuple[str, ...]  # sentences that state no fact

    @property
    def ok(self) -> bool:
        return not (self.added or self.empty)


def added_words(text: str, lexicon: Lexicon) -> list[str]:
    """Words of ``text`` the lexicon does not admit, in order, each once."""
    out: list[str] = []
    for w in _WORD.findall(text or ""):
        w = w.strip("-'’").lower()
        if w and not lexicon.admits(w) and w not in out:
            out.append(w)
    return out


def empty_sentences(text: str, lexicon: Lexicon) -> list[str]:
    """Sentences of ``text`` that state none of the draft's facts nor a vocabulary word."""
    return [s.strip() for s in _SENTENCE.findall(text or "") if _WORD.search(s) and not lexicon.states_fact(s)]


def check(text: str, draft: str) -> Faithfulness:
    """How ``text`` strays from ``draft``."""
    lexicon = Lexicon.of(draft)
    return Faithfulness(tuple(added_words(text, lexicon)), tuple(empty_sentences(text, lexicon)))


def draft_of(descriptors: dict[str, Any] | None, valence: float | None, arousal: float | None,
             mood: bool = True, tags: dict[str, Any] | None = None) -> str:
    """The descriptor template's caption of a clip: the facts a captioner without ears was given."""
    from captioner.backends.descriptor import describe  # the backend imports captioner modules

    return describe(descriptors or {}, valence, arousal, mood, tags)


# --- decoding ---------------------------------------------------------------------------------
def _continuations(forms: Iterable[str]) -> dict[str, set[str]]:
    """Prefix -> the strings that extend it to a longer prefix of a form ("dru" -> "m", "ms", ...)."""
    out: dict[str, set[str]] = {}
    for f in forms:
        for i in range(len(f)):
            out.setdefault(f[:i], set()).update(f[i:j] for j in range(i + 1, len(f) + 1))
    return out


@functools.cache
def _common_prefixes() -> tuple[dict[str, set[str]], dict[str, int]]:
    """Continuations of the common forms, and how many common forms begin with each prefix."""
    counts: dict[str, int] = {}
    for f in common_forms():
        for i in range(1, len(f) + 1):
            counts[f[:i]] = counts.get(f[:i], 0) + 1
    return _continuations(common_forms()), counts


class TokenWords:
    """One tokenizer's alphabetic tokens: the letters of each, and whether it opens a word with a
    space. Built once per tokenizer (a pass over its vocabulary)."""

    def __init__(self, tokenizer):
        import torch

        n = len(tokenizer)
        self.letters: list[str | None] = [None] * n  # lower-cased
        self.capitals: list[bool] = [False] * n  # all capitals ("PM")
        self.spaced = torch.zeros(n, dtype=torch.bool)
        # Unspaced tokens, the pieces that continue a word, by letters: lower case, and capitals.
        self.by_letters: tuple[dict[str, list[int]], dict[str, list[int]]] = ({}, {})
        for i in range(n):
            text = tokenizer.decode([i])
            core = text[1:] if text.startswith(" ") else text
            if core.isascii() and core.isalpha():
                self.letters[i] = core.lower()
                self.capitals[i] = core.isupper()
                self.spaced[i] = text.startswith(" ")
                if not self.spaced[i] and (core.islower() or core.isupper()):
                    self.by_letters[core.isupper()].setdefault(core.lower(), []).append(i)
        self.alpha = torch.tensor([x is not None for x in self.letters], dtype=torch.bool)
        texts = [tokenizer.decode([i]) for i in range(n)]
        # Letters of other alphabets ("ì", "ß"): no English caption word holds one ("Foresì").
        self.foreign = torch.tensor([any(c.isalpha() and not c.isascii() for c in t) for t in texts], dtype=torch.bool)
        # Hyphens inside words ("-", "-based"); a spaced dash (" -") is punctuation and stays free.
        self.hyphens = torch.tensor(["-" in t and not (t.startswith(" ") and set(t.strip()) <= {"-"})
                                     for t in texts], dtype=torch.bool)
        self.bare_hyphens = [i for i, t in enumerate(texts) if t == "-"]
        # Tokens that end a sentence, for the rule that states each fact once a sentence (captioner.once).
        self.sentence_ends = [any(c in t for c in ".!?") for t in texts]
        self.with_letters: dict[str, list[int]] = {}  # lower-case letters -> every alphabetic token spelling them
        for i, letters in enumerate(self.letters):
            if letters is not None:
                self.with_letters.setdefault(letters, []).append(i)
        self.n = n

    def current_word(self, tokens: Sequence[int]) -> tuple[str, bool, int]:
        """The letters of the word ``tokens`` end in ('' after a space, punctuation or a number),
        whether it is in capitals so far (" B" "PM" may go on in capitals; " Sub" "dU" may not), and
        how many tokens it takes."""
        parts = []
        capitals = True
        for t in reversed(tokens):
            letters = self.letters[t] if t < self.n else None
            if letters is None:
                break
            parts.append(letters)
            capitals = capitals and self.capitals[t]
            if self.spaced[t]:
                break
        return "".join(reversed(parts)), capitals, len(parts)

    def pieces(self, strings: Iterable[str], capitals: bool) -> list[int]:
        """Unspaced tokens spelling any of ``strings``: lower case (and capitals if ``capitals``)."""
        tables = self.by_letters if capitals else self.by_letters[:1]
        return [i for s in strings for table in tables for i in table.get(s, ())]


def _banned_singly(banned_phrases: Iterable[str]) -> set[str]:
    """Words banned wherever they stand: the one-word banned phrases, and each word of a longer one
    that no allowed vocabulary phrase holds ("grainy" when "slightly grainy" is banned, "major" when
    every major key is), less the plain words ("a" of "A minor")."""
    banned = {p.lower() for p in banned_phrases}
    allowed = {w for p in vocabulary_phrases() if p not in banned for w in _words(p)}
    return {w for p in banned for w in _words(p) if " " not in p or w not in allowed} - PLAIN_WORDS


def _prefixes(word: str) -> list[str]:
    return [word[:i] for i in range(1, len(word) + 1)]


def _less(counts: dict[str, int], forms: Iterable[str]) -> dict[str, int]:
    """Prefix counts with ``forms`` taken out (a copy, or ``counts`` itself when there are none)."""
    out = dict(counts) if forms else counts
    for f in forms:
        for p in _prefixes(f):
            out[p] = out.get(p, 0) - 1
    return out


@dataclass
class WordRules:
    """One clip's words for decoding: the draft's, the vocabularies' less its banned ones, the plain ones.

    Held as what differs from the words every clip may use (:func:`common_forms`), so that a worker
    keeping the rules of a few hundred clips keeps kilobytes, not the common words each time."""

    own: frozenset[str]  # forms of the draft's words
    banned: frozenset[str]  # common forms this clip may not write
    own_prefixes: frozenset[str]
    dead: frozenset[str]  # prefixes of common forms that lead only to banned ones
    extra: dict[str, set[str]]  # continuations of the draft's own forms
    openers_banned: Any  # bool tensor over the tokenizer: alphabetic tokens that begin no allowed word
    # A banned word the draft says inside a longer phrase ("loud" of "moderately loud"): written only
    # after the word the draft puts before it. Per such word: those words, the prefixes that lead to
    # it alone, and the tokens that open it alone (banned elsewhere).
    guarded: dict[str, frozenset[str]]
    lone: dict[str, frozenset[str]]
    guarded_openers: dict[str, Any]
    compound_heads: frozenset[str] = frozenset()  # words a hyphen may follow ("even" of "even-keeled")

    @classmethod
    def of(cls, draft: str, words: "TokenWords", banned_words: Iterable[str] = ()) -> "WordRules":
        """Rules for a clip whose draft is ``draft``; ``banned_words``: vocabulary words it may not use
        (out-of-band scale words, unfit moods: :func:`captioner.constraints.banned_phrases`)."""
        import torch

        static, (_, common_counts) = common_forms(), _common_prefixes()
        single = _banned_singly(banned_words)
        said = _words(draft)
        guarded: dict[str, set[str]] = {}
        for before, w in zip(["", *said], said):
            if w in single:
                guarded.setdefault(w, set()).add(before)
        own = {f for w in said if w not in single for f in written_forms(w)} | set(guarded)
        # forms of a banned word, less those the draft says and vocabulary words in their own right
        # ("loudness" of "medium loudness" stays when "loud" is banned)
        banned = ({f for w in single for f in written_forms(w)} & static) - own - (vocabulary_words() - single)
        counts = _less(common_counts, banned)
        dead = {p for f in banned for p in _prefixes(f) if counts[p] <= 0}
        own_prefixes = {p for f in own for p in _prefixes(f)}
        rules = cls(frozenset(own), frozenset(banned), frozenset(own_prefixes), frozenset(dead),
                    _continuations(own), None, {w: frozenset(b) for w, b in guarded.items()}, {}, {})
        rules.openers_banned = torch.tensor([x is not None and not rules.is_prefix(x) for x in words.letters],
                                            dtype=torch.bool) | words.foreign
        # the prefixes that lead to a guarded word and to nothing else
        counts = _less(counts, set(guarded) & static)
        others = {p for f in own - set(guarded) for p in _prefixes(f)}
        for g in guarded:
            rules.lone[g] = frozenset(p for p in _prefixes(g) if counts.get(p, 0) <= 0 and p not in others)
            rules.guarded_openers[g] = torch.tensor([x in rules.lone[g] for x in words.letters], dtype=torch.bool)
        rules.compound_heads = frozenset(c[:i] for c in compounds_of(draft) for i, ch in enumerate(c) if ch == "-")
        return rules

    def is_prefix(self, prefix: str) -> bool:
        """Whether ``prefix`` begins an allowed form."""
        return prefix in self.own_prefixes or (prefix in _common_prefixes()[1] and prefix not in self.dead)

    def complete(self, word: str, before: str = "") -> bool:
        """Whether ``word`` may end here (``before``: the word written before it)."""
        allowed = word in self.own or (word in common_forms() and word not in self.banned)
        return allowed and (word not in self.guarded or before in self.guarded[word])

    def next_strings(self, word: str, before: str = "") -> set[str]:
        """Strings that extend ``word`` toward an allowed form (``before``: the word written before it)."""
        nxt = _common_prefixes()[0].get(word, set()) | self.extra.get(word, set())
        closed = self._closed(before)
        return {s for s in nxt if self.is_prefix(word + s) and not any(word + s in self.lone[g] for g in closed)}

    def banned_openers(self, before: str):
        """Tokens that may not open the next word, written after ``before``."""
        ban = self.openers_banned
        for g in self._closed(before):
            ban = ban | self.guarded_openers[g]
        return ban

    def _closed(self, before: str) -> list[str]:
        return [g for g, ok in self.guarded.items() if before not in ok]


class DraftWords:
    """Logits processor: each row writes only words its clip's :class:`WordRules` allow.

    At a word's start, an alphabetic token must begin an allowed word; inside a word, a piece must
    extend it toward an allowed form, and the word may end (space, punctuation, end of text) only
    where it is complete. Numbers and punctuation are free; letters of other alphabets are not. Only
    the answer is read. Where the
    processors before it (banned phrases, no repeated 3-grams) leave none of the allowed tokens, the
    row is left as they left it: the word goes astray and the check rejects the caption.
    """

    def __init__(self, prompt_len: int, words: TokenWords, rows: Sequence[WordRules], once: bool = True):
        self.prompt_len = prompt_len
        self.words = words
        self.rows = rows
        self.once = once  # each fact once a sentence (captioner.once)

    def _compound_head(self, tokens: list[int], n: int, word: str, rules: WordRules) -> bool:
        """Whether a hyphen may follow: the compound written so far ("even", "hip") begins an allowed one."""
        head = word
        rest = tokens[:len(tokens) - n]
        while rest and rest[-1] in self.words.bare_hyphens:  # "percussion-" "driven" so far
            before, _, m = self.words.current_word(rest[:-1])
            if not before:
                break
            head, rest = f"{before}-{head}", rest[:len(rest) - 1 - m]
        return head in rules.compound_heads
    def __call__(self, input_ids, scores):
        import torch

        for row, tokens in enumerate(input_ids[:, self.prompt_len:].tolist()):
            rules = self.rows[row]
            word, capitals, n = self.words.current_word(tokens)
            sentence = once.sentence_words(self.words, tokens) if self.once else []
            stated = once.Stated(rules, once.stated_forms(sentence))
            ban = rules.banned_openers("") if not word else None
            complete = False
            if word:
                before = self.words.current_word(tokens[:len(tokens) - n])[0] if rules.guarded else ""
                strings = rules.next_strings(word, before)
                if stated:
                    strings = {s for s in strings if stated.leads_elsewhere(word + s, before)}
                keep = self.words.pieces(strings, capitals)
                complete = rules.complete(word, before) and word not in stated.forms
                if not keep and not complete:
                    continue  # a word begun before the rules applied: no way on, so leave it be
                if complete:  # may end here, or go on, or open an allowed word after a space
                    ban = (self.words.alpha & ~self.words.spaced) | rules.banned_openers(word)
                    if self.once:  # the next word comes after this one
                        stated = once.Stated(rules, once.stated_forms([*sentence, word]))
                else:
                    ban = torch.ones(self.words.n, dtype=torch.bool)
                ban = ban | self.words.foreign
                ban[keep] = False
            if stated and (complete or not word):  # the next word may not lead only to a stated form
                dead = [i for p in stated.dead_openers(word if complete else "")
                        for i in self.words.with_letters.get(p, ()) if not word or self.words.spaced[i]]
                if dead:
                    ban = ban.clone()
                    ban[dead] = True
            ban = ban | self.words.hyphens
            if complete and self._compound_head(tokens, n, word, rules):
                ban[self.words.bare_hyphens] = False
            if len(ban) < scores.shape[1]:  # the model's vocabulary may pad past the tokenizer's
                ban = torch.cat([ban, torch.zeros(scores.shape[1] - len(ban), dtype=torch.bool)])
            ban = ban[:scores.shape[1]].to(scores.device)
            if bool(torch.isinf(scores[row, ~ban]).all()):
                continue  # the other processors left no allowed token: better a word the check rejects
            scores[row, ban] = float("-inf")
        return scores
