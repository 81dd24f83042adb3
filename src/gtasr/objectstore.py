"""Files named by URIs (``s3://``, ``gs://``, ``file://``) on the filesystems of ``pyarrow.fs``.

``gtasr upscale --ray`` reads its INPUTs from, and writes its ``-o`` folder to, any
filesystem that :meth:`pyarrow.fs.FileSystem.from_uri` opens, so that a cluster reads its
photos from object storage. A URI is listed as a local INPUT is (:mod:`gtasr.listing`): a
prefix is a folder (``--recursive`` descends into it), a single object is one file, and a
file's name relative to the URI's root seeds its noise. An object is only ever written
whole: object stores show an upload at its name only once it is complete, and
:func:`write_object` starts the upload only when all its bytes are at hand.

The URIs that logs, errors and manifests show carry no query: a URI's options may hold
credentials (``?access_key=...&secret_key=...``). pyarrow is imported only inside the
functions, so the command line stays light.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from gtasr.errors import FileError, GtasrError, InputError, OutputError, one_line
from gtasr.listing import is_image_name, relative_name

if TYPE_CHECKING:
    import pyarrow.fs

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
"""A scheme of two letters or more (``C:/`` is a Windows drive, not a URI) and ``://``."""
_SCHEMES = {"local": "file", "gcs": "gs"}
"""pyarrow's names of filesystem types whose URI scheme differs from the name."""


def is_uri(text: object) -> bool:
    """Whether ``text`` is a URI such as ``s3://bucket/prefix`` rather than a local path."""
    return isinstance(text, str) and _URI.match(text) is not None


def shown(uri: str) -> str:
    """``uri`` without its query (whose options may hold credentials), for messages."""
    return uri.split("?", 1)[0]


def uri_of(filesystem: pyarrow.fs.FileSystem, path: str) -> str:
    """The URI that names ``path`` of ``filesystem`` in records and messages (no query)."""
    scheme = _SCHEMES.get(filesystem.type_name, filesystem.type_name)
    return f"{scheme}://{path}"


def is_local(filesystem: pyarrow.fs.FileSystem | None) -> bool:
    """Whether ``filesystem`` is this machine's (``file://``): its paths are local paths."""
    return filesystem is None or filesystem.type_name == "local"


def open_uri(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The filesystem of ``uri`` and the path it names there; one line when pyarrow cannot
    open it (an unknown scheme, a malformed URI, options it does not take, no network)."""
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid is a ValueError
        problem = f"cannot open its filesystem ({one_line(str(error))})"
        raise GtasrError(f"{shown(uri)}: {problem}") from error


def list_images(
    filesystem: pyarrow.fs.FileSystem,
    root: str,
    recursive: bool = False,
    *,
    skip_under: str | None = None,
) -> list[tuple[str, str]]:
    """The image files that ``root`` (a path of ``filesystem``) names: per file, its path
    and its name relative to ``root``'s folder, sorted by path.

    A prefix (a folder) yields its files ending in :data:`~gtasr.listing.IMAGE_SUFFIXES`
    (not hidden), those of its sub-prefixes too with ``recursive``, except those under
    ``skip_under`` (the output folder, when it is strictly inside ``root``); a single
    object is one file, taken whatever its name. A path that names nothing, or storage
    that cannot be read (a missing bucket, no permission), raises
    :class:`~gtasr.errors.InputError` naming the URI.
    """
    import pyarrow.fs

    uri = uri_of(filesystem, root)
    kind = _info(filesystem, root).type
    if kind == pyarrow.fs.FileType.File:
        return [(root, PurePosixPath(root).name)]
    if kind != pyarrow.fs.FileType.Directory:
        raise InputError(uri, _not_found(filesystem, root))
    try:
        found = filesystem.get_file_info(pyarrow.fs.FileSelector(root, recursive=recursive))
    except OSError as error:
        raise InputError(uri, f"cannot list ({one_line(str(error))})") from error
    skip = None if skip_under in (None, root) else PurePosixPath(skip_under)
    files = []
    for info in found:
        path = PurePosixPath(info.path)
        if info.type != pyarrow.fs.FileType.File or not is_image_name(path):
            continue
        if skip is not None and skip in path.parents:
            continue
        files.append((info.path, relative_name(path, PurePosixPath(root))))
    return sorted(files)


def _not_found(filesystem: pyarrow.fs.FileSystem, path: str) -> str:
    """Why ``path`` names nothing: a bucket that does not exist, else no such object."""
    bucket = _missing_bucket(filesystem, path)
    return "no such object or prefix" if bucket is None else f"no such bucket {bucket!r}"


def _missing_bucket(filesystem: pyarrow.fs.FileSystem, path: str) -> str | None:
    """The bucket of ``path`` (its first part, in object storage) when it does not exist."""
    import pyarrow.fs

    bucket = path.split("/", 1)[0]
    in_a_bucket = not is_local(filesystem) and bucket != path
    if in_a_bucket and _info(filesystem, bucket).type == pyarrow.fs.FileType.NotFound:
        return bucket
    return None


@contextlib.contextmanager
def _reported(
    kind: type[FileError], filesystem: pyarrow.fs.FileSystem, path: str, what: str
) -> Iterator[None]:
    """pyarrow's ``OSError`` about ``path`` as a ``kind`` naming its URI: ``cannot <what> ...``."""
    try:
        yield
    except OSError as error:
        problem = f"cannot {what} ({one_line(str(error))})"
        raise kind(uri_of(filesystem, path), problem) from error


def _info(filesystem: pyarrow.fs.FileSystem, path: str) -> pyarrow.fs.FileInfo:
    with _reported(InputError, filesystem, path, "read"):
        return filesystem.get_file_info(path)


def names_in(filesystem: pyarrow.fs.FileSystem, folder: str) -> set[str]:
    """The names of the files directly in the output folder ``folder`` (none when it does
    not exist yet): one listing, instead of a request per output, tells which outputs
    exist. A folder in a bucket that does not exist stops the run before any work."""
    import pyarrow.fs

    with _reported(OutputError, filesystem, folder, "list the output folder"):
        found = filesystem.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    bucket = None if found else _missing_bucket(filesystem, folder)
    if bucket is not None:
        raise OutputError(uri_of(filesystem, folder), f"no such bucket {bucket!r}")
    return {PurePosixPath(info.path).name for info in found}


def exists(filesystem: pyarrow.fs.FileSystem, path: str) -> bool:
    """Whether ``path`` names a file or folder of ``filesystem``."""
    import pyarrow.fs

    with _reported(OutputError, filesystem, path, "check"):
        return filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def read_object(filesystem: pyarrow.fs.FileSystem, path: str) -> bytes:
    """The bytes of ``path``; :class:`~gtasr.errors.InputError` naming it when unreadable."""
    with (
        _reported(InputError, filesystem, path, "read"),
        filesystem.open_input_stream(path) as stream,
    ):
        return stream.read()


def write_object(filesystem: pyarrow.fs.FileSystem, path: str, data: bytes) -> None:
    """Store ``data`` at ``path`` of an object store in one upload, begun only now that all
    of it is at hand: the store shows an upload at its name only once it is complete, so
    no partial object ever has the final name. (A local filesystem is written to by
    gtasr's own rule instead: :func:`gtasr.fileio.atomic_path`.)
    """
    with (
        _reported(OutputError, filesystem, path, "write"),
        filesystem.open_output_stream(path) as stream,
    ):
        stream.write(data)
