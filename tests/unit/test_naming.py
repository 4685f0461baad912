"""Member names: any valid S3 key maps to a safe, unique name; safe keys keep their own name."""

from __future__ import annotations

import hashlib
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_aggregator.models import MANIFEST_MEMBER
from data_aggregator.naming import MAX_SEGMENT_BYTES, assign_member_names, is_safe_name, sanitize_key


def assert_safe(name: str) -> None:
    assert name, "empty name"
    assert not name.startswith("/"), name
    segments = name.split("/")
    for segment in segments:
        assert segment not in ("", ".", ".."), f"bad segment in {name!r}"
        assert len(segment.encode("utf-8")) <= MAX_SEGMENT_BYTES, f"segment too long in {name!r}"
    assert not any(unicodedata.category(ch) == "Cc" for ch in name), f"control character in {name!r}"
    name.encode("utf-8")  # must be representable


def object_id(key: str, n: int = 0) -> str:
    return hashlib.sha256(f"{key}#{n}".encode("utf-8", "surrogatepass")).hexdigest()


# Valid S3 keys: 1..1024 bytes of UTF-8 (no surrogates). Weighted towards the awkward parts.
_awkward = st.sampled_from(
    ["", ".", "..", "/", "//", " ", "+", "%", "%2F", "\n", "\x00", "\x7f", "\u0085", "é", "manifest.json", "a" * 300]
)
_segment = st.one_of(_awkward, st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40))
s3_keys = (
    st.lists(_segment, min_size=1, max_size=8).map("/".join).filter(lambda key: 1 <= len(key.encode("utf-8")) <= 1024)
)


@given(s3_keys)
@settings(max_examples=400)
def test_any_key_sanitizes_to_a_safe_name(key: str) -> None:
    assert_safe(sanitize_key(key))


@given(s3_keys)
def test_sanitizing_is_idempotent(key: str) -> None:
    once = sanitize_key(key)
    assert sanitize_key(once) == once


@given(st.lists(s3_keys, min_size=1, max_size=30))
@settings(max_examples=300)
def test_names_in_a_bundle_are_safe_unique_and_extractable(keys: list[str]) -> None:
    entries = [(key, object_id(key, i)) for i, key in enumerate(keys)]
    names = assign_member_names(entries)
    assert len(names) == len(keys)
    assert len(set(names)) == len(names)
    assert MANIFEST_MEMBER not in names
    for name in names:
        assert_safe(name)
    # No member may also be a directory of another member: tar xzf could not create both.
    directories = {"/".join(n.split("/")[:i]) for n in names for i in range(1, n.count("/") + 1)}
    assert not directories & set(names)
    # Nothing may live under the manifest's name: the bundle would hold manifest.json as both.
    assert MANIFEST_MEMBER not in directories
    # Deterministic for a given batch.
    assert assign_member_names(entries) == names


@given(st.lists(s3_keys, min_size=1, max_size=20, unique=True))
def test_safe_keys_keep_their_own_name(keys: list[str]) -> None:
    safe = [k for k in keys if is_safe_name(k)]
    # The one exception: a name some other member needs as its directory (tar cannot hold both).
    paths = [sanitize_key(k) for k in keys]
    directories = {"/".join(p.split("/")[:i]) for p in paths for i in range(1, p.count("/") + 1)}
    entries = [(key, object_id(key)) for key in keys]
    names = dict(zip(keys, assign_member_names(entries), strict=True))
    for key in safe:
        if key not in directories:
            assert names[key] == key


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("plain/file.json", "plain/file.json"),
        ("with space+plus%percent.txt", "with space+plus%percent.txt"),
        ("ünïcødé/文件.txt", "ünïcødé/文件.txt"),
        ("/leading/slash", "leading/slash"),
        ("double//slash", "double/slash"),
        ("../../etc/passwd", "%2E%2E/%2E%2E/etc/passwd"),
        ("a/./b", "a/%2E/b"),
        ("trailing/", "trailing"),
        ("line\nbreak\x00nul", "line%0Abreak%00nul"),
        ("/", "%2F"),
        ("///", "%2F%2F%2F"),
    ],
)
def test_examples(key: str, expected: str) -> None:
    assert sanitize_key(key) == expected


def test_long_segment_is_shortened_and_tagged() -> None:
    key = "x" * 1024
    name = sanitize_key(key)
    assert len(name.encode()) <= MAX_SEGMENT_BYTES
    assert name.startswith("x" * 100)
    assert sanitize_key("x" * 1023 + "y") != name  # the tag keeps different long keys apart


def test_long_multibyte_segment_is_cut_on_a_character_boundary() -> None:
    name = sanitize_key("é" * 400)  # 800 bytes
    assert len(name.encode("utf-8")) <= MAX_SEGMENT_BYTES
    assert set(name.split("~")[0]) == {"é"}


def test_collision_goes_to_the_unsafe_key_and_keeps_the_extension() -> None:
    names = assign_member_names([("/a/b.json", "1" * 64), ("a/b.json", "2" * 64)])
    assert names[1] == "a/b.json"  # the safe key keeps its name even though it came second
    assert names[0] == "a/b~111111111111.json"


def test_two_versions_of_one_key_get_distinct_names() -> None:
    names = assign_member_names([("k.csv", "a" * 64), ("k.csv", "b" * 64)])
    assert names == ["k.csv", "k~bbbbbbbbbbbb.csv"]


def test_key_named_like_the_manifest_is_renamed() -> None:
    assert assign_member_names([(MANIFEST_MEMBER, "c" * 64)]) == ["manifest~cccccccccccc.json"]


def test_file_that_is_also_a_directory_is_renamed() -> None:
    names = assign_member_names([("a", "d" * 64), ("a/b", "e" * 64)])
    assert names == ["a~dddddddddddd", "a/b"]


@pytest.mark.parametrize(
    "key",
    ["manifest.json/report.csv", "/manifest.json/a/b", "manifest.json//x", "manifest.json/manifest.json"],
)
def test_no_member_lives_under_the_manifest_name(key: str) -> None:
    names = assign_member_names([(key, "f" * 64), ("other.csv", "0" * 64)])
    assert not any(name.startswith(MANIFEST_MEMBER + "/") for name in names)
    assert names[0].startswith("manifest%2Ejson/")
    assert not is_safe_name(key)
