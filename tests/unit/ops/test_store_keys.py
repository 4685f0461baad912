"""Store keys of forwarded files: one per source key, the key itself wherever the store can take it."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from data_aggregator.ops.consume import MAX_STORE_KEY_BYTES, store_key

KEYS = [
    "a/b",
    "a//b",
    "/a/b",
    "a/b/",
    "manifest.json/x",
    "manifest%2Ejson/x",
    "%/a",
    "%25/a",
    "%",
    "%%long/x",
    "tab\tkey",
    "tab%09key",
    "%/tab%09key",
    "ü+ %.txt",
    "x" * 1024,
    "x" * 1023 + "y",
]


def test_distinct_source_keys_get_distinct_store_keys() -> None:
    for prefix in ("", "in/", "%/"):
        mapped = [store_key(prefix, key) for key in KEYS]
        assert len(set(mapped)) == len(KEYS), prefix
        assert all(len(key.encode("utf-8")) <= MAX_STORE_KEY_BYTES for key in mapped)


@pytest.mark.parametrize("key", ["a/b", "a//b", "/a/b", "a/b/", "manifest.json/x", "ü+ %.txt", "50%"])
def test_keys_the_store_takes_are_forwarded_as_they_are(key: str) -> None:
    assert store_key("in/", key) == "in/" + key


@pytest.mark.parametrize("key", ["%/a", "%25", "tab\tkey", "%\x7f"])
def test_other_keys_are_escaped_reversibly(key: str) -> None:
    mapped = store_key("in/", key)
    assert mapped.startswith("in/%/")
    assert unquote(mapped.removeprefix("in/%/")) == key


def test_a_key_too_long_for_the_store_goes_under_its_digest() -> None:
    mapped = store_key("in/", "x" * 1024)
    assert mapped.startswith("in/%%long/")
    assert len(mapped) == len("in/%%long/") + 64
