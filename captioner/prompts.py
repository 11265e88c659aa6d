"""Prompts for the LLM captioners, in one place and versioned.

``PROMPT_VERSION`` goes into every caption's ``captioner`` string, so a change to any text here
must bump it: captions written with different prompts are then distinguishable in the dataset.

The tags-llm prompt is LP-MusicCaps style: measured descriptors and VA mood words become tags,
and the model rewrites the tags as prose. Small models (SmolLM2-135M) invent lyrics, singers
and instruments when asked bare, and copy the shape of the last example they saw, so the chat
carries worked few-shot examples whose answers use only their own tags, drawn per clip from a
pool of differently shaped answers (``variant``); each clip also gets its own subset of the
optional facts, so captions of similar clips do not all say the same things in the same order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from captioner.content import ContentTags, content_evidence, content_tags
from captioner.vocab import SCALES, has_pulse, key_is_confident, mood_words, tempo_is_confident, tempo_word

# tags-v3: genre, instruments and voice from the music tagger; key and tempo only when measured
# confidently; examples that name what their tags hear. tags-v4: the same prompt, its answer held to
# the facts given (captioner.faithful; "+loose" in the id when that is off). tags-v5: answers with a
# word the decoding rules forced are rejected (captioner.forced; "+unforced" in the id when off).
# tags-v6: a fact is stated once a sentence, while decoding (captioner.once; "+restating" when off)
# and by the check (captioner.sense).
PROMPT_VERSION = "tags-v6"
# draft-v1: the descriptor template's caption, rewritten by the model (see draft_messages).
# draft-v2: the same prompt, its answer held to the draft (captioner.faithful). draft-v3: answers
# with a word the decoding rules forced are rejected (captioner.forced). draft-v4: each fact once a
# sentence (captioner.once, captioner.sense).
DRAFT_PROMPT_VERSION = "draft-v4"
# audio-v2: the release's caption style (genre, instruments, performance, recording quality,
# mood) with the measured facts the caption must not contradict. audio-v3: every fact the
# descriptors support, and a style example free of timbre and loudness words (which the
# grounding check would hold against a copied example).
# audio-v4: the tagger's genre, instrument and voice tags given as what a tagger hears.
AUDIO_PROMPT_VERSION = "audio-v4"
# Mood sources: where a caption's mood words come from (recorded in the captioner id).
MOOD_SOURCES = ("labels", "none")  # --caption_mood: mood words from the VA labels, or none

SYSTEM = (
    "You write short captions for music clips. Use only the facts in the tags, each once, in your "
    "own words and order. Name a genre, an instrument or a voice only if the tags give it; never "
    "mention lyrics. Answer with one or two plain English sentences."
)

# Captions of the IMEMNet-C release read like MusicCaps: genre, instruments, performance,
# recording quality, then mood. The example shows that shape; the facts keep tempo, key and
# dynamics true (the model hears timbre and instruments far better than it counts BPM).
AUDIO_STYLE_EXAMPLE = (
    "The jazz song showcases a vibraphone solo melody. It is accompanied by punchy snare and kick "
    "hits, ride cymbals, and a groovy bass guitar. The recording is clean, with every instrument "
    "distinct. The composition conveys an energetic and passionate mood."
)
AUDIO_INSTRUCTION = (
    "Write a caption of this music clip in three or four sentences, in this order: the genre; the "
    "instruments and what each plays; the performance and the recording quality; then the mood it "
    "conveys. Use the measured facts below and never contradict them; state a tempo or key only "
    "as given."
)
AUDIO_MOOD_FROM_LABELS = "The listeners' mood is given: use these mood words."
AUDIO_MOOD_FROM_MODEL = "Judge the mood from what you hear."
AUDIO_CLOSING = "Do not invent lyrics or singers you cannot hear. Answer with the caption only."
AUDIO_TAGGER_NOTE = ("The genre, instruments and voice lines are what a music tagger hears in the clip: "
                     "trust them unless you clearly hear otherwise.")

# Optional facts: tag label -> scale attribute. Tempo, key and (with labels) mood are always given.
OPTIONAL = {"dynamics": "loudness", "timbre": "timbre", "rhythm": "rhythm", "texture": "percussion",
            "level over time": "dynamics", "harmony": "harmony", "noise": "noisiness"}
FACTS_PER_CLIP = 3


def mood_setting(extra: dict[str, Any] | None) -> str:
    """The mood source a captioner config asks for (``extra["mood"]``, ``--caption_mood``), checked."""
    mood = str((extra or {}).get("mood") or "labels")
    if mood not in MOOD_SOURCES:
        raise ValueError(f"caption mood {mood!r}: choose one of {', '.join(MOOD_SOURCES)}")
    return mood


@dataclass(frozen=True)
class Tags:
    """The facts a caption may state, as words (what the prompt shows and grounding checks)."""

    tempo_bpm: int | None  # None: no steady pulse, or a tempo too uncertain to state
    tempo: str | None  # None: not stated (a pulse whose tempo is not measured confidently)
    key: str | None  # None: the key estimate is not confident enough to state
    mode: str | None
    facts: tuple[tuple[str, str], ...]  # (label, word) of the optional facts shown
    moods: tuple[str, ...]  # empty with --caption_mood none
    content: ContentTags = ContentTags()  # genre, instruments and voice the tagger hears

    def render(self) -> str:
        """The user message body: one tag per line."""
        c = self.content
        lines = [f"genre: {', '.join(c.genres)}"] if c.genres else []
        lines += [f"instruments: {', '.join(c.instruments)}"] if c.instruments else []
        lines += [f"voice: {c.voice}"] if c.voice else []
        if self.tempo is not None:
            tempo = f"{self.tempo}, about {self.tempo_bpm} BPM" if self.tempo_bpm is not None else self.tempo
            lines.append(f"tempo: {tempo}")
        if self.key is not None:
            lines.append(f"key: {self.key} {self.mode}")
        lines += [f"{label}: {word}" for label, word in self.facts]
        if self.moods:
            lines.append(f"mood: {', '.join(self.moods)}")
        return "\n".join(lines)


def available_facts(d: dict[str, Any]) -> list[str]:
    """Labels of the optional facts the descriptors can support (old datasets lack the newer ones)."""
    return [label for label, attr in OPTIONAL.items() if d.get(SCALES[attr].field) is not None]


def tags_for(descriptors: dict[str, Any], valence: float, arousal: float, variant: int = 0,
             mood: bool = True, facts: tuple[str, ...] | None = None, tags: dict[str, Any] | None = None) -> Tags:
    """Turn measured descriptors, VA labels and tag probabilities into the shared vocabularies' words.

    ``facts``: which optional facts to show (default: ``FACTS_PER_CLIP`` of them, picked by ``variant``).
    """
    d = descriptors
    bpm = float(d["tempo_bpm"])
    if facts is None:
        pool = available_facts(d)
        start = variant % len(pool) if pool else 0
        facts = tuple((pool[start:] + pool[:start])[:FACTS_PER_CLIP])
    shown = tuple((label, SCALES[OPTIONAL[label]].word(float(d[SCALES[OPTIONAL[label]].field]))) for label in facts)
    stated_tempo = not has_pulse(d) or tempo_is_confident(d)
    stated_key = key_is_confident(d)
    return Tags(
        tempo_bpm=round(bpm) if has_pulse(d) and stated_tempo else None,
        tempo=tempo_word(bpm) if stated_tempo else None,
        key=str(d["key"]) if stated_key else None, mode=str(d["mode"]) if stated_key else None,
        facts=shown, moods=mood_words(valence, arousal) if mood else (), content=content_tags(tags),
    )


def _d(bpm, key, mode, loud, bright, onsets, perc, trend, change, noise) -> dict[str, Any]:
    return {"tempo_bpm": bpm, "beat_strength": 3.5, "key": key, "mode": mode, "key_strength": 0.85,
            "loudness_db": loud, "brightness": bright, "onset_rate": onsets, "percussive_ratio": perc,
            "loudness_trend_db": trend, "harmonic_change_rate": change, "noisiness": noise}


@dataclass(frozen=True)
class Example:
    """A worked example: its clip, the facts its tags show, and an answer stating exactly those."""

    descriptors: dict[str, Any]
    valence: float
    arousal: float
    facts: tuple[str, ...]
    heard: tuple[str, ...]  # content words (captioner.content) its tagger heard
    answer: str  # with mood words; the no-mood answer drops the sentence naming the mood
    answer_without_mood: str

    @property
    def tags(self) -> dict[str, Any]:
        return content_evidence(self.heard)


# Differently shaped answers (the opening of each differs), so the model does not learn one template.
# Tests check each answer passes the grounding check against its own tags, with and without mood.
EXAMPLES: tuple[Example, ...] = (
    Example(_d(140.0, "E", "major", -12.0, 3200.0, 5.0, 0.7, 0.0, 1.2, 0.05), 0.85, 0.85,
            ("dynamics", "rhythm"), ("electronic", "dance", "drums", "synthesizer", "instrumental"),
            "Loud, busy and joyful, this instrumental electronic dance track races along at a fast 140 BPM in "
            "E major, driven by drums and synthesizer.",
            "Loud and busy, this instrumental electronic dance track races along at a fast 140 BPM in E major, "
            "driven by drums and synthesizer."),
    Example(_d(68.0, "D", "minor", -34.0, 900.0, 1.0, 0.2, -6.0, 0.1, 0.02), 0.2, 0.2,
            ("timbre", "level over time"), ("classical", "piano"),
            "Mournful and dark, a slow classical piano piece in D minor near 68 BPM that keeps fading toward "
            "silence, gloomy to the end.",
            "Dark in colour, a slow classical piano piece in D minor near 68 BPM that keeps fading toward silence."),
    Example(_d(92.0, "G", "major", -22.0, 2000.0, 2.5, 0.45, 0.5, 0.5, 0.04), 0.62, 0.4,
            ("harmony", "texture"), ("folk", "guitar", "male vocals"),
            "A male voice sings over guitar in this folk song in G major; partly percussive "
            "figures move over shifting harmony at a moderate tempo of about 92 BPM, calm and relaxed.",
            "A male voice sings over guitar in this folk song in G major; partly percussive figures move over "
            "shifting harmony at a moderate tempo of about 92 BPM."),
    Example(_d(0.0, "A", "minor", -28.0, 1500.0, 0.3, 0.1, 5.0, 0.05, 0.03), 0.5, 0.45,
            ("level over time", "harmony"), ("ambient", "synthesizer"),
            "With no steady pulse, this ambient synthesizer piece in A minor hangs on static harmony and keeps "
            "building; its mood stays neutral and composed.",
            "With no steady pulse, this ambient synthesizer piece in A minor hangs on static harmony and keeps "
            "building."),
    Example(_d(124.0, "B", "minor", -14.0, 2600.0, 4.5, 0.75, 0.0, 1.1, 0.3), 0.2, 0.85,
            ("texture", "noise"), ("rock", "metal", "guitar", "drums"),
            "Guitar and drums drive a noisy, percussive metal track in B minor at a lively 124 BPM, aggressive "
            "and agitated.",
            "Guitar and drums drive a noisy, percussive metal track in B minor at a lively 124 BPM."),
    Example(_d(80.0, "F", "major", -31.0, 1000.0, 1.2, 0.25, 0.0, 0.6, 0.02), 0.7, 0.3,
            ("dynamics", "noise"), ("classical", "strings", "harp"),
            "Strings and harp play softly in this classical piece in F major at a moderate tempo near 80 BPM, "
            "clean in sound and serene, even tranquil, in mood.",
            "Strings and harp play softly in this classical piece in F major at a moderate tempo near 80 BPM, "
            "clean in sound."),
    Example(_d(112.0, "C#", "major", -18.0, 2900.0, 3.0, 0.5, 0.0, 1.0, 0.1), 0.65, 0.6,
            ("timbre", "rhythm"), ("pop", "drums", "female vocals"),
            "A female singer leads this bright pop song in C# major over drums and a regular rhythm at a "
            "lively 112 BPM, cheerful and upbeat throughout.",
            "A female singer leads this bright pop song in C# major over drums and a regular rhythm at a "
            "lively 112 BPM."),
    Example(_d(100.0, "D", "major", -20.0, 1900.0, 2.2, 0.3, -5.0, 0.08, 0.15), 0.35, 0.4,
            ("level over time", "noise"), ("jazz", "piano", "drums", "instrumental"),
            "Slightly grainy and gradually fading, an instrumental jazz tune for piano and drums sits in D major "
            "at a moderate tempo of about 100 BPM and sounds wistful.",
            "Slightly grainy and gradually fading, an instrumental jazz tune for piano and drums sits in D major "
            "at a moderate tempo of about 100 BPM."),
)
EXAMPLES_PER_PROMPT = 3


def examples_for(variant: int) -> list[Example]:
    """``EXAMPLES_PER_PROMPT`` examples, rotated by ``variant`` so the last one (the shape a small
    model copies most) differs from clip to clip."""
    n = len(EXAMPLES)
    step = 1 + variant // n % (n - 1)  # vary the companions too, not only the last example
    last = variant % n
    return [EXAMPLES[(last - step * k) % n] for k in range(EXAMPLES_PER_PROMPT - 1, -1, -1)]


def tags_messages(descriptors: dict[str, Any], valence: float, arousal: float, variant: int = 0,
                  mood: bool = True, tags: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """The tags-llm chat: system rules, worked examples chosen by ``variant``, then this clip's tags."""
    messages = [{"role": "system", "content": SYSTEM}]
    for ex in examples_for(variant):
        shown = tags_for(ex.descriptors, ex.valence, ex.arousal, mood=mood, facts=ex.facts, tags=ex.tags)
        messages.append({"role": "user", "content": shown.render()})
        messages.append({"role": "assistant", "content": ex.answer if mood else ex.answer_without_mood})
    messages.append({"role": "user", "content": tags_for(descriptors, valence, arousal, variant, mood, tags=tags).render()})
    return messages


SYSTEM_DRAFT = (
    "You rewrite captions of music clips. Say what the draft says in your own words and order, in one or "
    "two plain English sentences; you may leave details out, but add nothing the draft does not say."
)


def draft_messages(descriptors: dict[str, Any], valence: float, arousal: float, variant: int = 0,
                   mood: bool = True, tags: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """The draft design: the descriptor template's caption of the clip, for the model to rewrite.

    A small model paraphrases a well-formed sentence far more reliably than it composes one from tag
    lines (docs/captioner.md, "Choosing the LLM"); the worked examples pair each example clip's
    template caption with its hand-written answer."""
    from captioner.backends.descriptor import describe  # the backend imports this module

    messages = [{"role": "system", "content": SYSTEM_DRAFT}]
    for ex in examples_for(variant):
        draft = describe(ex.descriptors, ex.valence, ex.arousal, mood, ex.tags)
        messages.append({"role": "user", "content": f"Draft: {draft}"})
        messages.append({"role": "assistant", "content": ex.answer if mood else ex.answer_without_mood})
    messages.append({"role": "user", "content": f"Draft: {describe(descriptors, valence, arousal, mood, tags)}"})
    return messages


# Prompt design -> (chat builder, version that goes into the captioner id).
PROMPT_DESIGNS = {"tags": (tags_messages, PROMPT_VERSION), "draft": (draft_messages, DRAFT_PROMPT_VERSION)}
DEFAULT_DESIGN = "draft"  # chosen by figures: docs/captioner.md, "Choosing the LLM"
DEFAULT_PROMPT_VERSION = PROMPT_DESIGNS[DEFAULT_DESIGN][1]


def plain_prompt(messages: list[dict[str, str]]) -> str:
    """Render a chat as plain text, for tokenizers without a chat template."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(lines) + "\n\nAssistant:"


def audio_facts(descriptors: dict[str, Any], valence: float, arousal: float, mood: str = "labels",
                tags: dict[str, Any] | None = None) -> str:
    """The measured facts of one clip as tag lines (the tags-llm tags; no mood line for ``mood='none'``).

    A clip without a pulse (tempo 0: too few onsets) says so instead of stating a BPM.
    """
    if mood not in MOOD_SOURCES:
        raise ValueError(f"unknown mood source {mood!r}; choose one of: {', '.join(MOOD_SOURCES)}")
    # Every measured fact the descriptors hold: a model that hears the clip can use them all.
    return tags_for(descriptors, valence, arousal, mood=mood == "labels",
                    facts=tuple(available_facts(descriptors)), tags=tags).render()


def audio_instruction(descriptors: dict[str, Any], valence: float, arousal: float, mood: str = "labels",
                      tags: dict[str, Any] | None = None) -> str:
    """The user text that follows the clip: what to write, the facts (genre, instruments and voice as
    what a music tagger hears), the style example."""
    mood_rule = AUDIO_MOOD_FROM_LABELS if mood == "labels" else AUDIO_MOOD_FROM_MODEL
    return "\n".join([
        AUDIO_INSTRUCTION, mood_rule, AUDIO_TAGGER_NOTE if tags else "", "Measured facts:",
        audio_facts(descriptors, valence, arousal, mood, tags),
        f"Example of the style (not of this clip): {AUDIO_STYLE_EXAMPLE}", AUDIO_CLOSING,
    ]).replace("\n\n", "\n")


def audio_messages(instruction: str, audio_token_url: str = "clip.wav") -> list[dict[str, Any]]:
    """The audio-llm chat: one user turn holding the clip, then the instruction with the facts.

    The clip comes first so the shared part of every prompt (the template's opening) is a prefix.
    """
    return [{"role": "user", "content": [
        {"type": "audio", "audio_url": audio_token_url},
        {"type": "text", "text": instruction},
    ]}]
