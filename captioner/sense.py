"""Does a caption read as English? Words that are not English words, vocabulary words misused, and
facts stated twice in one sentence.

Three offline checks, used by the post-processing (a caption that fails is rejected, retried, then
replaced by the fallback) and counted by the audit:

- **Non-words.** Every word must be an English word of `pyspellchecker`'s dictionary (MIT; about
  160,000 words with frequencies from subtitles, shipped in its wheel: no download), a word of
  the project's own vocabularies (:mod:`captioner.vocab`, :mod:`captioner.content`), or a musical
  term of :data:`MUSIC_TERMS`
  (genres, instruments, production words the dictionary lacks: "synth", "bpm", "downtempo").
  Numbers ("96", "80s", "4/4"), key names ("F#", "Bb") and hyphenated compounds of known words
  ("even-keeled") pass. This catches "kended", "perscussive", "timbreloaded" and also "minecraft",
  which the dictionary lacks (a word-frequency list from the web, such as `wordfreq`'s, would pass
  it: the web says "minecraft" often).
- **Misused vocabulary.** An LLM given tag lines ("noise: clean") writes them back as non-English
  prose: "a moderate noise of clean.", "noise of cleaning". Flagged: an attribute's label (tempo,
  timbre, noise, ...) followed by "of" and a band word of any scale or a form of one ("of
  cleaning" from "clean"); and an attribute adjective standing where English needs a noun, after
  "of", "with", "a" or "the" at the end of a clause ("with a moderate noise of clean."). Words
  that are nouns as well ("the calm", "a drone") are left out of the second rule.

The descriptor template and well-formed MusicCaps-style captions pass both (tests check both ways).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from captioner.vocab import MOOD_LEXICON, NO_PULSE_PHRASES, SCALES, all_phrases, phrase_pattern

NON_WORD = "non-word"
MISUSED = "misused vocabulary"
RESTATED = "restated"

# Musical and recording words that the dictionary lacks (each checked against pyspellchecker 0.9),
# among them the words of musicnn's MagnaTagATune and Million Song Dataset tags that it lacks.
MUSIC_TERMS = frozenset("""
    a-cappella acapella afrobeat afrobeats amapiano anthemic arp arpeggiated arpeggiator arps autotune
    autotuned bachata balafon bassline basslines beatbox beatboxing beatless bgm bitcrushed boombap boomy
    bossa bpm breakbeat cajon cappella chillhop chillout chiptune chiptunes clavinet cumbia dancehall
    darbuka dbfs deathcore dhol dholak djembe djent dj downtempo drumkit dubstep duduk echoey edm
    electronica electropop emo eq erhu etc fi fingerpicked fingerpicking flanger guzheng handpan hi-hat
    highpass hihat idm intro kbps klezmer kora kpop lo-fi lofi lowpass marcato mbira melismatic melodica
    metalcore mid-tempo midtempo mixtape mp3 ostinato outro overdriven percussions phaser qanun qawwali r&b
    reggaeton reverbed reverby rnb santoor screamo sfx shakuhachi shamisen shehnai shoegaze sidechain
    sidechained soca soundscape soundscapes steelpan subwoofer synth synthesiser synthpop synths synthwave
    synthy tanpura theremin trippy tv vaporwave vibey videogame wah zouk hissy
    """.split())
# British spellings the (American) dictionary lacks, read through their American form.
_BRITISH = ((r"our(s|ed|ing|ful)?$", r"or\1"), (r"is(e|es|ed|ing|ation|ations)$", r"iz\1"),
            (r"tre(s)?$", r"ter\1"), (r"ys(e|es|ed|ing)$", r"yz\1"), (r"ll(ed|ing|er)$", r"l\1"),
            (r"ogue(s)?$", r"og\1"))
# Labels of the facts a prompt gives (captioner.prompts' tag lines) and the words for them.
ATTRIBUTE_LABELS = ("tempo", "key", "dynamics", "timbre", "rhythm", "texture", "level", "harmony", "noise",
                    "noisiness", "mood", "loudness", "brightness", "percussion")
# Attribute words that are nouns as well ("the calm.", "a drone.", "in the dark."): left out of both rules.
NOUNS_TOO = frozenset({"calm", "quiet", "dark", "drone", "legato", "rubato", "crescendo", "diminuendo", "building",
                       "swelling", "swells", "builds", "fades", "fading", "receding", "neutral", "brilliant"})
# Forms an LLM makes of a band word ("cleaning"); not -ness, since "a level of softness" is English.
_SUFFIXES = ("ing", "ed", "ly", "er", "est", "s")
# Commas are left out: "a gloomy, mournful piece" lists adjectives before their noun.
_CLAUSE_END = r"(?=\s*(?:[.;:!?]|$))"
_KEY_NAME = re.compile(r"^[a-g](?:#|b|♯|♭)?$")
_TOKEN = re.compile(r"[^\W_][\w'’&#♯♭-]*")
_POSSESSIVE = ("'s", "’s", "'", "’")


@dataclass(frozen=True)
class SenseCheck:
    """What does not read as English in one caption (empty tuples: it reads fine)."""

    non_words: tuple[str, ...]
    misused: tuple[str, ...]  # the offending phrases, as written
    restated: tuple[str, ...] = ()  # fact words written twice in one sentence (their canonical form)

    @property
    def ok(self) -> bool:
        return not (self.non_words or self.misused or self.restated)

    def reasons(self) -> list[str]:
        return ([f"{NON_WORD}: {w!r}" for w in self.non_words]
                + [f"{MISUSED}: {p!r}" for p in self.misused]
                + [f"{RESTATED}: {w!r}" for w in self.restated])


@functools.cache
def english_words() -> frozenset[str]:
    """pyspellchecker's English dictionary, loaded once per process (about 0.3 s)."""
    from spellchecker import SpellChecker

    return frozenset(SpellChecker(language="en").word_frequency.dictionary)


@functools.cache
def allowed_words() -> frozenset[str]:
    """Dictionary words, the words of the measured-attribute vocabulary and of the content (tagger)
    vocabulary (each word of each phrase), and :data:`MUSIC_TERMS`."""
    from captioner import content  # genres, instruments, voices: imports the tagger's vocabulary

    own = {w for p in [*all_phrases(), *content.all_phrases()] for w in re.split(r"[\s,]+", p.lower()) if w}
    return english_words() | MUSIC_TERMS | own


def _is_word(token: str, known: frozenset[str]) -> bool:
    if token in known or token[0].isdigit() or _KEY_NAME.match(token):
        return True
    for suffix in _POSSESSIVE:
        if token.endswith(suffix) and len(token) > len(suffix):
            return _is_word(token[:-len(suffix)], known)
    if token.endswith("s") and token[:-1] in MUSIC_TERMS:  # plurals of the terms the dictionary lacks
        return True
    if any(re.search(gb, token) and re.sub(gb, us, token) in known for gb, us in _BRITISH):
        return True
    if token.endswith("ness") and len(token) > 6:  # a noun of a known adjective: upbeatness, heartedness
        stem = token[:-4]
        if stem in known or (stem.endswith("i") and stem[:-1] + "y" in known):
            return True
    parts = [p for p in token.split("-") if p]
    return len(parts) > 1 and ("".join(parts) in known or all(_is_word(p, known) for p in parts))


def non_words(text: str) -> list[str]:
    """Words of ``text`` that are not English words nor allowed terms, in order, each once."""
    known = allowed_words()
    out: list[str] = []
    for raw in _TOKEN.findall((text or "").lower()):
        token = raw.strip("-'’")
        if token and not _is_word(token, known) and token not in out:
            out.append(token)
    return out


def _forms(word: str) -> set[str]:
    """``word`` and the forms an LLM makes of it: clean → cleaning, cleaned, cleanly, cleaner, ..."""
    stems = {word, word[:-1]} if word.endswith("e") else {word}
    if word.endswith("y"):
        stems.add(word[:-1] + "i")
    return {word} | {s + x for s in stems for x in _SUFFIXES}


def _alternation(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


@functools.cache
def _patterns() -> tuple[re.Pattern, ...]:
    bands = {p.lower() for s in SCALES.values() for b in s.bands for p in b.phrases if " " not in p} - NOUNS_TOO
    adjectives = (bands | {m.lower() for m in MOOD_LEXICON}
                  | {p.lower() for p in NO_PULSE_PHRASES if " " not in p}) - NOUNS_TOO
    label_of = re.compile(r"\b(?:%s)\s+of\s+(?:%s)\b%s" % (
        _alternation(ATTRIBUTE_LABELS), _alternation({f for w in bands for f in _forms(w)}),
        r"(?=\s*(?:[.,;:!?]|$|and\b|or\b|with\b))"), re.IGNORECASE)
    as_noun = re.compile(r"\b(?:of|with|a|an|the)\s+(?:%s)%s" % (_alternation(adjectives), _CLAUSE_END),
                         re.IGNORECASE)
    return label_of, as_noun


def misused_vocabulary(text: str) -> list[str]:
    """Phrases of ``text`` that put an attribute word where English needs a noun, in order, each once."""
    out: list[str] = []
    for pattern in _patterns():
        for m in pattern.finditer(text or ""):
            phrase = " ".join(m.group(0).split())
            if not any(phrase in p for p in out):  # "of clean" inside "noise of clean" is one finding
                out.append(phrase)
    return out


# Words left out of the restated-fact check: pronouns (content.PERFORMER: "he ... his" is English),
# and players and singing, which English names beside their instrument or voice ("a guitarist
# plays an acoustic guitar", "a male vocalist sings in a high voice", "a choral piece for choir").
_NOT_RESTATED = frozenset({"he", "his", "him", "she", "her", "drummer", "guitarist", "pianist", "singer", "singers",
                           "vocalist", "vocalists", "singing", "sings", "sung", "voice", "voices", "vocal", "vocals",
                           "choral", "operatic"})
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# Nouns of a part an instrument plays: before one, the instrument word names the part, so "a synth
# bassline and a synth lead" names two parts, not the synth twice.
_PARTS = frozenset("""
    lead leads bassline basslines bass solo solos loop loops fill fills pad pads line lines melody melodies
    chord chords riff riffs arpeggio arpeggios pattern patterns part parts hits roll rolls notes strums groove
    grooves break breaks intro outro
    """.split())


@functools.cache
def fact_words() -> dict[str, str]:
    """One-word phrases of the facts a caption states -> the fact: content words and their synonyms
    ("drum", "drums" -> "drums"), one-word band words of the measured scales ("loud" -> "loudness:
    loud", which "moderately loud" holds too), mood words and "bpm". Content phrases of several words
    are read whole (:func:`_fact_phrases`): their words alone ("new", "heavy", "rhythm") state nothing."""
    from captioner import content

    out: dict[str, str] = {}
    for word in content.WORDS:
        for phrase in word.phrases:
            if " " not in phrase and phrase.lower() not in _NOT_RESTATED:
                out.setdefault(phrase.lower(), word.phrase)
    for name, scale in SCALES.items():
        for band in scale.bands:
            for phrase in band.phrases:
                if " " not in phrase and "," not in phrase:
                    out.setdefault(phrase.lower(), f"{name}: {band.phrases[0]}")
    for mood in MOOD_LEXICON:
        out.setdefault(mood.lower(), mood)
    out["bpm"] = "BPM"
    return out


@functools.cache
def _fact_phrases() -> tuple[re.Pattern, dict[str, str]]:
    """Content phrases of several words, each read as one ("hard rock" and "progressive rock" are two
    genres, not "rock" twice): their pattern, and each one's joined form -> its fact."""
    from captioner import content

    joined = {"_".join(p.lower().split()): w.phrase for w in content.WORDS for p in w.phrases
              if " " in p and not set(p.lower().split()) & _NOT_RESTATED}
    return phrase_pattern([j.replace("_", " ") for j in joined]), joined


def fact_of(token: str) -> str | None:
    """The fact a lower-case word states (plurals of the forms too), or None."""
    facts = fact_words()
    return facts.get(token) or _fact_phrases()[1].get(token) or (
        facts.get(token[:-1]) if token.endswith("s") else None)


def facts_in(sentence: str) -> list[str]:
    """The facts one sentence states, in order, once per mention; an instrument word before the part
    it plays ("synth bassline") names the part, not the instrument."""
    joined = _fact_phrases()[0].sub(lambda m: "_".join(m.group(0).split()), sentence.lower())
    tokens = [m.group(0).strip("-'’") for m in _TOKEN.finditer(joined)]
    facts = (None if after in _PARTS else fact_of(token) for token, after in zip(tokens, [*tokens[1:], ""]))
    return [f for f in facts if f]


def restated_words(text: str) -> list[str]:
    """Facts written twice within one sentence of ``text`` (their canonical words), in order, each once."""
    out: list[str] = []
    for sentence in _SENTENCE.split(text or ""):
        facts = facts_in(sentence)
        for i, fact in enumerate(facts):
            if fact in facts[:i] and fact not in out:
                out.append(fact)
    return out


# Capitalised words a caption may use inside a sentence: key names, units, and the vocabularies' own.
_CAPITALS_OK = frozenset({"BPM", "I", "R&B", "Indian", "DJ", "MIDI", "EDM", "TV", "Hz", "kHz", "dB", "dBFS"})
_KEY_LETTER = re.compile(r"^[A-G](?:#|b|♯|♭|-sharp|-flat)?(?:-major|-minor)?$")
_SENTENCE_START = re.compile(r"(?:^|[.!?:]\s+|[\"“(]\s*)$")


def invented_names(text: str) -> list[str]:
    """Runs of capitalised words inside a sentence ("The Killers", "Electronic Lavalier"), in order.

    A captioner told only tags cannot know a title, a band, a place or a brand, so its are invented;
    one that hears the clip may name a Rhodes piano, so only captioners without ears are held to it
    (:func:`captioner.postprocess.check`, the audit's flags)."""
    out: list[str] = []
    run: list[str] = []
    for m in _TOKEN.finditer(text or ""):
        word = m.group(0)
        capital = word[:1].isupper() and word not in _CAPITALS_OK and not _KEY_LETTER.match(word)
        if capital and not _SENTENCE_START.search(text[:m.start()]):
            run.append(word)
            continue
        if run and " ".join(run) not in out:
            out.append(" ".join(run))
        run = []
    if run and " ".join(run) not in out:
        out.append(" ".join(run))
    return out


def check(text: str) -> SenseCheck:
    """The three checks on one caption."""
    return SenseCheck(tuple(non_words(text)), tuple(misused_vocabulary(text)), tuple(restated_words(text)))


def nonsense_reasons(text: str) -> list[str]:
    """Why ``text`` does not read as English (``"non-word: 'kended'"``, ...); empty when it does."""
    return check(text).reasons()
