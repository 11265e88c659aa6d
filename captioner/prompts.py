"""Prompts for the LLM captioners, in one place and versioned.

``PROMPT_VERSION`` goes into every caption's ``captioner`` string, so a change to any text here
must bump it: captions written with different prompts are then distinguishable in the dataset.

The tags-llm prompt is LP-MusicCaps style: measured descriptors and VA mood words become tags,
and the model rewrites the tags as prose. Small models (SmolLM2-135M) invent lyrics, singers
and instruments when asked bare, so the chat carries worked few-shot examples whose answers use
only the tags they were given.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from captioner.vocab import brightness_word, loudness_word, mood_words, rhythm_word, tempo_word

PROMPT_VERSION = "tags-v1"
# audio-v2: the release's caption style (genre, instruments, performance, recording quality,
# mood) with the measured facts the caption must not contradict.
AUDIO_PROMPT_VERSION = "audio-v2"

SYSTEM = (
    "You write short captions for instrumental music clips. Use only the facts in the tags: "
    "the tempo, key, dynamics, timbre, rhythm and mood. Do not mention lyrics, singers, "
    "instruments or genres. Answer with one or two plain English sentences."
)

# Captions of the IMEMNet-C release read like MusicCaps: genre, instruments, performance,
# recording quality, then mood. The example shows that shape; the facts keep tempo, key and
# dynamics true (the model hears timbre and instruments far better than it counts BPM).
AUDIO_STYLE_EXAMPLE = (
    "The jazz song showcases a vibraphone solo melody. It is accompanied by punchy snare and kick "
    "hits, shimmering cymbals, and a groovy bass guitar. The recording is clean and well balanced. "
    "The composition conveys an energetic and passionate mood."
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
# Mood sources: where a caption's mood words come from (recorded in the captioner id).
MOOD_SOURCES = ("labels", "none")

@dataclass(frozen=True)
class Tags:
    """The facts a caption may state, as words (what the prompt shows and grounding checks)."""

    tempo_bpm: int
    tempo: str
    key: str
    mode: str
    dynamics: str
    timbre: str
    rhythm: str
    moods: tuple[str, ...]

    def render(self) -> str:
        """The user message body: one tag per line."""
        return "\n".join([
            f"tempo: {self.tempo}, about {self.tempo_bpm} BPM",
            f"key: {self.key} {self.mode}",
            f"dynamics: {self.dynamics}",
            f"timbre: {self.timbre}",
            f"rhythm: {self.rhythm}",
            f"mood: {', '.join(self.moods)}",
        ])


def tags_for(descriptors: dict[str, Any], valence: float, arousal: float) -> Tags:
    """Turn measured descriptors and VA labels into the shared vocabulary's words."""
    d = descriptors
    bpm = float(d["tempo_bpm"])
    return Tags(
        tempo_bpm=round(bpm), tempo=tempo_word(bpm), key=str(d["key"]), mode=str(d["mode"]),
        dynamics=loudness_word(d["loudness_db"]), timbre=brightness_word(d["brightness"]),
        rhythm=rhythm_word(d["onset_rate"]), moods=mood_words(valence, arousal),
    )


# Worked examples: (descriptors, valence, arousal, answer). Each answer states only its tags'
# facts, and tests check that every answer passes the grounding check against its own tags.
FEW_SHOT: tuple[tuple[dict[str, Any], float, float, str], ...] = (
    (
        {"tempo_bpm": 140.0, "key": "E", "mode": "major", "loudness_db": -12.0,
         "brightness": 3200.0, "onset_rate": 5.0},
        0.8, 0.85,
        "A fast, joyful piece in E major at about 140 BPM, loud and bright with a busy rhythm. "
        "It sounds energetic and exuberant.",
    ),
    (
        {"tempo_bpm": 68.0, "key": "D", "mode": "minor", "loudness_db": -34.0,
         "brightness": 900.0, "onset_rate": 1.0},
        0.2, 0.2,
        "A slow, melancholic piece in D minor at about 68 BPM. "
        "Soft and dark in tone with a sparse rhythm, it feels sad and gloomy.",
    ),
    (
        {"tempo_bpm": 92.0, "key": "G", "mode": "major", "loudness_db": -22.0,
         "brightness": 2000.0, "onset_rate": 2.5},
        0.7, 0.3,
        "A calm, warm piece in G major at a moderate tempo of about 92 BPM. "
        "Its moderately loud, balanced sound and steady rhythm feel serene.",
    ),
)


def tags_messages(descriptors: dict[str, Any], valence: float, arousal: float) -> list[dict[str, str]]:
    """The tags-llm chat: system rules, the worked examples, then this clip's tags."""
    messages = [{"role": "system", "content": SYSTEM}]
    for d, v, a, answer in FEW_SHOT:
        messages.append({"role": "user", "content": tags_for(d, v, a).render()})
        messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": tags_for(descriptors, valence, arousal).render()})
    return messages


def plain_prompt(messages: list[dict[str, str]]) -> str:
    """Render a chat as plain text, for tokenizers without a chat template."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(lines) + "\n\nAssistant:"


def audio_facts(descriptors: dict[str, Any], valence: float, arousal: float, mood: str = "labels") -> str:
    """The measured facts of one clip as tag lines (the tags-llm tags; no mood line for ``mood='none'``).

    A clip without a pulse (tempo 0: too few onsets) says so instead of stating a BPM.
    """
    if mood not in MOOD_SOURCES:
        raise ValueError(f"unknown mood source {mood!r}; choose one of: {', '.join(MOOD_SOURCES)}")
    lines = tags_for(descriptors, valence, arousal).render().splitlines()
    if float(descriptors.get("tempo_bpm", 0.0)) <= 0.0:
        lines = ["tempo: no steady pulse" if line.startswith("tempo:") else line for line in lines]
    if mood == "none":
        lines = [line for line in lines if not line.startswith("mood:")]
    return "\n".join(lines)


def audio_instruction(descriptors: dict[str, Any], valence: float, arousal: float, mood: str = "labels") -> str:
    """The user text that follows the clip: what to write, the facts, the style example."""
    mood_rule = AUDIO_MOOD_FROM_LABELS if mood == "labels" else AUDIO_MOOD_FROM_MODEL
    return "\n".join([
        AUDIO_INSTRUCTION, mood_rule, "Measured facts:", audio_facts(descriptors, valence, arousal, mood),
        f"Example of the style (not of this clip): {AUDIO_STYLE_EXAMPLE}", AUDIO_CLOSING,
    ])


def audio_messages(instruction: str, audio_token_url: str = "clip.wav") -> list[dict[str, Any]]:
    """The audio-llm chat: one user turn holding the clip, then the instruction with the facts.

    The clip comes first so the shared part of every prompt (the template's opening) is a prefix.
    """
    return [{"role": "user", "content": [
        {"type": "audio", "audio_url": audio_token_url},
        {"type": "text", "text": instruction},
    ]}]
