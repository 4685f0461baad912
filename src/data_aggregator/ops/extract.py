"""Extract verified members into one directory, so that nothing can land outside it.

Defence in depth, because a bundle is input from another system: the scanner already refuses unsafe
names and anything but regular files; here every member additionally passes the stdlib ``data``
extraction filter, its resolved path must stay under the root, parent directories are created one by
one and must be real directories, and files are opened with ``O_EXCL | O_NOFOLLOW`` so that neither a
duplicate nor a pre-planted symlink is ever written through.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from data_aggregator.ops.bundles import MemberRefusedError, unsafe_member_reason

FILE_MODE = 0o644
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class _DurableFile:
    """A file written through a descriptor, optionally fsynced before it is closed."""

    def __init__(self, fd: int, *, durable: bool) -> None:
        self._handle = os.fdopen(fd, "wb")
        self._durable = durable

    def write(self, data: bytes, /) -> int:
        return self._handle.write(data)

    def close(self) -> None:
        try:
            if self._durable:
                self._handle.flush()
                os.fsync(self._handle.fileno())
        finally:
            self._handle.close()


class SafeExtractor:
    """A :data:`~data_aggregator.ops.bundles.MemberOpener` that writes members under ``root``.

    ``durable`` fsyncs each file, so that deleting the bundle from Distribution afterwards cannot lose
    data to a power cut; tests and the demo may turn it off. A file's data is not enough: the entries
    naming it live in its directories, so :meth:`sync_directories` fsyncs those as well.
    """

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve(strict=True)
        self.durable = durable
        self.written: dict[str, Path] = {}
        self.created: list[Path] = []

    def __call__(self, info: tarfile.TarInfo) -> _DurableFile:
        reason = unsafe_member_reason(info.name)
        if reason is not None:
            raise MemberRefusedError(reason)
        if not info.isreg():
            raise MemberRefusedError("not a regular file")
        try:
            filtered = tarfile.data_filter(info, str(self.root))
        except tarfile.FilterError as exc:
            raise MemberRefusedError(f"extraction filter: {exc}") from None
        target = self.root.joinpath(*filtered.name.split("/"))
        if os.path.commonpath([self.root, os.path.abspath(target)]) != str(self.root):
            raise MemberRefusedError("resolves outside the target directory")
        self._make_parents(target)
        if os.path.commonpath([self.root, os.path.realpath(target.parent)]) != str(self.root):
            raise MemberRefusedError("parent directory resolves outside the target directory")
        try:
            fd = os.open(target, _OPEN_FLAGS, FILE_MODE)
        except FileExistsError:
            raise MemberRefusedError("a file or directory of that name was already extracted") from None
        except IsADirectoryError:
            raise MemberRefusedError("a directory of that name was already extracted") from None
        self.written[info.name] = target
        return _DurableFile(fd, durable=self.durable)

    def _make_parents(self, target: Path) -> None:
        current = self.root
        for part in target.relative_to(self.root).parts[:-1]:
            current = current / part
            if current.is_symlink():
                raise MemberRefusedError(f"{current.relative_to(self.root)} is a symbolic link")
            if current.exists():
                if not current.is_dir():
                    raise MemberRefusedError(f"{current.relative_to(self.root)} is already a file")
                continue
            current.mkdir()
            self.created.append(current)

    def sync_directories(self) -> None:
        """Fsync every directory created here, deepest first, then the root.

        Bottom-up, so that once a directory's entry is durable, what it names is durable too; the
        caller does this before renaming the root into place and deleting the bundle.
        """
        for directory in sorted(self.created, key=lambda path: len(path.parts), reverse=True):
            _fsync_directory(directory)
        _fsync_directory(self.root)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
