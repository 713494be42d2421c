"""Entity files uploaded to S3 (moto on loopback) while they are written, published whole."""

from __future__ import annotations

import hashlib
import time

import boto3
import pytest

from pg_metadata.errors import OutputError
from pg_metadata.output.formats import write_encoded_json_lines
from pg_metadata.output.storage import S3Publication, S3Store

pytestmark = pytest.mark.integration

LINE = b'{"typeName": "Column", "attributes": {"name": "' + b"x" * 1000 + b'"}}\n'
LINES_PER_CHUNK = 1000  # ~1 MB a chunk


class SmallParts(S3Publication):
    PART_BYTES = 5 << 20  # S3's smallest part


@pytest.fixture
def s3(aws_env):
    return boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")


def _chunks(count: int, seen: list[int] | None = None):
    for index in range(count):
        if seen is not None:
            seen.append(index)
        yield LINE * LINES_PER_CHUNK, LINES_PER_CHUNK


def _uploads(s3, bucket: str) -> list[dict]:
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_parts_go_up_while_the_file_is_written_and_it_appears_only_when_complete(
    s3, s3_bucket, tmp_path
):
    store = S3Store(s3, s3_bucket, "src")
    local = tmp_path / "column.part"
    publication = SmallParts(store, local, "runs/r1/transformed/column/db.json")
    parts_while_writing: list[int] = []

    def chunks():
        yield from _chunks(24)
        # the writer is still open: S3 holds parts of an upload (4 are complete), no object
        (upload,) = _uploads(s3, s3_bucket)
        deadline = time.monotonic() + 10
        while len(parts_while_writing) < 4 and time.monotonic() < deadline:
            listed = s3.list_parts(Bucket=s3_bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            parts_while_writing[:] = [p["PartNumber"] for p in listed.get("Parts", [])]
            time.sleep(0.05)
        assert "Contents" not in s3.list_objects_v2(Bucket=s3_bucket)

    digest = hashlib.sha256()
    lines = write_encoded_json_lines(chunks(), local, digest, publication.grown)
    expected = local.read_bytes()
    uri = publication.finish()

    assert lines == 24 * LINES_PER_CHUNK
    assert sorted(parts_while_writing) == [1, 2, 3, 4]  # 24 MB in 5 MiB parts: the 5th at the end
    assert uri == f"s3://{s3_bucket}/src/runs/r1/transformed/column/db.json"
    body = s3.get_object(Bucket=s3_bucket, Key="src/runs/r1/transformed/column/db.json")
    assert body["Body"].read() == expected
    assert hashlib.sha256(expected).hexdigest() == digest.hexdigest()
    assert _uploads(s3, s3_bucket) == []
    assert not local.exists()


def test_a_file_smaller_than_a_part_is_uploaded_whole(s3, s3_bucket, tmp_path):
    store = S3Store(s3, s3_bucket, "")
    local = tmp_path / "small.part"
    publication = store.begin_publish(local, "transformed/schema/db.json")
    write_encoded_json_lines(_chunks(2), local, None, publication.grown)
    assert _uploads(s3, s3_bucket) == []  # nothing started for under a part
    publication.finish()
    body = s3.get_object(Bucket=s3_bucket, Key="transformed/schema/db.json")["Body"].read()
    assert body == LINE * LINES_PER_CHUNK * 2


def test_a_failed_write_leaves_no_object_and_no_upload(s3, s3_bucket, tmp_path):
    store = S3Store(s3, s3_bucket, "")
    local = tmp_path / "column.part"
    publication = SmallParts(store, local, "transformed/column/db.json")

    def failing():
        yield from _chunks(12)
        raise RuntimeError("the catalog connection was lost")

    with pytest.raises(RuntimeError):
        write_encoded_json_lines(failing(), local, None, publication.grown)
    assert len(_uploads(s3, s3_bucket)) == 1  # parts of it went up already
    publication.abort()
    assert _uploads(s3, s3_bucket) == []
    assert "Contents" not in s3.list_objects_v2(Bucket=s3_bucket)
    assert not local.exists()


def test_an_upload_that_cannot_start_stops_the_writer_with_one_line(s3, s3_bucket, tmp_path):
    store = S3Store(s3, f"{s3_bucket}-missing", "src")
    local = tmp_path / "column.part"
    publication = SmallParts(store, local, "transformed/column/db.json")
    built: list[int] = []

    with pytest.raises(OutputError) as failure:
        write_encoded_json_lines(_chunks(200, built), local, None, publication.grown)
    publication.abort()

    message = str(failure.value)
    assert message.startswith(f"cannot write s3://{s3_bucket}-missing/src/transformed/column/")
    assert "NoSuchBucket" in message and "\n" not in message
    assert len(built) < 50  # the writer stopped soon after the first part, not at the end
    assert not local.exists()
