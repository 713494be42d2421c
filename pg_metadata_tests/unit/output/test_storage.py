"""Output targets: parsing, safe path segments, and atomic publication on the local disk."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from pg_metadata.errors import ConfigError, OutputError
from pg_metadata.output.storage import DEFAULT_TARGET, LocalStore, encode_segment, parse_target


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("./out", ("local", "./out", "")),
        ("/abs/out", ("local", "/abs/out", "")),
        ("file:///x", ("local", "/x", "")),
        ("s3://bucket/prefix/", ("s3", "bucket", "prefix")),
        ("s3://bucket/a/b", ("s3", "bucket", "a/b")),
        ("s3://bucket", ("s3", "bucket", "")),
        ("s3://bucket/", ("s3", "bucket", "")),
        ("", ("local", DEFAULT_TARGET, "")),
        ("  ", ("local", DEFAULT_TARGET, "")),
    ],
)
def test_parse_target(target: str, expected: tuple[str, str, str]) -> None:
    assert parse_target(target) == expected


def test_parse_target_s3_without_bucket() -> None:
    with pytest.raises(ConfigError, match="no bucket") as info:
        parse_target("s3://")
    assert "PG_METADATA_OUTPUT" in str(info.value)


@pytest.mark.parametrize("target", ["gs://x", "http://example.com/out", "ftp://h/p"])
def test_parse_target_unsupported_scheme(target: str) -> None:
    with pytest.raises(ConfigError, match="not supported") as info:
        parse_target(target)
    assert target in str(info.value)


NAMES = [
    "shop",
    "a/b",
    "a%2Fb",
    "..",
    ".",
    ".hidden",
    "%2Ehidden",
    'Odd "DB".name/x',
    "café",
    "日本語",
    "with space",
    "back\\slash",
    "colon:star*?",
    "a\nb",
]


@pytest.mark.parametrize("name", NAMES)
def test_encode_segment_is_one_safe_segment(name: str, tmp_path: Path) -> None:
    seg = encode_segment(name)
    assert seg and "/" not in seg and "\\" not in seg and "\x00" not in seg
    assert seg not in (".", "..") and not seg.startswith(".")
    assert seg.isascii() and seg.isprintable()
    assert unquote(seg) == name  # reversible, hence distinct for distinct names
    path = tmp_path / seg
    path.write_text("x")
    assert path.resolve().parent == tmp_path.resolve()
    assert [p.name for p in tmp_path.iterdir()] == [seg]


def test_encode_segment_distinct_for_distinct_names() -> None:
    assert len({encode_segment(n) for n in NAMES}) == len(NAMES)


@pytest.mark.parametrize(
    ("name", "segment"),
    [
        ("shop", "shop"),
        ("crm_2024-v2", "crm_2024-v2"),
        ("a/b", "a%2Fb"),
        ("..", "%2E."),
        (".hidden", "%2Ehidden"),
        ('Odd "DB".name/x', "Odd %22DB%22.name%2Fx"),
        ("café", "caf%C3%A9"),
    ],
)
def test_encode_segment_values(name: str, segment: str) -> None:
    assert encode_segment(name) == segment


# --- LocalStore -------------------------------------------------------------------------------

KEY = "runs/r1/raw/tables/shop.parquet"


def staged(store: LocalStore, data: bytes) -> Path:
    """A complete file in the store's staging folder."""
    path = store.staging_dir() / "upload.part"
    path.write_bytes(data)
    return path


def test_publish_moves_staged_file_under_key(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "out")
    local = staged(store, b"payload")
    uri = store.publish(local, KEY)
    target = tmp_path / "out" / KEY
    assert uri == str(target) == store.uri(KEY)
    assert target.read_bytes() == b"payload"
    assert not local.exists()  # consumed: a rename, not a copy
    assert local.parent == (tmp_path / "out").resolve() / ".staging"  # same disk as the target
    assert store.read_bytes(KEY) == b"payload"


def test_publish_replaces_existing_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.publish(staged(store, b"old"), KEY)
    store.publish(staged(store, b"new"), KEY)
    assert store.read_bytes(KEY) == b"new"


def test_publish_bytes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    uri = store.publish_bytes(b'{"ok": true}\n', "runs/r1/manifest.json")
    assert Path(uri).read_bytes() == b'{"ok": true}\n'
    assert store.read_bytes("runs/r1/manifest.json") == b'{"ok": true}\n'
    assert list(store.staging_dir().iterdir()) == []  # no leftover .part files


def test_read_bytes_of_missing_key_is_none(tmp_path: Path) -> None:
    assert LocalStore(tmp_path).read_bytes("runs/none/manifest.json") is None


def test_fetch(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    uri = store.publish_bytes(b"data", KEY)
    assert store.fetch(uri).read_bytes() == b"data"
    assert store.fetch(f"file://{uri}").read_bytes() == b"data"


def test_fetch_missing_raises_output_error(tmp_path: Path) -> None:
    missing = tmp_path / "gone.parquet"
    with pytest.raises(OutputError, match="missing") as info:
        LocalStore(tmp_path).fetch(str(missing))
    assert str(missing) in str(info.value)


def test_unwritable_root_raises_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="PG_METADATA_OUTPUT"):
        LocalStore(blocker / "out").staging_dir()


def test_root_is_expanded_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = LocalStore("./rel")
    assert store.root == (tmp_path / "rel").resolve()
    assert Path(store.uri(KEY)).is_absolute()
