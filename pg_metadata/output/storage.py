"""Where output goes: a local folder or an S3 prefix, with atomic publication of whole files.

Files are always written to a local staging file first and published in one step (a rename on
a local disk, an S3 PUT or the completion of a multipart upload), so a reader never sees a
half-written file. To S3, a file that is still being written is uploaded as it grows: its
parts go up on a few threads while the rest is built, and the upload completes when it does.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import os
import shutil
import tempfile
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from pg_metadata.errors import ConfigError, OutputError

DEFAULT_TARGET = "./pg_metadata_output"


def encode_segment(name: str) -> str:
    """A database name as one safe path segment: verbatim where safe, percent-encoded otherwise."""
    encoded = quote(name, safe=" -_@+=,~!$'()")
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    return encoded or "%00"


class ObjectStore(ABC):
    """A place to publish whole files under keys like `runs/<run>/raw/tables/shop.parquet`."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """The full URI of a key."""

    @abstractmethod
    def staging_dir(self) -> Path:
        """A local directory for staging files before publication."""

    @abstractmethod
    def publish(self, local: Path, key: str) -> str:
        """Publish a complete local file under key (consuming it); return its URI."""

    @abstractmethod
    def fetch(self, uri: str) -> Path:
        """A local path holding the content of uri (downloaded if remote)."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes | None:
        """Content of a small object, or None if it does not exist."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Keys directly or indirectly under a prefix like `latest/`."""

    @abstractmethod
    def delete(self, keys: list[str]) -> None:
        """Remove objects (missing ones are fine)."""

    def sweep(self, older_than: float) -> int:
        """Remove what killed runs left in the store (staging parts, incomplete multipart
        uploads) started before `older_than` (epoch seconds); how many."""
        return 0

    @abstractmethod
    def probe(self) -> str:
        """Prove the target is writable (write and delete a probe object); a description of it.
        Raises OutputError naming the folder or bucket and what to check."""

    def begin_publish(self, local: Path, key: str) -> Publication:
        """A publication of a local file still being written: tell it how far the file has
        grown (`grown`), then `finish` it once the file is complete, or `abort` it."""
        return Publication(self, local, key)

    def publish_bytes(self, data: bytes, key: str) -> str:
        """Publish small content atomically."""
        fd, name = tempfile.mkstemp(dir=self.staging_dir(), suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return self.publish(Path(name), key)


class Publication:
    """A staging file published once it is complete (the store's `publish`). The publication
    owns the file: `finish` consumes it and `abort` removes it."""

    def __init__(self, store: ObjectStore, local: Path, key: str) -> None:
        self.store, self.local, self.key = store, local, key

    def grown(self, size: int) -> None:
        """The file now holds `size` bytes that will not change (called as it is written)."""

    def finish(self) -> str:
        """Publish the complete file (consuming it); its URI."""
        return self.store.publish(self.local, self.key)

    def abort(self) -> None:
        """Publish nothing; what was uploaded already is removed."""
        self.local.unlink(missing_ok=True)


class LocalStore(ObjectStore):
    """A folder on the local disk."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def uri(self, key: str) -> str:
        return str(self.root / key)

    def staging_dir(self) -> Path:
        path = self.root / ".staging"
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot create output folder {self.root}: {exc.strerror} "
                "(set PG_METADATA_OUTPUT to a writable folder or s3://bucket/prefix)"
            ) from None
        return path

    def probe(self) -> str:
        where = f"output folder {self.root}"
        # the folders the probe creates are removed again: a check leaves nothing behind
        created = [p for p in (self.root, *self.root.parents) if not p.exists()]
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".pg_metadata-probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"probe")
            probe.unlink()
        except OSError as exc:
            raise OutputError(
                f"cannot write to {where}: {exc.strerror or exc} (set PG_METADATA_OUTPUT to a "
                "writable folder or s3://bucket/prefix)"
            ) from None
        finally:
            for folder in created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
        return f"{where} is writable"

    def publish(self, local: Path, key: str) -> str:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, target)  # same filesystem as staging_dir: atomic
        return str(target)

    def fetch(self, uri: str) -> Path:
        path = Path(uri[7:] if uri.startswith("file://") else uri)
        if not path.exists():
            raise OutputError(f"output file {path} is missing; materialize its asset again")
        return path

    def read_bytes(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.exists() else None

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        keys: list[str] = []
        top = base.relative_to(self.root).as_posix()
        folders = [(str(base), "" if top == "." else top)]
        while folders:  # os.scandir: a fifth of rglob's time (one stat less a file)
            folder, rel = folders.pop()
            with os.scandir(folder) as entries:
                for entry in entries:
                    key = f"{rel}/{entry.name}" if rel else entry.name
                    if entry.is_dir(follow_symlinks=False):
                        folders.append((entry.path, key))
                    elif entry.is_file():
                        keys.append(key)
        return sorted(keys)

    def sweep(self, older_than: float) -> int:
        removed = 0
        staging = self.root / ".staging"
        for part in staging.glob("*.part*") if staging.is_dir() else ():
            with contextlib.suppress(OSError):
                if part.stat().st_mtime < older_than:
                    part.unlink()
                    removed += 1
        return removed

    def delete(self, keys: list[str]) -> None:
        folders = set()
        for key in keys:
            path = self.root / key
            path.unlink(missing_ok=True)
            folders.update(p for p in path.parents if self.root in p.parents)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # only empty ones go
                folder.rmdir()


class S3Store(ObjectStore):
    """An S3 (or S3-compatible) bucket and prefix, reached through a boto3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def staging_dir(self) -> Path:
        return _process_temp_dir()

    def probe(self) -> str:
        where = self.uri("")
        region = getattr(getattr(self.client, "meta", None), "region_name", None) or "default"
        key = self._key(f".pg_metadata-probe-{uuid.uuid4().hex}")
        step = "find the bucket"
        try:
            self.client.head_bucket(Bucket=self.bucket)
            step = "write a probe object"
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"probe")
            step = "delete the probe object"
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            reason = _aws_reason(exc)
            if reason in ("404", "404 Not Found", "NoSuchBucket"):
                reason = f"bucket {self.bucket!r} does not exist"
            elif reason in ("403", "403 Forbidden"):
                reason = f"access to bucket {self.bucket!r} is denied"
            raise OutputError(
                f"cannot use output {where}: could not {step}: {reason} (region {region}; check "
                "the bucket name, AWS_REGION, the AWS credentials, and AWS_ENDPOINT_URL for an "
                "S3-compatible store)"
            ) from None
        return f"output {where} is writable (bucket {self.bucket!r}, region {region})"

    def publish(self, local: Path, key: str) -> str:
        try:
            self.client.upload_file(str(local), self.bucket, self._key(key))
        except Exception as exc:
            raise _write_error(self.uri(key), exc) from None
        finally:
            local.unlink(missing_ok=True)
        return self.uri(key)

    def begin_publish(self, local: Path, key: str) -> Publication:
        return S3Publication(self, local, key)

    def fetch(self, uri: str) -> Path:
        parsed = urlparse(uri)
        local = _process_temp_dir() / uuid.uuid4().hex
        try:
            self.client.download_file(parsed.netloc, parsed.path.lstrip("/"), str(local))
        except Exception as exc:
            raise OutputError(f"cannot read {uri}: {_aws_reason(exc)}") from None
        return local

    def read_bytes(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            raise OutputError(f"cannot read {self.uri(key)}: {_aws_reason(exc)}") from None
        return response["Body"].read()

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                keys += [o["Key"] for o in page.get("Contents", [])]
        except Exception as exc:
            raise OutputError(f"cannot list {self.uri(prefix)}: {_aws_reason(exc)}") from None
        strip = len(self.prefix) + 1 if self.prefix else 0
        return sorted(k[strip:] for k in keys)

    def sweep(self, older_than: float) -> int:
        removed = 0
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self._key("")
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"].timestamp() < older_than:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        removed += 1
        except Exception as exc:
            raise OutputError(
                f"cannot clear incomplete uploads under {self.uri('')}: {_aws_reason(exc)}"
            ) from None
        return removed

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            try:
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except Exception as exc:
                raise OutputError(
                    f"cannot delete old runs under {self.uri('runs/')}: {_aws_reason(exc)}"
                ) from None


class S3Publication(Publication):
    """A file uploaded to S3 while it is written: each complete part of PART_BYTES goes up on
    one of UPLOAD_THREADS threads (read from the staging file, so memory stays flat), and the
    multipart upload is completed when the file is. A file that stays smaller than a part is
    uploaded whole at the end."""

    PART_BYTES = 16 << 20  # 10,000 parts (S3's limit) make 160 GB
    UPLOAD_THREADS = 4

    store: S3Store

    def __init__(self, store: S3Store, local: Path, key: str) -> None:
        super().__init__(store, local, key)
        self._upload_id: str | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._parts: list[concurrent.futures.Future[dict[str, Any]]] = []
        self._queued = 0  # bytes handed to the threads so far
        # at most this many parts wait or upload at once: a writer ahead of the network waits
        self._slots = threading.BoundedSemaphore(2 * self.UPLOAD_THREADS)

    def grown(self, size: int) -> None:
        while size - self._queued >= self.PART_BYTES:
            self._queue_part(self._queued, self.PART_BYTES)

    def finish(self) -> str:
        try:
            if self._upload_id is None:
                return super().finish()
            size = self.local.stat().st_size
            while self._queued < size:
                self._queue_part(self._queued, min(self.PART_BYTES, size - self._queued))
            parts = [future.result() for future in self._parts]
            self._call(
                self.store.client.complete_multipart_upload,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
            self._upload_id = None
            return self.store.uri(self.key)
        except BaseException:
            self.abort()
            raise
        finally:
            self._stop()
            self.local.unlink(missing_ok=True)

    def abort(self) -> None:
        self._stop()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:  # best effort: the retention sweep removes what stays
            with contextlib.suppress(Exception):
                self.store.client.abort_multipart_upload(
                    Bucket=self.store.bucket, Key=self.store._key(self.key), UploadId=upload_id
                )
        super().abort()

    def _queue_part(self, start: int, length: int) -> None:
        for future in self._parts:  # a failed part stops the writer at once
            if future.done() and future.exception() is not None:
                future.result()
        if self._upload_id is None:
            created = self._call(self.store.client.create_multipart_upload)
            self._upload_id = created["UploadId"]
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self.UPLOAD_THREADS, thread_name_prefix="pg_metadata-upload"
            )
        self._slots.acquire()
        assert self._pool is not None
        number = len(self._parts) + 1
        self._parts.append(self._pool.submit(self._upload_part, number, start, length))
        self._queued = start + length

    def _upload_part(self, number: int, start: int, length: int) -> dict[str, Any]:
        from s3transfer.utils import ReadFileChunk  # boto3's own: only S3 targets import it

        try:
            with ReadFileChunk.from_filename(str(self.local), start, length) as body:
                done = self._call(
                    self.store.client.upload_part,
                    UploadId=self._upload_id,
                    PartNumber=number,
                    Body=body,
                    ContentLength=length,
                )
        finally:
            self._slots.release()
        return {"PartNumber": number, "ETag": done["ETag"]}

    def _call(self, method: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        try:
            return method(Bucket=self.store.bucket, Key=self.store._key(self.key), **kwargs)
        except Exception as exc:
            raise _write_error(self.store.uri(self.key), exc) from None

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def parse_target(target: str) -> tuple[str, str, str]:
    """('s3', bucket, prefix) or ('local', path, '') for an output target string."""
    target = (target or "").strip() or DEFAULT_TARGET
    if target.startswith("s3://"):
        parsed = urlparse(target)
        if not parsed.netloc:
            raise ConfigError(
                f"output target {target!r} has no bucket; "
                "use s3://bucket/prefix (PG_METADATA_OUTPUT)"
            )
        return "s3", parsed.netloc, parsed.path.strip("/")
    if "://" in target and not target.startswith("file://"):
        raise ConfigError(
            f"output target {target!r} is not supported; use a local folder or s3://bucket/prefix"
        )
    return "local", target[7:] if target.startswith("file://") else target, ""


def open_store(target: str, source: str = "", s3_client: Any = None) -> ObjectStore:
    """The store for `<target>/<source>/`; `s3_client` is a callable returning a boto3 client."""
    kind, location, prefix = parse_target(target)
    sub = encode_segment(source) if source else ""
    if kind == "s3":
        if s3_client is None:
            import boto3

            def s3_client() -> Any:
                return boto3.client("s3")

        return S3Store(s3_client(), location, "/".join(p for p in (prefix, sub) if p))
    return LocalStore(Path(location) / sub if sub else location)


def _write_error(uri: str, exc: Exception) -> OutputError:
    return OutputError(
        f"cannot write {uri}: {_aws_reason(exc)} "
        "(check the bucket, AWS credentials and AWS_ENDPOINT_URL)"
    )


def _aws_reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code', '')} {err.get('Message', '')}".strip()
    return " ".join(str(exc).split()) or type(exc).__name__


_TEMP: list[Path] = []


def _process_temp_dir() -> Path:
    if not _TEMP:
        path = Path(tempfile.mkdtemp(prefix="pg_metadata_io_"))
        atexit.register(shutil.rmtree, path, True)
        _TEMP.append(path)
    return _TEMP[0]
