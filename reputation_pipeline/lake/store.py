"""Object storage for the lake.

Two backends with the same semantics, so every stage is written once:
- ``put`` is atomic (readers see the whole object or nothing): a local
  temp-file + rename, or one S3 PUT.
- ``put(..., if_absent=True)`` is a conditional create used for single-writer
  fencing of ingest plans and commit manifests: ``O_EXCL``-style link locally,
  ``If-None-Match: *`` on S3 (honoured by AWS S3 and moto server).
Keys are always '/'-separated and relative to the lake root; callers build them
from sanitized values only (see ``reputation_pipeline.lake.keys``).
"""
from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse


class LakeStore(Protocol):
    uri: str

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> bool: ...
    def get(self, key: str) -> bytes | None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str, start_after: str | None = None) -> Iterator[str]: ...
    def folders(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...
    def url(self, key: str = "") -> str: ...


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_key(key: str) -> str:
    if any(p in ("", ".", "..") for p in key.split("/")) or "\x00" in key or "\\" in key:
        raise ValueError(f"unsafe lake key: {key!r}")
    return key


class LocalStore:
    """A lake in a local folder."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        path = self._path(key)
        self._mkdirs(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if if_absent:
                # link() fails if the target exists: an atomic create-if-absent.
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return False
                finally:
                    os.unlink(tmp)
            else:
                os.replace(tmp, path)
            _fsync_dir(path.parent)  # the new name is durable, not only the bytes
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return True

    def _mkdirs(self, folder: Path) -> None:
        """mkdir -p, each new folder's entry made durable in its parent (a commit written
        after a data file must not survive a power cut that loses the data file's folder)."""
        missing = []
        while not folder.is_dir():
            missing.append(folder)
            folder = folder.parent
        for new in reversed(missing):
            new.mkdir(exist_ok=True)
            _fsync_dir(new.parent)

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[str]:
        if prefix:
            _check_key(prefix.rstrip("/"))
        base = self.root / prefix if prefix else self.root
        # the deepest existing folder under which every key with this prefix lives
        folder = base if prefix.endswith("/") or base.is_dir() else base.parent
        if not folder.is_dir():
            return
        keys = []
        for dirpath, _dirs, files in os.walk(folder):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                key = os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")
                if key.startswith(prefix) and (start_after is None or key > start_after):
                    keys.append(key)
        yield from sorted(keys)

    def folders(self, prefix: str) -> list[str]:
        """The names one level below the folder ``prefix`` (ending in '/'), without
        walking deeper: ``raw/posts/`` -> ``['platform=reddit', ...]``."""
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".tmp-"))

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def url(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)


class S3Store:
    """A lake under ``s3://bucket/prefix``, through the S3 HTTP API (boto3)."""

    def __init__(self, bucket: str, prefix: str, client: Any):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    CONFLICT_RETRIES = 6

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key), "Body": data}
        if not if_absent:
            self.client.put_object(**kwargs)
            return True
        kwargs["IfNoneMatch"] = "*"
        for attempt in range(self.CONFLICT_RETRIES):
            try:
                self.client.put_object(**kwargs)
                return True
            except self.client.exceptions.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if code == "ConditionalRequestConflict" or status == 409:
                    # another conditional write to this key is in flight, and may yet fail:
                    # not an answer, so ask again
                    time.sleep(min(0.05 * 2 ** attempt, 1.0))
                    continue
                if code == "PreconditionFailed" or status == 412:
                    # the key exists; when it holds our bytes, the SDK retried a PUT of ours
                    # whose first attempt had landed (its answer lost): ours, so created
                    return self.get(key) == data
                raise
        raise RuntimeError(f"conditional create of {key!r} kept conflicting with concurrent writes "
                           f"({self.CONFLICT_RETRIES} attempts)")

    def get(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[str]:
        if prefix:
            _check_key(prefix.rstrip("/"))
        base = f"{self.prefix}/" if self.prefix else ""
        full_prefix = base + prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full_prefix}
        if start_after:
            kwargs["StartAfter"] = self._key(start_after)
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:]

    def folders(self, prefix: str) -> list[str]:
        """The names one level below ``prefix`` (ending in '/'): S3's common prefixes."""
        full_prefix = self._key(prefix.rstrip("/")) + "/"
        names = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix,
                                                                           Delimiter="/"):
            names += [p["Prefix"][len(full_prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return sorted(names)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def url(self, key: str = "") -> str:
        return f"{self.uri}/{key}" if key else self.uri


class ConditionalWritesUnsupported(RuntimeError):
    """The store accepts a second create-if-absent of one key: exactly-once cannot hold on it."""


_CHECKED: set[str] = set()


def check_conditional_writes(store: LakeStore) -> None:
    """Refuse a store that ignores ``If-None-Match: *`` (some S3-compatible servers accept the
    header and overwrite): two planners could then own one range, and a batch commit twice.
    One probe per store and process; the probe object is removed."""
    if store.uri in _CHECKED:
        return
    key = f"_ingest/probe/{uuid.uuid4().hex}"
    try:
        first, second = store.put(key, b"1", if_absent=True), store.put(key, b"2", if_absent=True)
        if not first or second or store.get(key) != b"1":
            raise ConditionalWritesUnsupported(
                f"the lake at {store.uri} does not honour conditional creates (If-None-Match: *): a second "
                "create of one object succeeded or overwrote it. Exactly-once ingest needs them: use AWS S3, "
                "MinIO >= 2024-11 or another store that returns 412 for an existing key.")
    finally:
        store.delete(key)
    _CHECKED.add(store.uri)


def s3_client_from_env() -> Any:
    """A boto3 S3 client configured from the standard AWS variables
    (AWS_ENDPOINT_URL for a non-AWS endpoint such as moto or MinIO)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )


def open_lake(uri: str, s3_client: Any | None = None) -> LakeStore:
    """``./lake`` or ``/abs/path`` -> LocalStore; ``s3://bucket/prefix`` -> S3Store."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"S3 lake URI needs a bucket: {uri!r}")
        return S3Store(parsed.netloc, parsed.path, s3_client or s3_client_from_env())
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"unsupported lake URI scheme {parsed.scheme!r} in {uri!r}")
    return LocalStore(parsed.path if parsed.scheme == "file" else uri)
