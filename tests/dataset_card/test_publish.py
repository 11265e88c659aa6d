"""`python -m dataset_card publish` against an offline HfApi double (tests/dataset_card/fakehub.py).

The code under test is the real publish path; only the HTTP layer is replaced by the double.
"""
from __future__ import annotations

import logging
from pathlib import Path

import datasets
import pytest

from dataset_card import publish as publish_mod
from dataset_card.__main__ import main
from dataset_card.publish import TokenError, publish
from dataset_card.validate import ValidationError
from tests.dataset_card.fakehub import FakeHfApi, Interrupted
from tests.dataset_card.fakerun import make_rows, write_run

REPO = "mmva/imemnet-c"
TOKEN = "hf_TESTTOKEN0123456789abcdefghijklmnop"


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return TOKEN


@pytest.fixture
def hub(tmp_path):
    return FakeHfApi(tmp_path / "fakehub")


def test_publish_then_load_like_a_user(run_dir, hub, token, tmp_path, monkeypatch):
    result = publish(run_dir, REPO, api=hub)
    assert result.commit and hub.commit_count(REPO) == 1
    assert "README.md" in result.uploaded and "data/music/train-00000-of-00001.parquet" in result.uploaded
    assert set(hub.tokens_seen) == {TOKEN}
    checkout = hub.checkout_dir(REPO)
    music = datasets.load_dataset(str(checkout), "music", cache_dir=str(tmp_path / "c1"))
    assert music["train"][0]["audio"].get_all_samples().sample_rate == 8000
    # By repo id: a local folder named like the repo takes precedence in `datasets`' resolution,
    # so from the double's checkout root "mmva/imemnet-c" is the repo as the double holds it.
    monkeypatch.chdir(checkout.parent.parent)
    by_id = datasets.load_dataset(REPO, "music", cache_dir=str(tmp_path / "c2"))
    assert by_id["validation"].num_rows == 2 and by_id["train"][0]["caption"]
    images = datasets.load_dataset(REPO, "images", cache_dir=str(tmp_path / "c2"))
    assert images["train"][0]["image"].size == (8, 8)


def test_publish_uploads_the_runs_shards_in_place(run_dir, hub, token):
    result = publish(run_dir, REPO, api=hub)  # builds run_dir/hub: links, not copies
    shards = [p for p in result.uploaded if p.startswith("data/")]
    assert shards
    for rel in shards:
        assert (run_dir / "hub" / rel).stat().st_ino == (run_dir / rel).stat().st_ino, rel
        assert (hub.checkout_dir(REPO) / rel).read_bytes() == (run_dir / rel).read_bytes(), rel


def test_republish_unchanged_makes_no_commit(run_dir, hub, token):
    first = publish(run_dir, REPO, api=hub)  # builds run_dir/hub
    again = publish(run_dir, REPO, api=hub)  # rebuilds: same bytes
    from_hub_dir = publish(run_dir / "hub", REPO, api=hub)
    assert first.commit and again.commit is None and from_hub_dir.commit is None
    assert hub.commit_count(REPO) == 1 and not again.uploaded
    assert len(again.unchanged) == len(first.uploaded)


def test_changed_data_uploads_only_changes_and_removes_stale_files(tmp_path, hub, token):
    run = write_run(tmp_path / "run")
    publish(run, REPO, api=hub)
    rows = make_rows()
    rows["images"] = [r for r in rows["images"] if r["split"] != "test"]  # the images test split goes
    rows["pairs"] = [r for r in rows["pairs"] if r["split"] != "test"]  # with the test pairs naming them
    rows["pairs"][0]["score"] = 0.9
    run2 = write_run(tmp_path / "run2", rows)
    uploads_before = len(hub.lfs_uploads)
    r = publish(run2, REPO, api=hub)
    assert r.commit and hub.commit_count(REPO) == 2
    assert r.deleted == ["data/images/test-00000-of-00001.parquet", "data/pairs/test-00000-of-00001.parquet"]
    assert "data/pairs/train-00000-of-00001.parquet" in r.uploaded
    assert "data/music/train-00000-of-00001.parquet" in r.unchanged
    assert set(hub.lfs_uploads[uploads_before:]) <= set(r.uploaded)
    assert not (hub.checkout_dir(REPO) / "data/images/test-00000-of-00001.parquet").exists()


def test_interrupted_upload_resumes(run_dir, tmp_path, token):
    hub = FakeHfApi(tmp_path / "fakehub", fail_after_uploads=3)
    with pytest.raises(Interrupted):
        publish(run_dir, REPO, api=hub)
    assert len(hub.lfs_uploads) == 3 and REPO in hub.repos and hub.repos[REPO].refs["main"] is None
    done = list(hub.lfs_uploads)
    hub.fail_after_uploads = None
    result = publish(run_dir, REPO, api=hub)
    assert result.commit and hub.commit_count(REPO) == 1
    assert not set(done) & set(hub.lfs_uploads[3:]), "already uploaded blobs were sent again"


def test_private_and_revision(run_dir, hub, token):
    r = publish(run_dir, REPO, api=hub, private=True, revision="v1")
    assert hub.repos[REPO].private and r.revision == "v1"
    assert hub.repos[REPO].refs["v1"] == r.commit and hub.repos[REPO].refs["main"] is None


def test_missing_token_is_a_clear_error(run_dir, hub, no_saved_token, capsys):
    with pytest.raises(TokenError, match="hf auth login"):
        publish(run_dir, REPO, api=hub)
    assert main(["publish", str(run_dir), "--repo-id", REPO, "--token-from-env"]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err
    assert not hub.repos, "nothing may be created without a token"


def test_token_never_printed_logged_or_written(run_dir, hub, token, monkeypatch, capsys, caplog, tmp_path):
    monkeypatch.setattr(publish_mod, "HfApi", lambda: hub)
    caplog.set_level(logging.DEBUG)
    assert main(["publish", str(run_dir), "--repo-id", REPO, "--token-from-env"]) == 0
    assert main(["publish", str(run_dir), "--repo-id", REPO, "--token-from-env"]) == 0  # no-op path too
    out = capsys.readouterr()
    assert hub.tokens_seen and set(hub.tokens_seen) == {TOKEN}  # it was used...
    assert "no commit" in out.out
    texts = [out.out, out.err, caplog.text]
    texts += [p.read_bytes().decode("latin-1") for p in Path(tmp_path).rglob("*") if p.is_file()]
    assert not any(TOKEN in t or "hf_TESTTOKEN" in t for t in texts)  # ...and never leaked


def test_broken_folder_is_not_published(run_dir, hub, token, capsys):
    rows = make_rows()
    rows["pairs"].append({"music_clip_id": "ghost-1", "image_id": "img0", "score": 0.1, "split": "train"})
    bad_run = write_run(run_dir.parent / "bad", rows)
    with pytest.raises(ValidationError, match="pairs_reference"):
        publish(bad_run, REPO, api=hub)
    assert not hub.repos


# -- licences: media whose terms forbid (or do not allow) redistribution never go public by default --

def _restricted_run(root: Path) -> Path:
    """The test run with two IAPS images (not redistributable) and a manifest song (no terms)."""
    rows = make_rows()
    for r in rows["images"][:2]:
        r["source"] = "IAPS"
    for r in rows["music"][:2]:
        r["source"] = "manifest"
    return write_run(root, rows)


def test_public_upload_of_restricted_media_is_refused_naming_sources_and_rows(tmp_path, hub, token, capsys,
                                                                             monkeypatch):
    run = _restricted_run(tmp_path / "run")
    with pytest.raises(publish_mod.LicenceError) as e:
        publish(run, REPO, api=hub)
    msg = str(e.value)
    assert "IAPS (images: 2 rows, not redistributable)" in msg
    assert "manifest (music: 2 rows, no recorded terms)" in msg
    assert "--metadata-only" in msg and "--private" in msg and "--redistribute IAPS --redistribute manifest" in msg
    assert not hub.repos  # refused before anything was created or sent
    monkeypatch.setattr(publish_mod, "HfApi", lambda: hub)
    assert main(["publish", str(run), "--repo-id", REPO]) == 2
    assert "not redistributable" in capsys.readouterr().err and not hub.repos


def test_metadata_only_publishes_and_the_card_says_what_was_left_out(tmp_path, hub, token):
    run = _restricted_run(tmp_path / "run")
    r = publish(run, REPO, api=hub, metadata_only=True)
    assert r.commit
    checkout = hub.checkout_dir(REPO)
    images = datasets.load_dataset(str(checkout), "images", cache_dir=str(tmp_path / "c"))
    assert "image" not in images["train"].column_names
    card = (checkout / "README.md").read_text()
    assert "`image` of 2 `images` rows from **IAPS** (not redistributable)" in card
    assert "`audio` of 2 `music` rows from **manifest** (no recorded terms)" in card


def test_private_repository_gets_the_media(tmp_path, hub, token):
    run = _restricted_run(tmp_path / "run")
    r = publish(run, REPO, api=hub, private=True)
    assert r.commit and hub.repos[REPO].private
    assert "data/images/train-00000-of-00001.parquet" in r.uploaded


def test_private_flag_does_not_cover_an_existing_public_repository(tmp_path, hub, token):
    publish(write_run(tmp_path / "clean"), REPO, api=hub)  # demo only: public is fine
    assert not hub.repos[REPO].private
    with pytest.raises(publish_mod.LicenceError, match="already exists as a public repository"):
        publish(_restricted_run(tmp_path / "run"), REPO, api=hub, private=True)
    assert hub.commit_count(REPO) == 1


def test_sources_the_user_holds_rights_for_may_go_public(tmp_path, hub, token):
    run = _restricted_run(tmp_path / "run")
    with pytest.raises(publish_mod.LicenceError) as e:
        publish(run, REPO, api=hub, redistribute=["iaps"])  # source names match case-insensitively
    assert "manifest" in str(e.value) and "IAPS" not in str(e.value)
    assert publish(run, REPO, api=hub, redistribute=["iaps", "manifest"]).commit


def test_metadata_only_refuses_a_folder_built_with_media(tmp_path, hub, token):
    run = _restricted_run(tmp_path / "run")
    from dataset_card.build import build

    built = build(run, tmp_path / "built").out_dir
    with pytest.raises(publish_mod.LicenceError, match="built with media"):
        publish(built, REPO, api=hub, metadata_only=True)
    assert not hub.repos
