"""An object-store-like Beam filesystem for tests (scheme ``fakestore://``).

Like GCS or S3 it has flat keys and no folders: ``exists`` is True only for an object itself,
never for a prefix, and deleting a prefix deletes nothing. Objects live as files in one local
folder (``FAKESTORE_ROOT``), so worker processes see the same store as the test.
"""
from __future__ import annotations

import io
import os
import urllib.parse

from apache_beam.io.filesystem import FileMetadata, FileSystem

SCHEME = "fakestore"
ROOT_ENV = "FAKESTORE_ROOT"


def _file(path: str) -> str:
    return os.path.join(os.environ[ROOT_ENV], urllib.parse.quote(path, safe=""))


def keys() -> list[str]:
    """Every object in the store, as ``fakestore://...`` paths."""
    return sorted(urllib.parse.unquote(n) for n in os.listdir(os.environ[ROOT_ENV]))


class _Upload(io.BytesIO):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def close(self):
        if not self.closed:
            with open(_file(self.path), "wb") as fh:
                fh.write(self.getvalue())
        super().close()


class FakeObjectStore(FileSystem):
    @classmethod
    def scheme(cls):
        return SCHEME

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/"), *(p.strip("/") for p in paths)])

    def split(self, path):
        head, _, tail = path.rpartition("/")
        return head, tail

    def has_dirs(self):
        return False

    def mkdirs(self, path):
        pass  # no folders on an object store

    def _list(self, dir_or_prefix):
        for k in keys():
            if k.startswith(dir_or_prefix):
                yield FileMetadata(k, os.path.getsize(_file(k)))

    def create(self, path, mime_type="application/octet-stream", compression_type="auto"):
        return _Upload(path)

    def open(self, path, mime_type="application/octet-stream", compression_type="auto"):
        return open(_file(path), "rb")

    def copy(self, source_file_names, destination_file_names):
        for s, d in zip(source_file_names, destination_file_names):
            with open(_file(s), "rb") as a, open(_file(d), "wb") as b:
                b.write(a.read())

    def rename(self, source_file_names, destination_file_names):
        for s, d in zip(source_file_names, destination_file_names):
            os.replace(_file(s), _file(d))

    def exists(self, path):
        return os.path.isfile(_file(path))  # a prefix is not an object

    def size(self, path):
        return os.path.getsize(_file(path))

    def last_updated(self, path):
        return os.path.getmtime(_file(path))

    def checksum(self, path):
        return str(self.size(path))

    def metadata(self, path):
        return FileMetadata(path, self.size(path), self.last_updated(path))

    def delete(self, paths):
        for p in paths:
            if self.exists(p):
                os.remove(_file(p))
