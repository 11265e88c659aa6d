"""Caption quality report: how varied, how repetitive and how true the captions of a run are.

    python -m captioner.audit RUN_OR_DATASET [--out DIR]

Reads the `music` shards (``data/music/*.parquet``, only the caption, captioner, descriptor and VA
columns, batch by batch) and the failures table of a pipeline run or a built dataset folder, and
reports per captioner id: diversity (unique share, distinct-1/2/3, vocabulary), length, repeated
phrases, the share of the most common skeleton and opening (numbers, keys and vocabulary words
masked), the share naming a genre, an instrument, a voice, grounding failures per attribute (the named
genre, instruments and voice against the clip's tag probabilities too), self-contradictions, forbidden content, sense (words that
are not English words, vocabulary words misused, facts stated twice in a sentence: :mod:`captioner.sense`), for captioners without
ears what a caption says beyond the facts it was given (:mod:`captioner.faithful`: added words,
sentences that state no fact) and where the mood words came from; and how many clips the fallback template captioned after a rejection (by reason), and
how many caption failures have no row. Writes ``caption_audit.json`` and ``caption_audit.md`` and
prints the table.
Whatever it cannot compute (no descriptors, no VA, no failures table) is said in ``notes``,
never counted as a pass.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import re
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow.parquet as pq

from captioner import faithful, sense
from captioner.content import CATEGORIES, from_row
from captioner.cores import usable_cores
from captioner.fallback import parse_captioner
from captioner.grounding import ATTRIBUTES, KEY_PATTERN, content_claims, contradictions, forbidden, ground, mood_claims
from captioner.vocab import all_phrases, phrase_pattern

MUSIC_GLOB = "data/music/*.parquet"
FAILURES_GLOBS = ("failures/*.parquet", "data/failures/*.parquet")
JSON_NAME, MD_NAME = "caption_audit.json", "caption_audit.md"
OPENING_WORDS = 5
REPEAT_N = 3
COLUMNS = ("clip_id", "caption", "captioner", "descriptors", "valence", "arousal", "tag_probs")
MOOD_NONE_TAG = "mood-none"
MOOD_LABELS_TAG = "mood-labels"
TOP_WORDS = 10  # the most frequent non-words / misused phrases listed per captioner


# --- one caption ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CaptionFlags:
    """What is wrong with one caption (the explorer shows these per clip)."""

    repeated_phrase: bool  # a 3-word phrase repeats inside the caption
    self_contradiction: bool  # two tempo/loudness/timbre words that disagree
    grounding_failures: tuple[str, ...]  # attribute names: "tempo", "key", "loudness", "timbre", ...
    forbidden: tuple[str, ...]  # "lyrics", "singer", "instrument", "genre"
    non_words: tuple[str, ...] = ()  # words that are not English words (captioner.sense)
    misused: tuple[str, ...] = ()  # vocabulary words where English needs a noun: "noise of cleaning"
    restated: tuple[str, ...] = ()  # facts written twice in one sentence: "Drum, a piece featuring drums"
    names: tuple[str, ...] = ()  # capitalised words inside a sentence: invented titles, bands
    added: tuple[str, ...] = ()  # words stating what the clip's facts do not (captioner.faithful)
    empty_sentences: tuple[str, ...] = ()  # sentences stating no fact

    @property
    def any(self) -> bool:
        return self.repeated_phrase or self.self_contradiction or bool(
            self.grounding_failures or self.forbidden or self.non_words or self.misused or self.restated or self.names
            or self.added or self.empty_sentences)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9#']+", (text or "").lower())


def has_repeated_phrase(tokens: Sequence[str], n: int = REPEAT_N) -> bool:
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) < len(grams)


def hears_audio(captioner_id: str) -> bool:
    """Whether the captioner named by ``captioner_id`` listened to the clip.

    Registered backends say so themselves (``needs_audio``); captions of unknown origin (a source's
    own captions, human-written) are given the benefit of the doubt.
    """
    from captioner.base import BACKENDS
    from captioner import backends  # noqa: F401  (registers the built-in backends)

    backend = BACKENDS.get(_writer(captioner_id).split("/", 1)[0])
    return True if backend is None else bool(getattr(backend, "needs_audio", True))


def _writer(captioner_id: str) -> str:
    """The id of the captioner that wrote the text (the template, for a fallback)."""
    return parse_captioner(captioner_id).wrote


def mood_given(captioner_id: str) -> bool:
    """False for a captioner told no mood that cannot hear one either: its mood words are invented."""
    return MOOD_NONE_TAG not in _writer(captioner_id).split("/")[-1] or hears_audio(captioner_id)


def flag_caption(caption: str, descriptors: dict | None, valence: float | None,
                 arousal: float | None, captioner_id: str = "", tags: dict | None = None) -> CaptionFlags:
    """Flags of one caption; checks whose inputs are missing (descriptors, VA, tags) are skipped."""
    text = caption or ""
    g = ground(text, descriptors, valence, arousal, mood_given=mood_given(captioner_id), tags=tags)
    senseless = sense.check(text)
    strays = faithfulness(text, descriptors, valence, arousal, captioner_id, tags)
    return CaptionFlags(
        repeated_phrase=has_repeated_phrase(words(text)),
        self_contradiction=bool(contradictions(text)),
        grounding_failures=tuple(a for a in ATTRIBUTES if a in g.failures),
        forbidden=forbidden(text, hears_audio(captioner_id), tagged=bool(tags)),
        non_words=senseless.non_words,
        misused=senseless.misused,
        restated=senseless.restated,
        names=() if hears_audio(captioner_id) else tuple(sense.invented_names(text)),
        added=strays.added if strays else (),
        empty_sentences=strays.empty if strays else (),
    )


def faithfulness(caption: str, descriptors: dict | None, valence, arousal, captioner_id: str,
                 tags: dict | None = None) -> faithful.Faithfulness | None:
    """What a captioner without ears wrote beyond its clip's facts (None: it hears, or no facts to read)."""
    if hears_audio(captioner_id) or not descriptors or valence is None or arousal is None:
        return None
    draft = faithful.draft_of(descriptors, valence, arousal, MOOD_NONE_TAG not in _writer(captioner_id), tags)
    return faithful.check(caption, draft)


_VOCAB = phrase_pattern(all_phrases())
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")


def masked(text: str) -> list[str]:
    """Words with keys, vocabulary phrases and numbers replaced by placeholders."""
    text = KEY_PATTERN.sub(" KEYTOKEN ", text or "")
    text = _VOCAB.sub(" VOCABTOKEN ", text)
    out = []
    for w in words(text):
        out.append("<key>" if w == "keytoken" else "<w>" if w == "vocabtoken" else "<n>" if _NUMBER.match(w) else w)
    return out


# --- one captioner id -----------------------------------------------------------------------
@dataclass
class _Tally:
    """Running counts for one captioner id (memory: the n-gram sets, bounded by the vocabulary)."""

    captions: int = 0
    texts: set = field(default_factory=set)
    grams: list = field(default_factory=lambda: [set(), set(), set()])
    gram_totals: list = field(default_factory=lambda: [0, 0, 0])
    lengths: list = field(default_factory=list)
    repeated: int = 0
    skeletons: Counter = field(default_factory=Counter)
    openings: Counter = field(default_factory=Counter)
    grounding: Counter = field(default_factory=Counter)
    checked: Counter = field(default_factory=Counter)
    contradictions: Counter = field(default_factory=Counter)
    contradicting: int = 0
    forbidden: Counter = field(default_factory=Counter)
    any_grounding: int = 0
    flagged: int = 0
    with_mood: int = 0
    mood_fits_label: int = 0
    mood_checked: int = 0
    non_words: Counter = field(default_factory=Counter)
    with_non_word: int = 0
    misused: Counter = field(default_factory=Counter)
    with_misused: int = 0
    restated: Counter = field(default_factory=Counter)
    with_restated: int = 0
    names: Counter = field(default_factory=Counter)
    with_name: int = 0
    naming: Counter = field(default_factory=Counter)  # category -> captions naming one
    added: Counter = field(default_factory=Counter)
    with_added: int = 0
    with_empty_sentence: int = 0
    faithfulness_checked: int = 0

    def add(self, caption: str, descriptors: dict | None, valence, arousal, captioner_id: str, hears: bool,
            tags: dict | None = None) -> None:
        tokens = words(caption)
        self.captions += 1
        self.texts.add(caption.strip())
        for n in (1, 2, 3):
            grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
            self.grams[n - 1].update(grams)
            self.gram_totals[n - 1] += len(grams)
        self.lengths.append(len(tokens))
        rep = has_repeated_phrase(tokens)
        self.repeated += rep
        mask = masked(caption)
        self.skeletons[" ".join(mask)] += 1
        self.openings[" ".join(mask[:OPENING_WORDS])] += 1
        g = ground(caption, descriptors, valence, arousal, mood_given=mood_given(captioner_id), tags=tags)
        self.naming.update({w.category for _, w in content_claims(caption)})
        for a in ATTRIBUTES:
            if a not in g.unchecked:
                self.checked[a] += 1
        self.grounding.update(list(g.failures))
        self.any_grounding += bool(g.failures)
        con = contradictions(caption)
        self.contradictions.update(list(con))
        self.contradicting += bool(con)
        bad = forbidden(caption, hears, tagged=bool(tags))
        self.forbidden.update(bad)
        senseless = sense.check(caption)
        self.non_words.update(senseless.non_words)
        self.with_non_word += bool(senseless.non_words)
        self.misused.update(senseless.misused)
        self.with_misused += bool(senseless.misused)
        self.restated.update(senseless.restated)
        self.with_restated += bool(senseless.restated)
        names = () if hears else sense.invented_names(caption)
        self.names.update(names)
        self.with_name += bool(names)
        strays = faithfulness(caption, descriptors, valence, arousal, captioner_id, tags)
        if strays is not None:
            self.faithfulness_checked += 1
            self.added.update(strays.added)
            self.with_added += bool(strays.added)
            self.with_empty_sentence += bool(strays.empty)
        self.flagged += bool(rep or con or g.failures or bad or not senseless.ok or names
                             or (strays is not None and not strays.ok))
        if mood_claims(caption):
            self.with_mood += 1
            if "mood" not in g.unchecked:
                self.mood_checked += 1
                self.mood_fits_label += "mood" not in g.failures

    def merge(self, later: "_Tally") -> None:
        """Add the counts of captions that come after this tally's (the order keeps ties as one pass has them)."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(later, f.name)
            if f.name == "grams":
                for a, b in zip(mine, theirs):
                    a.update(b)
            elif f.name == "gram_totals":
                setattr(self, f.name, [a + b for a, b in zip(mine, theirs)])
            elif isinstance(mine, int):
                setattr(self, f.name, mine + theirs)
            elif isinstance(mine, list):
                mine.extend(theirs)
            else:  # sets and Counters
                mine.update(theirs)

    def report(self, captioner_id: str, hears: bool) -> dict[str, Any]:
        n = self.captions
        lengths = np.asarray(self.lengths, dtype=float)
        top_skeleton, top_skeleton_n = self.skeletons.most_common(1)[0]
        top_opening, top_opening_n = self.openings.most_common(1)[0]
        return {
            "captions": n,
            "unique_share": len(self.texts) / n,
            **{f"distinct_{k}": (len(self.grams[k - 1]) / self.gram_totals[k - 1]) if self.gram_totals[k - 1] else None
               for k in (1, 2, 3)},
            "vocabulary": len(self.grams[0]),
            "words_mean": float(lengths.mean()),
            "words_p5": float(np.percentile(lengths, 5)),
            "words_p95": float(np.percentile(lengths, 95)),
            "repeated_phrase_share": self.repeated / n,
            "top_skeleton_share": top_skeleton_n / n, "top_skeleton": top_skeleton,
            "top_opening_share": top_opening_n / n, "top_opening": top_opening,
            "grounding_failures": {a: self.grounding.get(a, 0) for a in ATTRIBUTES},
            "grounding_checked": {a: self.checked.get(a, 0) for a in ATTRIBUTES},
            "grounding_failure_share": self.any_grounding / n,
            "self_contradictions": {a: self.contradictions[a] for a in sorted(self.contradictions)},
            "self_contradiction_share": self.contradicting / n,
            "forbidden": {a: self.forbidden[a] for a in sorted(self.forbidden)},
            "non_word_share": self.with_non_word / n,
            "non_words": dict(self.non_words.most_common(TOP_WORDS)),
            "misused_share": self.with_misused / n,
            "misused": dict(self.misused.most_common(TOP_WORDS)),
            "restated_share": self.with_restated / n,
            "restated": dict(self.restated.most_common(TOP_WORDS)),
            "name_share": self.with_name / n,
            "names": dict(self.names.most_common(TOP_WORDS)),
            # of the captions whose facts could be read (None: none, e.g. a captioner with ears)
            "added_share": self.with_added / self.faithfulness_checked if self.faithfulness_checked else None,
            "added": dict(self.added.most_common(TOP_WORDS)),
            "empty_sentence_share": (self.with_empty_sentence / self.faithfulness_checked
                                     if self.faithfulness_checked else None),
            "flagged_share": self.flagged / n,
            "hears_audio": hears,
            "mood_source": mood_source(captioner_id),
            "mood_word_share": self.with_mood / n,
            "naming_share": {c: self.naming[c] / n for c in CATEGORIES},  # genre / instrument / voice
            "mood_fits_label_share": (self.mood_fits_label / self.mood_checked) if self.mood_checked else None,
        }


def mood_source(captioner_id: str) -> str:
    """Where a captioner's mood words come from, as its id records it."""
    captioner_id = _writer(captioner_id)
    tag = captioner_id.split("/")[-1]
    backend = captioner_id.split("/", 1)[0]
    if MOOD_NONE_TAG in tag:
        return "heard" if hears_audio(captioner_id) and backend in _registered() else "none"
    if MOOD_LABELS_TAG in tag or backend in ("descriptor", "tags-llm"):
        return "labels"  # both write the VA quadrant's words (tags-llm before mood tags were recorded, too)
    if hears_audio(captioner_id):
        return "heard" if backend in _registered() else "unknown"
    return "unknown"


def _registered() -> set[str]:
    from captioner.base import BACKENDS
    from captioner import backends  # noqa: F401

    return set(BACKENDS)


# --- a run or dataset folder ----------------------------------------------------------------
@dataclass(frozen=True)
class AuditResult:
    path: str
    captioners: dict[str, dict[str, Any]]
    caption_failures: dict[str, int]  # error_type -> rows of the failures table at the caption stage
    notes: list[str]
    # {"clips": rows the template captioned after a rejection, "by_reason": {error_type: n},
    #  "missing": caption failures whose clip has no row}
    fallbacks: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "captioners": self.captioners, "caption_failures": self.caption_failures,
                "fallbacks": self.fallbacks, "notes": self.notes}


@dataclass
class _Part:
    """What one slice of the music table adds up to. Slices are audited apart (in parallel) and
    merged in table order, which gives exactly what one pass over the whole table gives."""

    tallies: dict[str, _Tally] = field(default_factory=dict)
    hears: dict[str, bool] = field(default_factory=dict)
    no_caption: int = 0
    no_descriptors: int = 0
    no_va: int = 0
    fell_back: Counter = field(default_factory=Counter)  # error_type -> rejected clips the template captioned
    present: int = 0  # rejected clips that have a row
    missing_columns: set = field(default_factory=set)

    def add(self, row: dict[str, Any], rejected: dict[str, str]) -> None:
        if row.get("clip_id") in rejected:
            self.present += 1
            self.fell_back[rejected[row["clip_id"]]] += parse_captioner(str(row.get("captioner") or "")).fell_back
        caption = row.get("caption")
        if not caption or not str(caption).strip():
            self.no_caption += 1
            return
        cid = str(row.get("captioner") or "unknown")
        if cid not in self.tallies:
            self.tallies[cid], self.hears[cid] = _Tally(), hears_audio(cid)
        d = row.get("descriptors")
        v, a = row.get("valence"), row.get("arousal")
        self.no_descriptors += d is None
        self.no_va += v is None or a is None
        self.tallies[cid].add(str(caption), d, v, a, cid, self.hears[cid], from_row(row.get("tag_probs")))

    def merge(self, later: "_Part") -> "_Part":
        for cid, tally in later.tallies.items():
            if cid in self.tallies:
                self.tallies[cid].merge(tally)
            else:
                self.tallies[cid], self.hears[cid] = tally, later.hears[cid]
        self.no_caption += later.no_caption
        self.no_descriptors += later.no_descriptors
        self.no_va += later.no_va
        self.fell_back.update(later.fell_back)
        self.present += later.present
        self.missing_columns |= later.missing_columns
        return self


Slice = list[tuple[str, list[int]]]  # (shard path, its row groups), in table order


def _slices(shards: list[Path], pieces: int) -> list[Slice]:
    """The shards' row groups in table order, cut into at most ``pieces`` runs of similar row counts."""
    metas = [(str(path), pq.read_metadata(path)) for path in shards]
    groups = [(path, i, meta.row_group(i).num_rows) for path, meta in metas for i in range(meta.num_row_groups)]
    total = sum(n for *_, n in groups) or 1
    cut: list[Slice] = [[] for _ in range(max(1, min(pieces, len(groups))))]
    done = 0
    for path, i, n in groups:
        piece = min(len(cut) - 1, done * len(cut) // total)
        if cut[piece] and cut[piece][-1][0] == path:
            cut[piece][-1][1].append(i)
        else:
            cut[piece].append((path, [i]))
        done += n
    return [c for c in cut if c]


def _audit_slice(piece: Slice, rejected: dict[str, str]) -> _Part:
    part = _Part()
    for path, row_groups in piece:
        pf = pq.ParquetFile(path)
        present = [c for c in COLUMNS if c in pf.schema_arrow.names]
        part.missing_columns.update(set(COLUMNS) - set(present))
        for batch in pf.iter_batches(batch_size=1024, row_groups=row_groups, columns=present):
            for row in batch.to_pylist():
                part.add(row, rejected)
    return part


_REJECTED: dict[str, str] = {}  # a pool process's copy of the caption failures


def _keep_rejected(rejected: dict[str, str]) -> None:
    global _REJECTED
    _REJECTED = rejected


def _audit_slice_in_pool(piece: Slice) -> _Part:
    return _audit_slice(piece, _REJECTED)


def _audit_table(shards: list[Path], rejected: dict[str, str], processes: int) -> _Part:
    """Every row of the shards, over ``processes`` processes (a pool only where there is more than one)."""
    pieces = _slices(shards, 1 if processes <= 1 else 4 * processes)  # several each: slices differ in speed
    if len(pieces) <= 1 or processes <= 1:
        parts = [_audit_slice(p, rejected) for p in pieces]
        return functools.reduce(_Part.merge, parts, _Part())
    with multiprocessing.get_context().Pool(min(processes, len(pieces)), initializer=_keep_rejected,
                                            initargs=(rejected,)) as pool:
        return functools.reduce(_Part.merge, pool.imap(_audit_slice_in_pool, pieces), _Part())  # in order


def audit(folder: Path | str, processes: int = 1) -> AuditResult:
    """Audit every caption of a run or dataset folder, over ``processes`` processes."""
    folder = Path(folder)
    shards = sorted(folder.glob(MUSIC_GLOB))
    if not shards:
        raise FileNotFoundError(f"{folder}: no music shards under {MUSIC_GLOB} (a pipeline run or built dataset folder?)")
    notes: list[str] = []
    rejected = _caption_failure_rows(folder, notes)  # clip id -> error_type
    t = _audit_table(shards, rejected, processes)
    if t.missing_columns:
        notes.append(f"columns absent from the music table: {', '.join(sorted(t.missing_columns))} "
                     "(checks that need them were skipped)")
    if t.no_caption:
        notes.append(f"{t.no_caption} music rows have no caption text: not audited")
    if t.no_descriptors:
        notes.append(f"{t.no_descriptors} captions have no descriptors: their tempo/key/loudness/... grounding "
                     "was not checked (see grounding_checked)")
    if t.no_va:
        notes.append(f"{t.no_va} captions have no VA label: their mood grounding was not checked")
    fallbacks = {"clips": sum(t.fell_back.values()), "by_reason": {k: n for k, n in sorted(t.fell_back.items()) if n},
                 "missing": len(rejected) - t.present}
    return AuditResult(str(folder), {c: r.report(c, t.hears[c]) for c, r in sorted(t.tallies.items())},
                       dict(sorted(Counter(rejected.values()).items())), notes, fallbacks)


def _caption_failure_rows(folder: Path, notes: list[str]) -> dict[str, str]:
    """{clip id: error_type} of the failures table's caption stage (bounded by the failures, not the data)."""
    paths = [p for g in FAILURES_GLOBS for p in sorted(folder.glob(g))]
    if not paths:
        notes.append("no failures table found: rejected captions are not counted")
        return {}
    out: dict[str, str] = {}
    for path in paths:
        t = pq.read_table(path, columns=["item_id", "stage", "error_type"]).to_pylist()
        out.update((r["item_id"], r["error_type"]) for r in t if r["stage"] == "caption")
    return out


# --- rendering ------------------------------------------------------------------------------
def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def _counts(d: dict[str, int]) -> str:
    shown = {k: v for k, v in d.items() if v}
    return ", ".join(f"{k} {v}" for k, v in shown.items()) or "0"


def _share_and_top(share: float, top: dict[str, int]) -> str:
    return _fmt(share) + (f" ({_counts(top)})" if top else "")


ROWS: tuple[tuple[str, Any], ...] = (
    ("captions", lambda r: r["captions"]),
    ("unique share", lambda r: r["unique_share"]),
    ("distinct-1 / 2 / 3", lambda r: " / ".join(_fmt(r[f"distinct_{k}"]) for k in (1, 2, 3))),
    ("vocabulary (words)", lambda r: r["vocabulary"]),
    ("length, words: mean (p5–p95)", lambda r: f"{_fmt(r['words_mean'])} ({_fmt(r['words_p5'])}–{_fmt(r['words_p95'])})"),
    ("repeated 3-word phrase", lambda r: r["repeated_phrase_share"]),
    ("most common skeleton", lambda r: r["top_skeleton_share"]),
    ("most common opening (5 words)", lambda r: f"{_fmt(r['top_opening_share'])} (`{r['top_opening']}`)"),
    ("names a genre / an instrument / a voice",
     lambda r: " / ".join(_fmt(r["naming_share"].get(c, 0.0)) for c in ("genre", "instrument", "voice"))),
    ("grounding failures", lambda r: _counts(r["grounding_failures"])),
    ("captions with a grounding failure", lambda r: r["grounding_failure_share"]),
    ("self-contradictions", lambda r: f"{_fmt(r['self_contradiction_share'])} ({_counts(r['self_contradictions'])})"),
    ("forbidden content", lambda r: _counts(r["forbidden"])),
    ("with a non-English word", lambda r: _share_and_top(r["non_word_share"], r["non_words"])),
    ("with a vocabulary word misused", lambda r: _share_and_top(r["misused_share"], r["misused"])),
    ("stating a fact twice in a sentence",
     lambda r: _share_and_top(r.get("restated_share", 0.0), r.get("restated", {}))),
    ("with a name inside a sentence", lambda r: _share_and_top(r.get("name_share", 0.0), r.get("names", {}))),
    ("saying what its facts do not", lambda r: _share_and_top(r.get("added_share"), r.get("added", {}))),
    ("with a sentence stating no fact", lambda r: r.get("empty_sentence_share")),
    ("mood words from", lambda r: r["mood_source"]),
    ("mood words fit the VA label", lambda r: r["mood_fits_label_share"]),
)


def markdown(result: AuditResult) -> str:
    """One column per captioner id, one row per measure, then failures and notes."""
    ids = list(result.captioners)
    head = "| measure | " + " | ".join(f"`{c}`" for c in ids) + " |\n| --- |" + " --- |" * len(ids)
    body = "\n".join(f"| {name} | " + " | ".join(_fmt(fn(result.captioners[c])) for c in ids) + " |"
                     for name, fn in ROWS)
    fails = _counts(result.caption_failures) if result.caption_failures else "none recorded"
    fb = result.fallbacks or {}
    lines = [head, body, "", f"Rejected captions (failure rows at the caption stage): {fails}."]
    if fb:
        lines.append(f"Clips captioned by the fallback template after a rejection: {fb['clips']}"
                     + (f" ({_counts(fb['by_reason'])})" if fb["clips"] else "")
                     + f"; rejected clips missing from the music table: {fb['missing']}.")
    lines += [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def write(result: AuditResult, out_dir: Path | str) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    j, m = out / JSON_NAME, out / MD_NAME
    j.write_text(json.dumps(result.to_json(), indent=1) + "\n", encoding="utf-8")
    m.write_text(markdown(result), encoding="utf-8")
    return j, m


def main(argv: Sequence[str] | None = None) -> AuditResult:
    p = argparse.ArgumentParser(prog="python -m captioner.audit", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="a pipeline run folder or a built dataset folder (data/music/*.parquet)")
    p.add_argument("--out", type=Path, help=f"where to write {JSON_NAME} and {MD_NAME} (default: the folder itself)")
    p.add_argument("--processes", type=int, default=usable_cores(),
                   help="processes auditing slices of the music table at once (default: the usable cores, "
                   f"here {usable_cores()}); the result is the same for any number")
    args = p.parse_args(argv)
    if args.processes < 1:
        p.error(f"--processes must be at least 1, got {args.processes}")
    try:
        result = audit(args.folder, args.processes)
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    paths = write(result, args.out or args.folder)
    print(markdown(result))
    print(f"written: {paths[0]}, {paths[1]}")
    return result


if __name__ == "__main__":
    main()
