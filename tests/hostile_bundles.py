"""A deterministic generator of hostile and broken ``.tar.gz`` bundles for the consumer's tests.

Each case is built from a seed, so a failure names the seed that reproduces it. The kinds follow what
someone with write access to Distribution (or a bad disk) could hand the consumer: fuzzed PAX
headers, numeric fields that lie, links, devices, duplicates, traversal names, bombs, random damage
to header blocks and to the compressed stream, and the inputs that cost work rather than bytes: very
deep paths, very large extended headers and very many members.
"""

from __future__ import annotations

import gzip
import io
import random
import tarfile
from collections.abc import Callable

from data_aggregator.models import MANIFEST_MEMBER
from tests.bundle_factory import SourceFile, build_bundle, manifest_for

BLOCK = 512
_PAX_KEYS = (
    "size",
    "path",
    "linkpath",
    "uid",
    "gid",
    "mtime",
    "uname",
    "hdrcharset",
    "GNU.sparse.map",
    "GNU.sparse.size",
    "GNU.sparse.offset",
    "GNU.sparse.numbytes",
    "GNU.sparse.major",
    "GNU.sparse.minor",
    "GNU.sparse.name",
    "GNU.sparse.realsize",
    "GNU.sparse.numblocks",
)
_PAX_VALUES = (
    "abc",
    "-1",
    "",
    "1e9",
    str(10**20),
    str(2**63),
    "0,1,2",
    "1,abc",
    "../../etc/passwd",
    "/abs",
    "BINARY",
    "\x00",
    "9" * 40,
    "3",
    "0",
    "1.0",
    "manifest.json",
)
_NAMES = ("../up", "/abs", "a/../../b", "ok.txt", "dup.txt", MANIFEST_MEMBER, "a", "a/b", "c\x01d", "x" * 300)


def _gz(raw: bytes) -> bytes:
    return gzip.compress(raw, compresslevel=1, mtime=0)


def _tar(build: Callable[[tarfile.TarFile], None], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        build(tar)
    return raw.getvalue()


def _file(name: str, body: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(body)
    return info, io.BytesIO(body)


def _pax_fuzz(rng: random.Random) -> bytes:
    def build(tar: tarfile.TarFile) -> None:
        for _ in range(rng.randint(1, 3)):
            body = rng.randbytes(rng.randint(0, 64))
            info, data = _file(rng.choice(_NAMES), body)
            info.pax_headers = {rng.choice(_PAX_KEYS): rng.choice(_PAX_VALUES) for _ in range(rng.randint(1, 4))}
            tar.addfile(info, data)

    return _gz(_tar(build))


def _special_members(rng: random.Random) -> bytes:
    kinds = (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.DIRTYPE)

    def build(tar: tarfile.TarFile) -> None:
        for _ in range(rng.randint(1, 4)):
            info = tarfile.TarInfo(rng.choice(_NAMES))
            info.type = rng.choice(kinds)
            info.linkname = rng.choice(("/etc/passwd", "../../x", "ok.txt"))
            if rng.random() < 0.5:  # a refused member that claims an absurd amount of data
                info.pax_headers = {"size": rng.choice((str(10**20), str(2**40), "999999999"))}
            tar.addfile(info)
        info, data = _file("ok.txt", b"fine")
        tar.addfile(info, data)

    return _gz(_tar(build))


def _duplicates(rng: random.Random) -> bytes:
    files = [SourceFile("dup.txt", b"one"), SourceFile("dup.txt", b"two")]
    rng.shuffle(files)
    return build_bundle(files, manifest=manifest_for(files[:1], "b-dup"))


def _size_lie(rng: random.Random) -> bytes:
    """A header whose size does not match the data behind it, with the stream cut or padded."""
    body = rng.randbytes(rng.randint(1, 2000))
    raw = bytearray(_tar(lambda tar: tar.addfile(*_file("lie.bin", body)), fmt=tarfile.GNU_FORMAT))
    declared = rng.choice((0, len(body) * 7, 2**33 - 1, 10**11))
    if declared >= 8**11:  # base-256 encoding, as GNU tar writes big sizes
        field = bytes([0x80]) + declared.to_bytes(11, "big")
    else:
        field = f"{declared:011o}".encode() + b"\x00"
    raw[124:136] = field
    raw[148:156] = b"        "
    raw[148:155] = f"{sum(raw[:BLOCK]):06o}\x00".encode()
    cut = rng.randint(BLOCK, len(raw))
    return _gz(bytes(raw[:cut]))


def _header_damage(rng: random.Random) -> bytes:
    files = [SourceFile(f"f{i}.txt", rng.randbytes(rng.randint(0, 300))) for i in range(rng.randint(1, 3))]
    raw = bytearray(gzip.decompress(build_bundle(files)))
    headers = [offset for offset in range(0, len(raw), BLOCK) if raw[offset + 257 : offset + 262] == b"ustar"]
    for _ in range(rng.randint(1, 8)):
        offset = rng.choice(headers) + rng.randrange(BLOCK)
        raw[offset] = rng.randrange(256)
    if rng.random() < 0.5:  # keep the checksum valid so that the damage reaches the field parsers
        start = rng.choice(headers)
        raw[start + 148 : start + 156] = b"        "
        raw[start + 148 : start + 155] = f"{sum(raw[start : start + BLOCK]):06o}\x00".encode()
    return _gz(bytes(raw))


def _stream_damage(rng: random.Random) -> bytes:
    data = bytearray(build_bundle([SourceFile("a.txt", rng.randbytes(500))]))
    if rng.random() < 0.5:
        return bytes(data[: rng.randrange(len(data))])
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def _bomb(rng: random.Random) -> bytes:
    size = rng.choice((2, 4, 8)) * 1024 * 1024
    return build_bundle([SourceFile("zeros.bin", bytes(size))])


def _deep_path(rng: random.Random) -> bytes:
    """Names of thousands of one-letter segments: any per-prefix bookkeeping is quadratic in them."""
    if rng.random() < 0.5:  # one name past the length or segment bound
        depth = rng.choice((1100, 1500, 2100, 3000, 5000))
        return _gz(_tar(lambda tar: tar.addfile(tarfile.TarInfo("a/" * depth + "f"))))

    def build(tar: tarfile.TarFile) -> None:  # many names just inside the bounds, each its own tree
        for index in range(rng.randint(5, 12)):
            tar.addfile(tarfile.TarInfo(f"{index}/" + "a/" * 1000 + "f"))

    return _gz(_tar(build))


def _large_extended_header(rng: random.Random) -> bytes:
    """Extended headers that tarfile reads and parses whole, before the scanner sees a member."""
    size = rng.choice((180_000, 250_000))  # past the 64 KiB bound, within the test's 256 KiB allowance
    info = tarfile.TarInfo("big")
    fmt = tarfile.PAX_FORMAT
    match rng.randrange(5):
        case 0:  # a sparse map parses into one int per number
            info.pax_headers = {"GNU.sparse.map": ("1," * (size // 2))[:-1]}
        case 1:
            info.pax_headers = {"path": "p" * size, "comment": "c" * rng.randrange(size)}
        case 2:  # GNU long name, then long link
            info.name = "n" * size
            fmt = tarfile.GNU_FORMAT
        case 3:
            info.type = tarfile.SYMTYPE
            info.linkname = "l" * size
            fmt = tarfile.GNU_FORMAT
        case _:  # small sparse keys that need no map
            info.pax_headers = {rng.choice(("GNU.sparse.name", "GNU.sparse.size", "GNU.sparse.realsize")): "1"}
    return _gz(_tar(lambda tar: tar.addfile(info), fmt=fmt))


def _many_members(rng: random.Random) -> bytes:
    """Thousands of empty members, each a header of 512 bytes and nothing else.

    The names are random (so the stream does not compress past the test's expansion ratio) and set
    straight into one template header with its checksum, which is much faster than tarfile per member.
    """
    template = bytearray(tarfile.TarInfo("").tobuf(tarfile.USTAR_FORMAT))
    template[148:156] = b"        "
    base_sum = sum(template)
    headers = []
    for _ in range(rng.choice((8_000, 12_000))):
        name = rng.randbytes(12).hex().encode()
        header = bytearray(template)
        header[: len(name)] = name
        header[148:155] = f"{base_sum + sum(name):06o}\x00".encode()
        headers.append(bytes(header))
    return _gz(b"".join(headers) + bytes(2 * BLOCK))


KINDS: tuple[Callable[[random.Random], bytes], ...] = (
    _pax_fuzz,
    _pax_fuzz,
    _special_members,
    _duplicates,
    _size_lie,
    _header_damage,
    _header_damage,
    _stream_damage,
)


EXPENSIVE: tuple[Callable[[random.Random], bytes], ...] = (_bomb, _deep_path, _large_extended_header, _many_members)
"""Kinds that are slow to build (and to read, for a scanner without bounds): one seed in 50 each."""


def hostile_bundle(seed: int) -> bytes:
    """One hostile bundle; one seed in 50 is one of the expensive kinds, in turn, the rest cheap ones."""
    rng = random.Random(seed)
    if seed % 50 == 0:
        return EXPENSIVE[seed // 50 % len(EXPENSIVE)](rng)
    return KINDS[seed % len(KINDS)](rng)
