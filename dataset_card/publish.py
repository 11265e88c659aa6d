"""Publish a built dataset folder to the Hugging Face Hub with ``huggingface_hub.HfApi``.

Upload path: compare local files with the repo's (``repo_info(files_metadata=True)``: LFS sha256
or git blob sha1), pre-upload the changed LFS files in small batches (``preupload_lfs_files``;
blobs the Hub already holds are skipped, so a rerun after an interruption resumes where it
stopped), then one ``create_commit`` with the changes. Nothing changed → no commit at all.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import huggingface_hub
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

from dataset_card.build import HUB_DIR, build
from dataset_card.licences import LicenceError, media_rows, refusal, restricted
from dataset_card.validate import validate

log = logging.getLogger(__name__)
REPO_TYPE = "dataset"
PREUPLOAD_BATCH = 16  # files per preupload call: an interruption loses at most one batch of work
_KEEP_REMOTE = (".gitattributes",)  # Hub-managed files we never delete


class TokenError(RuntimeError):
    """No Hugging Face token where we looked."""


@dataclass(frozen=True)
class PublishResult:
    """What ``publish`` did."""

    repo_id: str
    revision: str
    commit: str | None  # None: nothing changed, no commit made
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def resolve_token(token_from_env: bool) -> str:
    """The token from HF_TOKEN (``--token-from-env``) or the usual HF places (env, ``hf auth login``)."""
    token = os.environ.get("HF_TOKEN") if token_from_env else huggingface_hub.get_token()
    if not token:
        where = "the HF_TOKEN environment variable" if token_from_env else "HF_TOKEN or the saved login"
        raise TokenError(f"no Hugging Face token found in {where}: run `hf auth login` "
                         "(or set HF_TOKEN to a token with write access) and try again")
    return token


def hub_folder(path: Path | str, metadata_only: bool = False) -> Path:
    """The folder to upload: ``path`` itself when it is a built folder, else a fresh build of the
    run folder ``path`` into ``path/hub`` (always rebuilt: the card must describe the data)."""
    path = Path(path)
    if (path / "run.json").exists() or not (path / "README.md").exists():
        return build(path, path / HUB_DIR, metadata_only=metadata_only).out_dir
    return path


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a regular (non-LFS) file, as the Hub reports it in ``blob_id``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _local_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def _unchanged(path: Path, sibling) -> bool:
    data = path.read_bytes()
    if sibling.lfs is not None:
        return sibling.lfs.sha256 == hashlib.sha256(data).hexdigest()
    return sibling.blob_id == git_blob_sha1(data)


def publish(path: Path | str, repo_id: str, *, private: bool = False, revision: str | None = None,
            token_from_env: bool = False, metadata_only: bool = False, redistribute: Iterable[str] = (),
            api: HfApi | None = None) -> PublishResult:
    """Build if needed, validate, and upload ``path`` to the dataset repo ``repo_id``.

    Media (audio, images) of sources whose terms do not allow redistribution go only to a private
    repository, or with ``redistribute`` naming those sources (see :mod:`dataset_card.licences`).
    Raises :class:`TokenError` without a token, ``ValidationError`` for a broken folder and
    :class:`LicenceError` for media that may not go public, before anything is created or sent.
    """
    token = resolve_token(token_from_env)
    root = hub_folder(path, metadata_only)
    validate(root).raise_if_failed()  # a hand-edited folder is checked as well as a fresh build
    blocked = _blocked_media(root, repo_id, private, metadata_only, redistribute)
    api = api or HfApi()
    api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True, token=token)
    if revision:
        api.create_branch(repo_id, branch=revision, repo_type=REPO_TYPE, exist_ok=True, token=token)
    info = api.repo_info(repo_id, repo_type=REPO_TYPE, revision=revision, files_metadata=True, token=token)
    if blocked and not info.private:  # create_repo(private=True) leaves an existing public repo public
        raise LicenceError(f"--private was given but {repo_id} already exists as a public repository: "
                           + str(refusal(repo_id, blocked)))
    remote = {s.rfilename: s for s in info.siblings or []}
    local = _local_files(root)
    unchanged = [p for p, f in local.items() if p in remote and _unchanged(f, remote[p])]
    changed = [p for p in local if p not in unchanged]
    deleted = [p for p in remote if p not in local and p not in _KEEP_REMOTE]
    rev = revision or "main"
    if not changed and not deleted:
        log.info("%s@%s already holds these %d files: no commit", repo_id, rev, len(local))
        return PublishResult(repo_id, rev, None, [], [], unchanged)
    additions = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(local[p])) for p in changed]
    for i in range(0, len(additions), PREUPLOAD_BATCH):
        api.preupload_lfs_files(repo_id, additions=additions[i:i + PREUPLOAD_BATCH], token=token,
                                repo_type=REPO_TYPE, revision=revision)
        log.info("pre-uploaded %d/%d changed files", min(i + PREUPLOAD_BATCH, len(additions)), len(additions))
    ops = additions + [CommitOperationDelete(path_in_repo=p) for p in deleted]
    commit = api.create_commit(repo_id, ops, commit_message=f"IMEMNet-C: {len(changed)} files changed, "
                               f"{len(deleted)} removed", token=token, repo_type=REPO_TYPE, revision=revision,
                               parent_commit=info.sha)
    log.info("committed %s to %s@%s", commit.oid, repo_id, rev)
    return PublishResult(repo_id, rev, commit.oid, changed, deleted, unchanged)


def _blocked_media(root: Path, repo_id: str, private: bool, metadata_only: bool,
                   redistribute: Iterable[str]) -> list:
    """Media rows a public repository may not get; LicenceError at once when the upload is public."""
    media = media_rows(root)
    if metadata_only and media:
        raise LicenceError(f"{root} holds audio/images although --metadata-only was given (it was built with "
                           "media): publish the run folder, or rebuild with `python -m dataset_card build "
                           "--metadata-only`")
    blocked = restricted(media, redistribute)
    if blocked and not private:
        raise refusal(repo_id, blocked)
    return blocked
