"""The caption audit: every figure checked on crafted captions whose answers are known."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from captioner import audit
from captioner.audit import CaptionFlags, flag_caption

D = {"tempo_bpm": 96.0, "key": "C", "mode": "major", "key_strength": 0.9, "loudness_db": -24.0,
     "brightness": 1800.0, "onset_rate": 2.0, "dynamic_range_db": 6.0, "beat_strength": 3.5}
TAGS = "tags-llm/smollm2/tags-v2+mood-labels"


def test_flags_of_the_issue_examples():
    looped = ("A dark, sad piece in G# minor at a moderate tempo of about 88 BPM. Its moderately loud, dark sound "
              "and sparse rhythm feel sad and melancholic. Its dark and sad tone and light sound and sparse rhythm "
              "feel sad and melancholic.")
    f = flag_caption(looped, None, None, None, TAGS)
    assert f.repeated_phrase and f.self_contradiction and f.any
    assert f.grounding_failures == ()  # no descriptors, no VA: nothing checked, nothing claimed
    f = flag_caption("A slow, sad piece in G# major at a moderate tempo of about 74 BPM.", None, None, None, TAGS)
    assert f.self_contradiction and not f.repeated_phrase
    assert flag_caption("It feels energetic and energetic and energetic.", None, None, None).repeated_phrase


def test_grounding_failures_per_attribute():
    text = ("A joyful piece in D minor at a fast tempo of about 150 BPM. The sound is loud and bright, "
            "with a busy rhythm.")
    f = flag_caption(text, D, 0.7, 0.3, TAGS)
    assert set(f.grounding_failures) == {"tempo", "key", "loudness", "timbre", "rhythm", "mood"}
    assert f.forbidden == () and not f.self_contradiction
    ok = "A calm piece in C major at a moderate tempo of about 96 BPM, moderately loud and balanced."
    assert flag_caption(ok, D, 0.7, 0.3, TAGS) == CaptionFlags(False, False, (), ())
    assert not flag_caption(ok, D, 0.7, 0.3, TAGS).any


def test_missing_inputs_skip_checks_and_never_crash():
    text = "A fast, joyful piece in D minor at 150 BPM, loud and bright."
    assert flag_caption(text, None, None, None).grounding_failures == ()
    assert flag_caption(text, {}, float("nan"), 0.5).grounding_failures == ()
    assert flag_caption(text, {"tempo_bpm": float("nan"), "key": None}, None, None).grounding_failures == ()
    assert flag_caption("", None, None, None) == CaptionFlags(False, False, (), ())
    # Only what is there is checked: tempo yes, key no.
    assert flag_caption(text, {"tempo_bpm": 90.0}, None, None).grounding_failures == ("tempo",)


def test_forbidden_depends_on_hearing():
    text = "A calm jazz piano piece with soft vocals; the lyrics speak of home."
    assert flag_caption(text, None, None, None, TAGS).forbidden == ("genre", "instrument", "lyrics", "voice")
    assert flag_caption(text, None, None, None, "audio-llm/qwen/audio-v1").forbidden == ("lyrics",)
    assert flag_caption(text, None, None, None, "source").forbidden == ("lyrics",)


def test_mood_none_captioner_may_not_state_a_mood():
    text = "A calm piece in C major at a moderate tempo of about 96 BPM."
    assert flag_caption(text, D, 0.7, 0.3, "tags-llm/m/tags-v2+mood-none").grounding_failures == ("mood",)
    assert flag_caption(text, D, 0.7, 0.3, TAGS).grounding_failures == ()


def test_masked_opening():
    a = audit.masked("A slow, sad piece in G# minor at about 88 BPM.")
    b = audit.masked("A fast, joyful piece in C major at about 140 BPM.")
    assert a == b == ["a", "<w>", "<w>", "piece", "in", "<key>", "at", "about", "<n>", "bpm"]


def _write_run(folder, rows, failures=None, drop=()):
    (folder / "data" / "music").mkdir(parents=True)
    cols = {k: [r.get(k) for r in rows] for k in audit.COLUMNS if k not in drop}
    pq.write_table(pa.table(cols), folder / "data" / "music" / "train-00000-of-00001.parquet")
    if failures is not None:
        (folder / "failures").mkdir()
        pq.write_table(pa.table({"item_id": [f[0] for f in failures], "stage": [f[1] for f in failures],
                                 "error_type": [f[2] for f in failures]}), folder / "failures" / "failures.parquet")


def _row(i, caption, captioner=TAGS, d=D, v=0.7, a=0.3):
    return {"clip_id": f"s-{i}", "caption": caption, "captioner": captioner, "descriptors": d, "valence": v, "arousal": a}


def test_audit_figures_on_a_crafted_run(tmp_path):
    captions = [
        "A calm piece in C major.",  # 6 words
        "A calm piece in C major.",  # duplicate
        "Slow and calm, it rests in C major.",  # 8 words; 'slow' is wrong for 96 BPM
        "A calm piece, a calm piece.",  # repeated 3-gram 'a calm piece'
    ]
    rows = [_row(i, c) for i, c in enumerate(captions)]
    rows.append(_row(9, "A loud piece in D minor.", captioner="descriptor/none/template-v2+mood-labels"))
    rows.append(_row(10, None))  # a clip without caption text
    _write_run(tmp_path, rows, failures=[("s-11", "caption", "caption_repetitive"), ("s-12", "decode", "x"),
                                         ("s-13", "caption", "caption_repetitive")])
    result = audit.main([str(tmp_path)])
    r = result.captioners[TAGS]
    assert r["captions"] == 4 and r["unique_share"] == 3 / 4
    # words: 6, 6, 8, 6 -> 26 unigrams; distinct: a calm piece in c major slow and it rests -> 10
    assert r["distinct_1"] == pytest.approx(10 / 26) and r["vocabulary"] == 10
    # bigrams: 5+5+7+5 = 22; distinct: a-calm calm-piece piece-in in-c c-major slow-and and-calm calm-it it-rests
    # rests-in piece-a -> 11
    assert r["distinct_2"] == pytest.approx(11 / 22)
    assert r["words_mean"] == pytest.approx(26 / 4)
    assert r["repeated_phrase_share"] == pytest.approx(1 / 4)
    assert r["top_opening_share"] == pytest.approx(2 / 4) and r["top_opening"] == "a <w> piece in <key>"
    assert r["grounding_failures"]["tempo"] == 1 and r["grounding_failure_share"] == pytest.approx(1 / 4)
    assert r["grounding_checked"]["tempo"] == 4
    assert r["mood_source"] == "labels" and r["mood_word_share"] == 1.0 and r["mood_fits_label_share"] == 1.0
    other = result.captioners["descriptor/none/template-v2+mood-labels"]
    assert other["grounding_failures"]["key"] == 1 and other["grounding_failures"]["loudness"] == 1
    assert result.caption_failures == {"caption_repetitive": 2}
    assert any("no caption text" in n for n in result.notes)
    saved = json.loads((tmp_path / audit.JSON_NAME).read_text())
    assert saved["captioners"][TAGS]["captions"] == 4
    md = (tmp_path / audit.MD_NAME).read_text()
    assert f"`{TAGS}`" in md and "caption_repetitive 2" in md


def test_audit_without_descriptors_va_or_failures_says_so(tmp_path):
    _write_run(tmp_path, [_row(0, "A fast piece in D minor at 150 BPM.")], drop=("descriptors", "valence", "arousal"))
    result = audit.audit(tmp_path)
    r = result.captioners[TAGS]
    assert r["grounding_failure_share"] == 0.0 and r["grounding_checked"]["tempo"] == 0
    assert r["grounding_checked"]["mood"] == 0
    notes = " ".join(result.notes)
    assert "descriptors" in notes and "no failures table" in notes
    assert result.caption_failures == {}


def test_audit_refuses_a_folder_without_music(tmp_path):
    with pytest.raises(SystemExit, match="no music shards"):
        audit.main([str(tmp_path)])


def test_vocabulary_phrases_claim_one_thing_each():
    from captioner.vocab import MOOD_LEXICON, NO_PULSE_PHRASES, SCALES

    owners: dict[str, str] = {}
    for name, scale in SCALES.items():
        for band in scale.bands:
            for p in band.phrases:
                assert owners.setdefault(p.lower(), name) == name, p
    for p in [*NO_PULSE_PHRASES, *MOOD_LEXICON]:
        assert p.lower() not in owners, p


def test_sense_flags_per_caption():
    f = flag_caption("The mood of the music is neutral, even keed, with a composed rhythm.", None, None, None, TAGS)
    assert f.non_words == ("keed",) and f.misused == () and f.any
    f = flag_caption("A light, composed tone with a moderate tempo and noise of cleaning; the mood is neutral.",
                     None, None, None, TAGS)
    assert f.misused == ("noise of cleaning",) and f.non_words == () and f.any
    f = flag_caption("Drum, a piece featuring drums at a lively tempo.", None, None, None, TAGS)
    assert f.restated == ("drums",) and f.non_words == f.misused == () and f.any


FALLBACK = f"descriptor/none/template-v2+mood-labels (fallback from {TAGS})"


def test_audit_counts_non_words_misuse_restatements_and_fallbacks(tmp_path):
    rows = [_row(0, "A calm piece in C major, kended and perscussive."),
            _row(1, "A calm kended piece in C major."),
            _row(2, "A calm piece in C major with a moderate noise of clean."),
            _row(3, "A calm piece in C major at a moderate tempo, calm."),
            _row(4, "A calm piece in C major at a moderate tempo of about 96 BPM.", captioner=FALLBACK),
            _row(5, "A calm, relaxed piece in C major at a moderate tempo of about 96 BPM.", captioner=FALLBACK)]
    _write_run(tmp_path, rows, failures=[("s-4", "caption", "caption_non_word"), ("s-5", "caption", "caption_nonsense"),
                                         ("s-9", "caption", "caption_non_word"), ("s-10", "decode", "x")])
    result = audit.audit(tmp_path)
    r = result.captioners[TAGS]
    assert r["non_word_share"] == pytest.approx(2 / 4) and r["non_words"] == {"kended": 2, "perscussive": 1}
    assert r["misused_share"] == pytest.approx(1 / 4) and r["misused"] == {"noise of clean": 1}
    assert r["restated_share"] == pytest.approx(1 / 4) and r["restated"] == {"calm": 1}
    assert r["flagged_share"] == pytest.approx(4 / 4)
    assert "| stating a fact twice in a sentence | 0 | 0.25 (calm 1) |" in audit.markdown(result)  # fallback, LLM
    fb = result.captioners[FALLBACK]  # the template's captions: audited as the template's
    assert (fb["captions"], fb["non_word_share"], fb["misused_share"], fb["mood_source"]) == (2, 0.0, 0.0, "labels")
    assert fb["hears_audio"] is False
    assert result.fallbacks == {"clips": 2, "by_reason": {"caption_non_word": 1, "caption_nonsense": 1}, "missing": 1}
    assert result.caption_failures == {"caption_non_word": 2, "caption_nonsense": 1}
    md = audit.markdown(result)
    assert "| with a non-English word | 0 | 0.5 (kended 2, perscussive 1) |" in md  # columns: fallback, tags-llm
    assert "fallback template after a rejection: 2 (caption_non_word 1, caption_nonsense 1)" in md
    assert "missing from the music table: 1" in md


def test_named_content_is_counted_and_grounded_in_the_tags():
    from captioner.audit import _Tally
    from captioner.content import content_evidence

    tags = content_evidence(("piano", "classical"))
    assert "content" in flag_caption("A classical piece for guitar.", None, None, None, TAGS, tags).grounding_failures
    assert flag_caption("A classical piece for piano.", None, None, None, TAGS, tags).grounding_failures == ()
    tally = _Tally()
    for text in ("A classical piece for piano.", "A quiet piece.", "A piece for guitar with vocals."):
        tally.add(text, None, None, None, TAGS, False, tags)
    report = tally.report(TAGS, False)
    assert report["naming_share"] == {"genre": 1 / 3, "instrument": 2 / 3, "voice": 1 / 3}
    assert report["grounding_failures"]["content"] == 1


def test_what_a_caption_says_beyond_its_facts_is_counted(tmp_path):
    """Without ears, a caption may state only its clip's facts (captioner.faithful): the audit counts
    captions with words beyond them and sentences that state none; a captioner with ears is not held."""
    fan = "A calm piece in C major that is a fan favorite."
    empty = "A calm piece in C major. It is what it is."
    ok = "A calm piece in C major at a moderate tempo of about 96 BPM."
    flags = flag_caption(fan, D, 0.7, 0.3, TAGS)
    assert flags.added == ("fan", "favorite") and flags.any
    assert flag_caption(empty, D, 0.7, 0.3, TAGS).empty_sentences == ("It is what it is.",)
    assert flag_caption(fan, D, 0.7, 0.3, "audio-llm/qwen/audio-v4+mood-labels").added == ()  # it hears
    assert flag_caption(fan, None, None, None, TAGS).added == ()  # no facts to hold it to
    _write_run(tmp_path, [_row(0, fan), _row(1, empty), _row(2, ok), _row(3, ok)], failures=[])
    r = audit.main([str(tmp_path)]).captioners[TAGS]
    assert r["added_share"] == pytest.approx(1 / 4) and r["added"] == {"fan": 1, "favorite": 1}
    assert r["empty_sentence_share"] == pytest.approx(1 / 4)
    assert "saying what its facts do not | 0.25 (fan 1, favorite 1)" in (tmp_path / audit.MD_NAME).read_text()


def test_an_audit_over_several_processes_equals_one_pass(tmp_path):
    # Three shards of several row groups, captions that tie for the most common skeleton, two captioner
    # ids and a fallback: the merge must keep one pass's counts and its order of ties.
    captions = ["A calm piece in C major.", "A loud piece in D minor.", "Slow and calm, it rests in C major.",
                "A calm kended piece in C major.", "A calm piece, a calm piece."]
    folder = tmp_path / "run"
    (folder / "data" / "music").mkdir(parents=True)
    for shard in range(3):
        rows = [_row(shard * 100 + i, captions[(i * (shard + 1)) % len(captions)],
                     captioner=FALLBACK if i % 7 == 3 else TAGS) for i in range(40)]
        cols = {k: [r.get(k) for r in rows] for k in audit.COLUMNS}
        pq.write_table(pa.table(cols), folder / "data" / "music" / f"train-0000{shard}-of-00003.parquet", row_group_size=9)
    (folder / "failures").mkdir()
    pq.write_table(pa.table({"item_id": ["s-3", "s-103", "s-999"], "stage": ["caption"] * 3,
                             "error_type": ["caption_non_word", "caption_forced_word", "caption_non_word"]}),
                   folder / "failures" / "failures.parquet")
    one = audit.audit(folder, processes=1)
    assert one.fallbacks == {"clips": 2, "by_reason": {"caption_forced_word": 1, "caption_non_word": 1}, "missing": 1}
    for processes in (2, 3):
        assert audit.audit(folder, processes=processes).to_json() == one.to_json()
    shards = sorted(folder.glob(audit.MUSIC_GLOB))
    pieces = audit._slices(shards, 8)
    assert len(pieces) == 8
    assert [(p, g) for piece in pieces for p, gs in piece for g in gs] == [(str(s), g) for s in shards for g in range(5)]


def test_the_audit_command_takes_a_process_count(tmp_path, capsys):
    _write_run(tmp_path, [_row(0, "A calm piece in C major.")])
    assert audit.main([str(tmp_path), "--processes", "2"]).captioners[TAGS]["captions"] == 1
    with pytest.raises(SystemExit):
        audit.main([str(tmp_path), "--processes", "0"])
