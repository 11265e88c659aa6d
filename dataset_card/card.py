"""The dataset card (README.md): Hub YAML front matter plus a body generated from run.json and data."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import yaml

from dataset_card import licences, schema
from dataset_card.stats import CaptionSources, DatasetStats, Summary

METADATA_ONLY_TAG = "metadata-only"
LICENSE_FILE = "LICENSE.md"  # per-source terms; the card's `license: other` links to it
TASK_CATEGORIES = ["audio-classification", "image-classification", "text-to-audio", "text-retrieval"]
TAGS = ["music", "emotion", "valence-arousal", "music-captioning", "multimodal", "imemnet", "mmva"]

# What we know of each source's terms lives in dataset_card.licences (publish checks it too).
SOURCE_NOTES: dict[str, str] = {name: terms.note for name, terms in licences.TERMS.items()}

CITATIONS = r"""```bibtex
@article{mmva2025,
  title   = {MMVA: Multimodal Matching Based on Valence and Arousal across Images, Music, and Musical Captions},
  journal = {arXiv preprint arXiv:2501.01094},
  year    = {2025}
}
@inproceedings{zhao2020imemnet,
  title     = {Emotion-Based End-to-End Matching Between Image and Music in Valence-Arousal Space},
  author    = {Zhao, Sicheng and Li, Yaxian and Yao, Xingxu and Nie, Weizhi and Xu, Pengfei and Yang, Jufeng and Keutzer, Kurt},
  booktitle = {Proceedings of the 28th ACM International Conference on Multimedia},
  year      = {2020},
  note      = {arXiv:2009.05103}
}
@article{aljanaki2017deam,
  title   = {Developing a benchmark for emotional analysis of music},
  author  = {Aljanaki, Anna and Yang, Yi-Hsuan and Soleymani, Mohammad},
  journal = {PLOS ONE},
  volume  = {12},
  number  = {3},
  pages   = {e0173392},
  year    = {2017}
}
@techreport{lang2008iaps,
  title       = {International Affective Picture System (IAPS): Affective ratings of pictures and instruction manual},
  author      = {Lang, Peter J. and Bradley, Margaret M. and Cuthbert, Bruce N.},
  institution = {University of Florida},
  number      = {A-8},
  year        = {2008}
}
@article{marchewka2014naps,
  title   = {The Nencki Affective Picture System (NAPS): Introduction to a novel, standardized, wide-range, high-quality, realistic picture database},
  author  = {Marchewka, Artur and {\.Z}urawski, {\L}ukasz and Jednor{\'o}g, Katarzyna and Grabowska, Anna},
  journal = {Behavior Research Methods},
  volume  = {46},
  number  = {2},
  pages   = {596--610},
  year    = {2014}
}
@article{kosti2019emotic,
  title   = {Context Based Emotion Recognition Using EMOTIC Dataset},
  author  = {Kosti, Ronak and Alvarez, Jose M. and Recasens, Adria and Lapedriza, Agata},
  journal = {IEEE Transactions on Pattern Analysis and Machine Intelligence},
  volume  = {42},
  number  = {11},
  pages   = {2755--2766},
  year    = {2020}
}
```"""


@dataclass(frozen=True)
class CardInputs:
    """What the card is made of."""

    stats: DatasetStats
    run: dict[str, Any]  # run.json ({} when absent)
    data_files: dict[str, dict[str, list[str]]]  # table -> split -> shard paths
    split_bytes: dict[str, dict[str, int]]  # table -> split -> parquet bytes
    plots: list[str]
    metadata_only: bool
    caption_audit: dict[str, Any] = field(default_factory=dict)  # caption_audit.json of the run ({} when absent)
    audio: "AudioSummary | None" = None  # how the clips are stored (None: no audio column)


@dataclass(frozen=True)
class AudioSummary:
    """How the `music` table's audio is stored, read from the data itself."""

    codec: str  # what the card calls it, e.g. "Opus in Ogg (lossy)"; "mixed: ..." when clips differ
    sample_rate: int | None
    clips: int
    seconds: float  # sum of end_s - start_s
    bytes: int  # size of the audio column in the shards' files

    @property
    def kbps(self) -> float:
        return self.bytes * 8 / self.seconds / 1000 if self.seconds else 0.0


def features_for(table: str, metadata_only: bool) -> datasets.Features:
    return schema.metadata_only_features(table) if metadata_only else schema.FEATURES[table]


def front_matter(inp: CardInputs) -> dict[str, Any]:
    """The YAML header the Hub reads: configs, dataset_info, licence, tasks, tags, sizes."""
    tables = [t for t in schema.TABLES if t in inp.data_files]
    configs = [{"config_name": t, "data_files": [{"split": s, "path": f"data/{t}/{s}-*.parquet"}
                                                  for s in schema.SPLITS if s in inp.data_files[t]]}
               for t in tables]
    infos = [_dataset_info(t, inp) for t in tables]
    total = sum(sum(v.values()) for v in inp.stats.rows.values())
    return {
        "pretty_name": "IMEMNet-C" + (" (metadata only)" if inp.metadata_only else ""),
        "license": "other",
        "license_name": "mixed-per-source",
        "license_link": LICENSE_FILE,
        "license_details": "Each row carries its source; music rows also carry a `license`. See 'Sources and licences'.",
        "language": ["en"],
        "task_categories": TASK_CATEGORIES,
        "tags": TAGS + ([METADATA_ONLY_TAG] if inp.metadata_only else []),
        "size_categories": [_size_category(total)],
        "configs": configs,
        "dataset_info": infos,
    }


def _dataset_info(table: str, inp: CardInputs) -> dict[str, Any]:
    splits = [{"name": s, "num_bytes": inp.split_bytes[table][s], "num_examples": inp.stats.rows[table][s]}
              for s in schema.SPLITS if s in inp.data_files[table]]
    size = sum(inp.split_bytes[table].values())
    return {"config_name": table, "features": features_for(table, inp.metadata_only)._to_yaml_list(),
            "splits": splits, "download_size": size, "dataset_size": size}


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "n>1M"


def render(inp: CardInputs) -> str:
    """The full README.md text."""
    head = yaml.safe_dump(front_matter(inp), sort_keys=False, allow_unicode=True, width=1000)
    return "---\n" + head + "---\n\n" + "\n\n".join(_body(inp)) + "\n"


def _body(inp: CardInputs) -> list[str]:
    s = inp.stats
    return [
        "# IMEMNet-C" + (" (metadata only)" if inp.metadata_only else ""),
        _intro(inp.metadata_only, s),
        "## Loading\n\n```python\nimport datasets\n"
        + "".join(f'{t} = datasets.load_dataset("<repo or folder>", "{t}")\n' for t in inp.data_files)
        + "```",
        "## Audio and size\n\n" + _audio_and_size(inp),
        "## Sources and licences\n\n" + _sources(s),
        "## How it was built\n\n" + _provenance(inp.run, s),
        "## Splits\n\n" + _splits(inp.run),
        "## Caption quality\n\n" + _caption_quality(inp.caption_audit),
        "## Statistics\n\n" + _statistics(s, inp.plots),
        _USES_AND_LIMITS,
        "## Citation\n\n" + CITATIONS,
    ]


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _audio_and_size(inp: CardInputs) -> str:
    """The codec the clips are stored in (with its measured rate) and the size of every config."""
    sizes = {t: sum(v.values()) for t, v in inp.split_bytes.items()}
    total = (f"The dataset's files take {_gb(sum(sizes.values()))} (" +
             ", ".join(f"`{t}` {_gb(n)}" for t, n in sizes.items()) + "): what `load_dataset` downloads.")
    a = inp.audio
    if a is None:
        return total + " This build holds no audio."
    opts = (inp.run or {}).get("options", {})
    chosen = " ".join(f"`--{k} {opts[k]}`" for k in ("audio_codec", "audio_bitrate", "audio_sample_rate") if opts.get(k))
    rate = f"{a.sample_rate / 1000:g} kHz" if a.sample_rate else "mixed rates"
    hours = a.seconds / 3600
    return (f"Clips are stored as **{a.codec}**, mono, {rate}, {a.kbps:.0f} kbit/s on average"
            + (f" (built with {chosen})" if chosen else "") +
            f": {a.clips} clips, {hours:.1f} h of audio in {_gb(a.bytes)}"
            + (f" ({a.bytes / hours / 1e6:.0f} MB per hour of clips)" if hours else "") + ". " + total +
            " `datasets`' `Audio` feature decodes every codec the pipeline writes (FLAC, Opus, MP3; "
            "`python -m pipeline.run --audio_codec`)." + _overlap(opts))


def _overlap(opts: dict[str, Any]) -> str:
    clip, hop = opts.get("clip_seconds"), opts.get("hop_seconds")
    if not isinstance(clip, (int, float)) or not isinstance(hop, (int, float)) or not 0 < hop < clip:
        return ""
    return (f" Clips overlap ({clip:g} s clips every {hop:.3g} s), so each moment of a song is stored in about "
            f"{clip / hop:.0f} clips.")


def _intro(metadata_only: bool, s: DatasetStats) -> str:
    text = ("IMEMNet-C pairs **music clips**, a **musical caption** per clip and **images**, all labelled "
            "with valence and arousal (VA) in [0, 1], plus music–image **pairs** with a matching score. "
            "It follows the IMEMNet-C dataset of MMVA (arXiv 2501.01094), built on IMEMNet "
            "(arXiv 2009.05103): clips are cut from emotion-annotated songs (ids `{song_id}-{clip_index}`), "
            "clip VA is the mean of the song's 2 Hz VA curve over the clip, and pairs are scored "
            "`1 − ‖va_a − va_b‖₂ / √2` unless they come from IMEMNet's matching files.\n\n"
            "Three configs: `music` (audio, VA, caption, descriptors), `images` (image, VA) and `pairs`. "
            "Splits are by song (a clip's song is in one split only) and by image id.")
    if metadata_only:
        text += ("\n\n**Metadata only:** this build leaves out the `audio` and `image` columns because the "
                 "sources' licences forbid redistributing the media. Obtain the media from the original "
                 "sources and join on `clip_id`/`song_id` and `image_id`. Left out:\n\n" + _left_out(s))
    return text


def _left_out(s: DatasetStats) -> str:
    """One line per table and source: whose media this metadata-only build does not hold."""
    counts: dict[tuple[str, str], int] = {}
    for r in s.sources:
        key = (str(r["table"]), str(r["source"]))
        counts[key] = counts.get(key, 0) + int(r["rows"])
    return "\n".join(f"- `{schema.MEDIA_COLUMN.get(t, t)}` of {n} `{t}` rows from **{src}** "
                     f"({licences.restriction(src) or 'redistributable'})" for (t, src), n in sorted(counts.items()))


def _sources(s: DatasetStats) -> str:
    lines = ["| config | source | licence (row column) | media terms | rows |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['table']} | {r['source']} | {r['license'] or '—'} | "
              f"{licences.restriction(str(r['source'])) or 'redistributable'} | {r['rows']} |" for r in s.sources]
    notes = sorted({str(r["source"]) for r in s.sources})
    lines.append("")
    lines += [f"- **{src}**: {licences.note(src)}" for src in notes]
    return "\n".join(lines)


def _provenance(run: dict[str, Any], s: DatasetStats) -> str:
    if not run:
        return "No `run.json` was found next to the data: provenance unknown.\n\n" + _caption_sources(s.captions)
    opts = run.get("options", {})
    # Paths of the machine that built the data say nothing to a user: leave them out.
    shown = {k: _public(v) for k, v in opts.items() if k not in ("output", "cache_dir", "no_progress")}
    versions = "\n".join(f"| {k} | {v} |" for k, v in sorted(run.get("versions", {}).items()))
    caps = "\n".join(f"| `{c}` | {n} |" for c, n in s.captioners.items()) or "| — | 0 |"
    return (f"Built by `python -m pipeline.run` on {run.get('runner', '?')} (Python {run.get('python', '?')}) "
            f"in {run.get('wall_s', '?')} s, then `python -m dataset_card build`.\n\n"
            f"Options:\n\n```json\n{json.dumps(shown, indent=1, sort_keys=True, default=str)}\n```\n\n"
            "Captioner (backend/model/prompt version) and clips captioned:\n\n"
            f"| captioner | clips |\n| --- | --- |\n{caps}\n\n"
            + _caption_sources(s.captions) +
            f"Package versions:\n\n| package | version |\n| --- | --- |\n{versions}")


def _caption_sources(c: CaptionSources | None) -> str:
    """Who wrote the captions, and why the failures table's caption rows are not missing clips."""
    if c is None:
        return ""
    reasons = ", ".join(f"{k} {n}" for k, n in c.fallback_by_reason.items())
    return (f"{c.chosen} clips captioned by the chosen captioner, {c.fallback} clips captioned by the fallback "
            "template after the chosen captioner rejected their captions"
            + (f" ({reasons})" if c.fallback else "") + (f", {c.source} captioned by their source" if c.source else "")
            + ". A rejected clip keeps its row: its `captioner` value reads `<template> (fallback from <chosen>)` "
            "and the failures table keeps the rejection as a row of stage `caption`, so those rows are not "
            f"missing clips. Clips missing because of their caption: {c.missing}.\n\n")


CAPTION_AUDIT_FILE = "caption_audit.json"  # written by `python -m captioner.audit` (and by each run)
_AUDIT_ROWS = (  # (row name, key in the audit's per-captioner record)
    ("captions", "captions"), ("unique share", "unique_share"), ("distinct-2 (word pairs)", "distinct_2"),
    ("vocabulary (words)", "vocabulary"), ("mean length (words)", "words_mean"),
    ("with a repeated 3-word phrase", "repeated_phrase_share"),
    ("most common opening (5 words, facts masked)", "top_opening_share"),
    ("with a grounding failure", "grounding_failure_share"), ("self-contradicting", "self_contradiction_share"),
    ("with a word that is not English", "non_word_share"), ("with a vocabulary word misused", "misused_share"),
    ("stating a fact twice in a sentence", "restated_share"),
    ("mood words from", "mood_source"),
)


def _caption_quality(audit: dict[str, Any]) -> str:
    caps = audit.get("captioners") or {}
    if not caps:
        return ("No caption audit was found next to the data (`caption_audit.json`): run "
                "`python -m captioner.audit RUN_DIR` before building the card.")
    ids = list(caps)
    head = "| | " + " | ".join(f"`{c}`" for c in ids) + " |\n| --- |" + " --- |" * len(ids)
    rows = "\n".join(f"| {name} | " + " | ".join(_cell(caps[c].get(key)) for c in ids) + " |" for name, key in _AUDIT_ROWS)
    fails = audit.get("caption_failures") or {}
    lines = ["Measured by `python -m captioner.audit` over every caption (grounding: each tempo, key, loudness, "
             "timbre, rhythm, texture and mood claim checked against the clip's descriptors and VA label; sense: "
             "words that are not English words, measured-attribute words put where English needs a noun, "
             "as in \"noise of cleaning\", and a fact word written twice in one sentence, as in \"Drum, a piece "
             "featuring drums\").",
             "", head, rows, "",
             "Rejected captions (failure rows of stage `caption`; each rejected clip is in the data with the "
             "fallback template's caption unless counted missing above): "
             + (", ".join(f"{k} {v}" for k, v in fails.items()) if fails else "none") + "."]
    from_labels = [c for c in ids if caps[c].get("mood_source") == "labels"]
    if from_labels:
        lines += ["", "**Mood words derived from the VA annotations.** The captions of "
                  + ", ".join(f"`{c}`" for c in from_labels)
                  + " name the mood of the clip's own valence/arousal label, so each such caption carries its "
                  "label: caption→VA results on them are not an independent measurement of the caption's "
                  "content. Build with `--caption_mood none` for captions without mood words."]
    lines += [f"- {n}" for n in audit.get("notes") or []]
    return "\n".join(lines)


def _cell(x: Any) -> str:
    if isinstance(x, float):
        return _fmt(x)
    return "—" if x is None else str(x)


def _splits(run: dict[str, Any]) -> str:
    """The split rule, and what it placed, moved and dropped when matching files were given."""
    text = ("Songs (with all their clips) and images are split 80/10/10 by a hash of their id, so a song's "
            "clips never sit in two splits.")
    policy = (run or {}).get("split_policy") or {}
    if not policy.get("rule"):
        return text
    rows = [f"| {what} | {k} | {n} |" for what in ("songs", "images") for k, n in policy.get(what, {}).items()]
    rows += [f"| pairs {outcome} | {k} | {n} |" for outcome, d in policy.get("pairs", {}).items() for k, n in d.items()]
    return (text + " With matching files: " + policy["rule"] + ". No pair names a clip, song or image of "
            "another split, so a test pair never scores a clip the model was trained on.\n\n"
            "What the rule did (`referenced splits->split` for songs and images; pair outcomes):\n\n"
            "| what | outcome | count |\n| --- | --- | --- |\n" + "\n".join(rows))


# A URL's user info, query and fragment (the rule of pipeline.redact; dataset_card does not
# import the pipeline). run.json is written redacted; older ones may not be.
_URL_SECRETS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://)(?:[^\s/'\"<>]*@)?([^\s?#'\"<>]*)(?:[?#][^\s'\"<>]*)?")


def _public(value: Any) -> Any:
    """An option value without URL passwords or query strings (signed URLs carry credentials there)."""
    if isinstance(value, str):
        return _URL_SECRETS.sub(r"\1\2", value)
    if isinstance(value, (list, tuple)):
        return [_public(v) for v in value]
    return value


def _fmt(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.3g}"


def _summary_row(name: str, v: Summary) -> str:
    return f"| {name} | {v.count} | {_fmt(v.mean)} | {_fmt(v.std)} | {_fmt(v.min)} | {_fmt(v.max)} |"


_SUMMARY_HEAD = "| | n | mean | std | min | max |\n| --- | --- | --- | --- | --- | --- |\n"


def _statistics(s: DatasetStats, plots: list[str]) -> str:
    rows = "\n".join(f"| {t} | " + " | ".join(str(s.rows.get(t, {}).get(sp, 0)) for sp in schema.SPLITS)
                     + f" | {sum(s.rows.get(t, {}).values())} |" for t in schema.TABLES)
    va = "\n".join(_summary_row(f"{t} {c}", v) for t, cs in s.va.items() for c, v in cs.items())
    desc = "\n".join(_summary_row(k, v) for k, v in s.descriptors.items())
    keys = ", ".join(f"{k} {n}" for k, n in s.key_counts.items()) or "—"
    modes = ", ".join(f"{k} {n}" for k, n in s.mode_counts.items()) or "—"
    fails = "\n".join(f"| {r} | {n} |" for r, n in s.failures_by_reason.items()) or "| (none) | 0 |"
    figs = "\n".join(f"![{Path(p).stem}]({p})" for p in plots)
    return (f"Rows per config and split:\n\n| config | train | validation | test | total |\n"
            f"| --- | --- | --- | --- | --- |\n{rows}\n\n"
            f"{s.songs} songs; clips per song: mean {_fmt(s.clips_per_song.mean)}, "
            f"min {_fmt(s.clips_per_song.min)}, max {_fmt(s.clips_per_song.max)}.\n\n"
            f"Valence/arousal:\n\n{_SUMMARY_HEAD}{va}\n\n"
            f"Caption length (words):\n\n{_SUMMARY_HEAD}{_summary_row('caption', s.caption_words)}\n\n"
            f"Musical descriptors:\n\n{_SUMMARY_HEAD}{desc}\n\nKeys: {keys}. Modes: {modes}.\n\n"
            f"{_content_tags(s)}"
            f"Inputs that did not make it (kind/stage/reason, from `failures/failures.parquet`; the `clip/caption/` "
            f"rows are rejected captions of clips that are in the data with the fallback caption, not lost clips):\n\n"
            f"| reason | count |\n| --- | --- |\n{fails}\n\n{figs}")


def _content_tags(s: DatasetStats) -> str:
    """The tag vocabularies (named here once, not per row) and how often each content tag was passed."""
    vocab = "\n".join(f"- `tag_probs.{k}` ({len(tags)} tags, in this order): {', '.join(tags)}"
                      for k, tags in schema.TAG_VOCABULARIES.items())
    if not s.tagged_clips:
        return "Content tags: none (the run had no music tagger).\n\n"
    top = ", ".join(f"{t} {n / s.tagged_clips:.0%}" for t, n in list(s.tag_counts.items())[:15]) or "none passed"
    return (f"Content tags ({s.tagged_clips} clips tagged by musicnn; `tags` holds the caption words their "
            f"probabilities pass, docs/captioner.md \"Content tags\"): {top}.\n\n{vocab}\n"
            f"- `tag_embeddings.{{mtt,msd}}`: each tagger's penultimate layer (200 values, averaged over the "
            f"clip's 3 s patches like `tag_probs`), pretrained music features (MMVA's `musicnn` encoder)\n\n")


_USES_AND_LIMITS = """## Intended uses

- Training and evaluating models that predict valence/arousal from music, images or captions, and
  that match modalities through VA (MMVA-style random VA matching, retrieval, music-prompt generation).
- Studying musical captions grounded in measured descriptors.

Not intended for judging individuals' emotions, clinical use, or any decision about people.

## Limitations

- VA labels are crowd or lab ratings averaged over annotators of a few cultures; clip VA is the mean of
  a song-level curve over a 10 s window, so fast changes are smoothed away.
- Captions are machine-written (see the captioner column): they can be wrong or generic; captions
  contradicting the measured tempo/key/mood are rejected, not corrected.
- Descriptors (tempo, key, mode, …) are automatic estimates with the usual octave and relative-key errors.
- Image and music sets come from different studies with different rating scales, mapped to [0, 1].
- Licences differ per source; some media (IAPS, NAPS) may not be redistributed: use the metadata-only build."""


def render_license(stats: DatasetStats) -> str:
    """LICENSE.md: the dataset mixes sources, so the terms are listed per source."""
    return ("# IMEMNet-C licences\n\nIMEMNet-C has no single licence: each row keeps its source's terms.\n\n"
            + _sources(stats) + "\n\nThe card, statistics and plots are CC-BY-4.0.\n")


def parse_front_matter(text: str) -> dict[str, Any]:
    """The YAML header of a card; ValueError when it is missing or not a mapping."""
    if not text.startswith("---\n"):
        raise ValueError("the card does not start with a '---' YAML header")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise ValueError("the card's YAML header is not closed by '---'")
    data = yaml.safe_load(text[4:end])
    if not isinstance(data, dict):
        raise ValueError("the card's YAML header is not a mapping")
    return data
