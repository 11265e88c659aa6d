"""Content tags: what a caption may say of genre, instruments and voice, and the tagger evidence for it.

The music tagger (:mod:`captioner.tagger`, musicnn trained on MagnaTagATune and the Million Song
Dataset) gives each clip a probability per tag of both vocabularies. This module is the one place
that turns those tags into caption words: every :class:`ContentWord` names the phrase a caption
writes, the other phrases that claim the same thing, and the tags whose probability is its
evidence. The templates, the LLM prompts, the grounding check and the audit all read it.

Two thresholds per category (see docs/captioner.md, "Content tags", for the figures behind them):
a word is *written* when its evidence reaches ``WRITE[category]``, and a caption may *claim* it
when its evidence reaches ``SUPPORT[category]`` (lower: a claim near the line is not a falsehood).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from captioner.tagger.vocab import VOCABULARIES

MTT, MSD = "MTT_musicnn", "MSD_musicnn"
# Tagger model -> its key in a `music` row's ``tag_probs`` struct (dataset_card.schema).
ROW_KEYS: dict[str, str] = {MTT: "mtt", MSD: "msd"}
GENRE, INSTRUMENT, VOICE = "genre", "instrument", "voice"
CATEGORIES = (GENRE, INSTRUMENT, VOICE)


@dataclass(frozen=True)
class ContentWord:
    """A phrase a caption may write, the category it claims, and the tags that evidence it."""

    phrase: str
    category: str
    tags: tuple[tuple[str, str], ...]  # (vocabulary, tag)
    synonyms: tuple[str, ...] = ()
    thresholds: tuple[float, float] | None = None  # (write, support) where the category's do not fit

    @property
    def phrases(self) -> tuple[str, ...]:
        return (self.phrase, *self.synonyms)

    @property
    def write(self) -> float:
        return self.thresholds[0] if self.thresholds else WRITE[self.category]

    @property
    def support(self) -> float:
        return self.thresholds[1] if self.thresholds else SUPPORT[self.category]


def _w(phrase: str, category: str, mtt: tuple[str, ...] = (), msd: tuple[str, ...] = (),
       synonyms: tuple[str, ...] = (), thresholds: tuple[float, float] | None = None) -> ContentWord:
    if thresholds is None and msd and not mtt and category == GENRE:
        thresholds = MSD_ONLY_GENRE
    return ContentWord(phrase, category, tuple((MTT, t) for t in mtt) + tuple((MSD, t) for t in msd), synonyms,
                       thresholds)


# Probability thresholds of the tagger's evidence (see the module docstring and docs/captioner.md,
# "Content tags", for the measurements): a word is written at WRITE, may be claimed from SUPPORT.
WRITE: dict[str, float] = {GENRE: 0.25, INSTRUMENT: 0.25, VOICE: 0.35}
SUPPORT: dict[str, float] = {GENRE: 0.12, INSTRUMENT: 0.12, VOICE: 0.2}
# Genres only the Million Song Dataset model knows: its genre guesses are the shakier (it calls solo
# piano and synthetic or game music "jazz" at 0.2-0.7), so they need more.
MSD_ONLY_GENRE = (0.45, 0.2)
# The drum kit: musicnn's "drums" reads low even where a kit plays throughout (demo drum songs: clip
# median 0.10, tenth percentile 0.06) and lower still where none plays (at most 0.02).
DRUMS = (0.06, 0.03)
# Piano: songs without one still read up to 0.31 (strings, guitar), songs with it 0.96.
PIANO = (0.35, 0.2)


# A performer's sex is something only a voice can tell a captioner that does not see the players, so
# "a male drummer" or "a female musician" claims the gendered voice and needs its evidence.
PERFORMER = {"female": ("female", "woman", "women", "girl", "girls", "she", "her"),
             "male": ("male", "man", "men", "guy", "guys", "boy", "boys", "he", "his", "him")}

# Decades, "beautiful", "catchy", tempo and loudness tags are left out: the descriptors measure
# tempo and level, VA labels give the mood, and a decade is not something a clip's sound proves.
WORDS: tuple[ContentWord, ...] = (
    # instruments
    _w("piano", INSTRUMENT, ("piano",), synonyms=("pianos", "pianist"), thresholds=PIANO),
    _w("guitar", INSTRUMENT, ("guitar",), ("guitar",), ("guitars", "guitarist")),
    _w("drums", INSTRUMENT, ("drums",), synonyms=("drum kit", "drum", "drummer"), thresholds=DRUMS),
    _w("strings", INSTRUMENT, ("strings",), synonyms=("string section", "string ensemble")),
    _w("violin", INSTRUMENT, ("violin",), synonyms=("violins", "fiddle")),
    _w("cello", INSTRUMENT, ("cello",), synonyms=("cellos",)),
    _w("harp", INSTRUMENT, ("harp",), synonyms=("harps",)),
    _w("flute", INSTRUMENT, ("flute",), synonyms=("flutes",)),
    _w("sitar", INSTRUMENT, ("sitar",)),
    _w("harpsichord", INSTRUMENT, ("harpsichord",)),
    _w("synthesizer", INSTRUMENT, ("synth",), synonyms=("synthesizers", "synth", "synths")),
    # voice
    _w("female vocals", VOICE, ("female", "woman", "female vocal", "female voice"),
       ("female vocalists", "female vocalist"), ("female voice", "female singer", "woman singing", *PERFORMER["female"])),
    _w("male vocals", VOICE, ("male", "man", "male vocal", "male voice"), ("male vocalists",),
       ("male voice", "male singer", "man singing", *PERFORMER["male"])),
    _w("choir", VOICE, ("choir", "choral"), synonyms=("choral", "chorus of voices")),
    # any sung voice is evidence of vocals: the gendered and choir tags count too
    _w("vocals", VOICE, ("vocal", "vocals", "singing", "voice", "female", "woman", "female vocal", "female voice",
                         "male", "man", "male vocal", "male voice", "choir", "choral"),
       ("female vocalists", "female vocalist", "male vocalists"),
       synonyms=("vocal", "singer", "singers", "singing", "sings", "sung", "vocalist", "vocalists", "voice",
                 "voices")),
    _w("instrumental", VOICE, ("no vocals", "no vocal", "no voice"), ("instrumental",),
       ("no vocals", "without vocals", "no singing", "without singing", "no voice")),
    # genres and styles
    _w("classical", GENRE, ("classical", "classic")),
    _w("electronic", GENRE, ("electronic",), ("electronic", "electronica", "electro")),
    _w("techno", GENRE, ("techno",)),
    _w("dance", GENRE, ("dance",), ("dance",)),
    _w("house", GENRE, msd=("House",), synonyms=("house music",)),
    _w("ambient", GENRE, ("ambient",), ("ambient",)),
    _w("new age", GENRE, ("new age",)),
    _w("rock", GENRE, ("rock",), ("rock", "alternative rock", "classic rock", "indie rock")),
    _w("hard rock", GENRE, msd=("hard rock",)),
    _w("progressive rock", GENRE, msd=("Progressive rock",)),
    _w("metal", GENRE, ("metal",), ("metal", "heavy metal"), ("heavy metal",)),
    _w("punk", GENRE, msd=("punk",)),
    _w("pop", GENRE, ("pop",), ("pop", "indie pop")),
    _w("indie", GENRE, msd=("indie", "alternative"), synonyms=("alternative",)),
    _w("jazz", GENRE, msd=("jazz",), synonyms=("jazzy",)),
    _w("blues", GENRE, msd=("blues",), synonyms=("bluesy",)),
    _w("soul", GENRE, msd=("soul",)),
    _w("funk", GENRE, msd=("funk",), synonyms=("funky",)),
    _w("R&B", GENRE, msd=("rnb",), synonyms=("rnb", "rhythm and blues")),
    _w("hip-hop", GENRE, msd=("Hip-Hop",), synonyms=("hip hop", "rap")),
    _w("folk", GENRE, msd=("folk",)),
    _w("country", GENRE, ("country",), ("country",)),
    _w("opera", GENRE, ("opera",), synonyms=("operatic",)),
    _w("Indian", GENRE, ("indian",)),
    _w("acoustic", GENRE, msd=("acoustic",)),
    _w("chill-out", GENRE, msd=("chillout", "chill"), synonyms=("chillout", "chill")),
    _w("easy listening", GENRE, msd=("easy listening",)),
    _w("experimental", GENRE, msd=("experimental",)),
)
BY_PHRASE: dict[str, ContentWord] = {w.phrase: w for w in WORDS}

MAX_WRITTEN = {GENRE: 2, INSTRUMENT: 3, VOICE: 1}


def _index() -> dict[str, dict[str, int]]:
    return {vocab: {t: i for i, t in enumerate(tags)} for vocab, tags in VOCABULARIES.items()}


_INDEX = _index()


def evidence(probabilities: Mapping[str, Any] | None, word: ContentWord) -> float | None:
    """The highest probability among ``word``'s tags, or None where no vocabulary was tagged."""
    if not probabilities:
        return None
    values = [float(np.asarray(probabilities[v])[_INDEX[v][t]]) for v, t in word.tags
              if probabilities.get(v) is not None]
    return max(values) if values else None


@dataclass(frozen=True)
class ContentTags:
    """The content words a clip's tags pass, strongest first per category."""

    genres: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    voice: str | None = None  # "female vocals", "male vocals", "choir", "vocals", "instrumental" or None

    @property
    def words(self) -> tuple[str, ...]:
        return (*self.genres, *self.instruments, *((self.voice,) if self.voice else ()))


def content_tags(probabilities: Mapping[str, Any] | None) -> ContentTags:
    """The words to write for a clip whose tag probabilities (per vocabulary) are given."""
    if not probabilities:
        return ContentTags()
    scored = [(w, evidence(probabilities, w)) for w in WORDS]
    passing = sorted(((w, e) for w, e in scored if e is not None and e >= w.write),
                     key=lambda we: -we[1])

    def top(category: str) -> tuple[str, ...]:
        return tuple(w.phrase for w, _ in passing if w.category == category)[:MAX_WRITTEN[category]]

    voices = {w.phrase: e for w, e in passing if w.category == VOICE}
    return ContentTags(_without_parents(top(GENRE)), top(INSTRUMENT), _voice(voices, sung_evidence(probabilities)))


def _without_parents(genres: tuple[str, ...]) -> tuple[str, ...]:
    """"hard rock" says "rock" already: drop a genre another written genre contains."""
    return tuple(g for g in genres if not any(g != o and re.search(rf"\b{re.escape(g)}\b", o) for o in genres))


def _voice(passing: dict[str, float], sung: float | None) -> str | None:
    """One voice word from those passing (phrase -> evidence, strongest first): "instrumental" when its
    evidence beats every sung tag's; else the strongest specific voice, else plain "vocals"."""
    if "instrumental" in passing and (sung is None or passing["instrumental"] > sung):
        return "instrumental"
    specific = [p for p in passing if p not in ("instrumental", "vocals")]
    return specific[0] if specific else ("vocals" if "vocals" in passing else None)


def claim_problem(probabilities: Mapping[str, Any] | None, word: ContentWord, phrase: str | None = None) -> str | None:
    """Why the tags do not let a caption claim ``word`` (as ``phrase``), or None: it may, or the clip
    was not tagged for it (``evidence`` None). "instrumental" fails against a stronger sung voice."""
    e = evidence(probabilities, word)
    if e is None:
        return None
    phrase = phrase or word.phrase
    if e < word.support:
        return f"names {phrase!r} ({word.category}), tagger evidence {e:.2f} < {word.support}"
    sung = sung_evidence(probabilities)
    if word.phrase == "instrumental" and sung is not None and sung >= max(e, WRITE[VOICE]):
        return f"says {phrase!r}, but the tagger hears a voice ({sung:.2f}, 'instrumental' {e:.2f})"
    return None


def sung_evidence(probabilities: Mapping[str, Any] | None) -> float | None:
    """The strongest evidence of any singing voice (for "instrumental" claims)."""
    return evidence(probabilities, BY_PHRASE["vocals"])


def all_phrases() -> list[str]:
    """Every content phrase, for the audit's masking and the grounding's patterns."""
    return [p for w in WORDS for p in w.phrases]


def to_row(probabilities: Mapping[str, Any] | None) -> dict[str, list[float]] | None:
    """Vectors by model (probabilities, embeddings) as a `music` row's ``tag_probs`` or
    ``tag_embeddings`` struct (None: not tagged)."""
    if not probabilities:
        return None
    return {ROW_KEYS[m]: [float(v) for v in np.asarray(p, dtype=np.float32)] for m, p in probabilities.items()}


def from_row(tag_probs: Mapping[str, Any] | None) -> dict[str, np.ndarray] | None:
    """A row's ``tag_probs`` struct back as probabilities by model (None where the row has none)."""
    if not tag_probs:
        return None
    out = {m: np.asarray(tag_probs[k], dtype=np.float32) for m, k in ROW_KEYS.items() if tag_probs.get(k) is not None}
    return out or None


def content_evidence(words: tuple[str, ...], probability: float = 0.5) -> dict[str, np.ndarray]:
    """Tag probabilities that support exactly ``words`` (for worked examples and tests): each word's
    first tag at ``probability``, every other tag at 0."""
    out = {m: np.zeros(len(VOCABULARIES[m]), dtype=np.float32) for m in ROW_KEYS}
    for phrase in words:
        model, tag = BY_PHRASE[phrase].tags[0]
        out[model][_INDEX[model][tag]] = probability
    return out
