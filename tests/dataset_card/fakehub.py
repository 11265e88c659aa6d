"""An offline ``HfApi`` test double: commits land in a folder instead of on the Hub.

Only the methods the publish path calls are overridden; everything they receive is what the real
``HfApi`` would send. LFS-tracked files must be pre-uploaded (as on the Hub) before a commit may
reference them; blobs already held are not uploaded again, so a rerun after an interruption
resumes. Each commit is checked out to ``root/checkout/<repo_id>/`` (what a user's clone holds).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.hf_api import CommitInfo, DatasetInfo

LFS_SUFFIXES = (".parquet", ".png")  # the Hub's default .gitattributes tracks these with LFS


class Interrupted(ConnectionError):
    """Raised by the double to simulate a dropped connection during upload."""


@dataclass
class Repo:
    private: bool
    refs: dict[str, str | None] = field(default_factory=lambda: {"main": None})
    commits: dict[str, dict[str, tuple[str, bool]]] = field(default_factory=dict)  # id -> {path: (sha256, lfs)}
    messages: list[str] = field(default_factory=list)


class FakeHfApi(HfApi):
    def __init__(self, root: Path, fail_after_uploads: int | None = None):
        super().__init__(endpoint="http://127.0.0.1:9")  # never contacted: every used method is overridden
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.repos: dict[str, Repo] = {}
        self.lfs_uploads: list[str] = []
        self.tokens_seen: list[str | None] = []
        self.fail_after_uploads = fail_after_uploads

    def checkout_dir(self, repo_id: str) -> Path:
        return self.root / "checkout" / repo_id

    def create_repo(self, repo_id, *, token=None, private=False, repo_type=None, exist_ok=False, **kw):
        self.tokens_seen.append(token)
        assert repo_type == "dataset"
        if repo_id in self.repos and not exist_ok:
            raise FileExistsError(repo_id)
        self.repos.setdefault(repo_id, Repo(private=private))
        return f"{self.endpoint}/datasets/{repo_id}"

    def create_branch(self, repo_id, *, branch, token=None, repo_type=None, exist_ok=False, **kw):
        refs = self.repos[repo_id].refs
        refs.setdefault(branch, refs["main"])

    def _tree(self, repo_id: str, revision: str | None) -> tuple[str | None, dict[str, tuple[str, bool]]]:
        repo = self.repos[repo_id]
        head = repo.refs[revision or "main"]
        return head, (repo.commits[head] if head else {})

    def repo_info(self, repo_id, *, revision=None, repo_type=None, files_metadata=False, token=None, **kw):
        self.tokens_seen.append(token)
        head, tree = self._tree(repo_id, revision)
        siblings = []
        for path, (sha, lfs) in sorted(tree.items()):
            data = (self.objects / sha).read_bytes()
            sib = {"rfilename": path, "size": len(data),
                   "blobId": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
            if lfs:
                sib["lfs"] = {"size": len(data), "sha256": sha, "pointerSize": 134}
            siblings.append(sib)
        return DatasetInfo(id=repo_id, sha=head, private=self.repos[repo_id].private, siblings=siblings)

    def preupload_lfs_files(self, repo_id, additions, *, token=None, repo_type=None, revision=None, **kw):
        self.tokens_seen.append(token)
        for op in additions:
            op._upload_mode = "lfs" if op.path_in_repo.endswith(LFS_SUFFIXES) else "regular"
            if op._upload_mode == "lfs":
                sha = op.upload_info.sha256.hex()
                if not (self.objects / sha).exists():  # the Hub skips blobs it already holds
                    if self.fail_after_uploads is not None and len(self.lfs_uploads) >= self.fail_after_uploads:
                        raise Interrupted("connection dropped (simulated)")
                    with op.as_file() as fh:
                        (self.objects / sha).write_bytes(fh.read())
                    self.lfs_uploads.append(op.path_in_repo)
            op._is_uploaded = True

    def create_commit(self, repo_id, operations, *, commit_message, token=None, repo_type=None, revision=None,
                      parent_commit=None, **kw):
        self.tokens_seen.append(token)
        repo = self.repos[repo_id]
        head, tree = self._tree(repo_id, revision)
        if parent_commit is not None and parent_commit != head:
            raise RuntimeError(f"parent commit {parent_commit} is not the head {head}")
        tree = dict(tree)
        for op in operations:
            if isinstance(op, CommitOperationDelete):
                tree.pop(op.path_in_repo)
            elif isinstance(op, CommitOperationAdd):
                tree[op.path_in_repo] = self._store(op)
        commit = hashlib.sha1(json.dumps([head, sorted(tree.items()), commit_message]).encode()).hexdigest()
        repo.commits[commit] = tree
        repo.refs[revision or "main"] = commit
        repo.messages.append(commit_message)
        self._checkout(repo_id, tree)
        return CommitInfo(commit_url=f"{self.endpoint}/datasets/{repo_id}/commit/{commit}",
                          commit_message=commit_message, commit_description="", oid=commit,
                          _endpoint=self.endpoint)

    def _store(self, op: CommitOperationAdd) -> tuple[str, bool]:
        sha = op.upload_info.sha256.hex()
        lfs = op.path_in_repo.endswith(LFS_SUFFIXES)
        if lfs and not (self.objects / sha).exists():
            raise RuntimeError(f"LFS object of {op.path_in_repo} was never uploaded")
        if not lfs:
            with op.as_file() as fh:
                (self.objects / sha).write_bytes(fh.read())
        return sha, lfs

    def _checkout(self, repo_id: str, tree: dict[str, tuple[str, bool]]) -> None:
        dest = self.checkout_dir(repo_id)
        shutil.rmtree(dest, ignore_errors=True)
        for path, (sha, _) in tree.items():
            (dest / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.objects / sha, dest / path)

    def commit_count(self, repo_id: str) -> int:
        return len(self.repos[repo_id].messages)
