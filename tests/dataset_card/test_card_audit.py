"""The card's caption-quality section: the audit's figures, and the mood-from-labels warning."""
from __future__ import annotations

from captioner import audit
from dataset_card.build import build
from tests.dataset_card.fakerun import write_run


def test_card_shows_the_caption_audit_and_says_where_moods_came_from(tmp_path):
    run = write_run(tmp_path / "run")
    result = audit.audit(run)
    audit.write(result, run)
    card = (build(run).out_dir / "README.md").read_text()
    section = card.split("## Caption quality", 1)[1].split("\n## ", 1)[0]
    (cid, r), = result.captioners.items()
    assert f"`{cid}`" in section and f"| captions | {r['captions']} |" in section
    assert f"| unique share | {r['unique_share']:.3g} |" in section
    assert "| mood words from | labels |" in section  # the fake run's captions are template captions
    assert f"| with a word that is not English | {r['non_word_share']:.3g} |" in section
    assert f"| with a vocabulary word misused | {r['misused_share']:.3g} |" in section
    assert "not an independent measurement" in section and "--caption_mood none" in section


def test_card_without_an_audit_says_how_to_make_one(built):
    _, result = built
    card = (result.out_dir / "README.md").read_text()
    assert "No caption audit was found" in card and "python -m captioner.audit" in card
