"""Which image files an input names: files, folders and glob patterns, walked safely.

Folders are walked with one visit per real folder, so symbolic links back up the tree
(``loop -> .``) end instead of recursing forever; a folder that cannot be read is
reported (never skipped silently); a file reached under two names (a link beside its
target) is listed once with a note. ``skip_under`` keeps an output folder that lies
inside an input folder out of the listing, so a rerun never reads its own outputs.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from gtasr.errors import InputError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
"""File name endings that folder and glob inputs pick up."""

Problem = Callable[[InputError], None]
_MAGIC = "*?["


def _raise(error: InputError) -> None:
    raise error


def list_images(
    inputs: Iterable[str | os.PathLike[str]],
    recursive: bool = False,
    *,
    skip_under: str | os.PathLike[str] | None = None,
    on_problem: Problem = _raise,
) -> list[Path]:
    """Expand files, folders and glob patterns into image paths (ordered, no duplicates).

    A file named explicitly is taken whatever its extension (reading decides);
    folders and globs yield files ending in :data:`IMAGE_SUFFIXES`, skipping
    hidden files. ``recursive`` descends into sub-folders (and makes ``**``
    match them in globs). A path that does not exist, or a pattern that matches
    nothing, raises :class:`InputError`; a sub-folder that cannot be read goes to
    ``on_problem`` (which raises by default) and the rest is still listed.
    Files of a folder or pattern that lie inside ``skip_under`` (the output folder) are
    left out when ``skip_under`` is strictly inside the folder or pattern root.
    """
    found: dict[Path, Path] = {}  # resolved path -> the spelling first met
    skip = Path(skip_under).resolve() if skip_under is not None else None

    def add(paths: Iterable[Path], root: Path | None) -> None:
        skip_here = skip if root is not None and _strictly_inside(skip, root) else None
        for one in paths:
            real = one.resolve()
            if _inside(real, skip_here):
                continue
            first = found.setdefault(real, one)
            if os.path.abspath(first) != os.path.abspath(one):
                log.warning("%s: the same file as %s, which is read once", one, first)

    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_file():
            add([path], None)
        elif path.is_dir():
            add(_images_in_folder(path, recursive, on_problem), path)
        elif any(char in text for char in _MAGIC):
            root = _pattern_root(text)
            matches = _glob(text, recursive, on_problem)
            if not matches:
                raise InputError(text, "no files match this pattern")
            for match in matches:
                if match.is_dir():
                    add(_images_in_folder(match, recursive, on_problem), root)
                elif is_image_name(match):
                    add([match], root)
        else:
            raise InputError(text, "no such file or folder")
    return list(found.values())


def input_root(item: str | os.PathLike[str]) -> Path:
    """The folder an INPUT's files are named from: a file's folder, the folder itself, or a
    pattern's part before its first wildcard."""
    text = os.fspath(item)
    path = Path(text)
    if path.is_dir():
        return path
    if not path.exists() and any(char in text for char in _MAGIC):
        return _pattern_root(text)
    return path.parent


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators; its file name if not below it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def is_image_name(path: Path) -> bool:
    """A visible file whose name ends in one of :data:`IMAGE_SUFFIXES`."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def _strictly_inside(folder: Path | None, root: Path) -> bool:
    real_root = root.resolve()
    return folder is not None and folder != real_root and real_root in folder.parents


def _images_in_folder(folder: Path, recursive: bool, on_problem: Problem) -> list[Path]:
    if not recursive:
        entries = _read_folder(folder, on_problem)
        return sorted(p for p, is_dir in entries if not is_dir and is_image_name(p))
    walked = walk(folder, on_problem)
    return sorted(p for p, is_dir in walked if not is_dir and is_image_name(p))


def _read_folder(folder: Path, on_problem: Problem) -> list[tuple[Path, bool]]:
    """``(path, is_folder)`` of each entry that is a file or a folder (links followed)."""
    try:
        with os.scandir(folder) as handle:
            entries = list(handle)
    except OSError as error:
        on_problem(InputError(folder, f"cannot read this folder ({error.strerror or error})"))
        return []
    listed = []
    for entry in sorted(entries, key=lambda e: e.name):
        try:
            is_dir, is_file = entry.is_dir(), entry.is_file()
        except OSError:
            continue
        if is_dir or is_file:
            listed.append((folder / entry.name, is_dir))
    return listed


def walk(root: Path, on_problem: Problem, skip_hidden: bool = False) -> Iterator[tuple[Path, bool]]:
    """Every file and folder below ``root`` as ``(path, is_folder)``, each real folder once.

    Links to folders are followed, but a folder already visited (a link back up the tree,
    two links to one place) is entered only once, so the walk always ends.
    """
    seen = {_identity(root)}
    stack = [root]
    while stack:
        folder = stack.pop()
        for path, is_dir in _read_folder(folder, on_problem):
            if skip_hidden and path.name.startswith("."):
                continue
            if is_dir:
                identity = _identity(path)
                if identity in seen:
                    log.info("%s: a folder already listed (a link back up the tree)", path)
                    continue
                seen.add(identity)
                stack.append(path)
            yield path, is_dir


def _identity(folder: Path) -> tuple[int, int]:
    try:
        stat = folder.stat()
    except OSError:
        return (-1, id(folder))
    return (stat.st_dev, stat.st_ino)


def _pattern_root(pattern: str) -> Path:
    """The folder a glob pattern starts from: its parts before the first wildcard."""
    parts = Path(pattern).parts
    plain = parts[: _first_magic(parts)]
    return Path(*plain) if plain else Path()


def _first_magic(parts: tuple[str, ...]) -> int:
    return next((i for i, part in enumerate(parts) if any(c in part for c in _MAGIC)), len(parts))


def _glob(pattern: str, recursive: bool, on_problem: Problem) -> list[Path]:
    """Paths matching ``pattern``; ``**`` with ``recursive`` is matched on a safe walk."""
    if not (recursive and "**" in pattern):
        return sorted(map(Path, glob.glob(pattern)))
    parts = Path(pattern).parts
    start = _first_magic(parts)
    root = Path(*parts[:start]) if start else Path()
    wanted = parts[start:]
    matches = []
    for path, _ in walk(root, on_problem, skip_hidden=True):
        if _match_parts(path.relative_to(root).parts, wanted):
            matches.append(path)
    return sorted(matches)


def _match_parts(names: tuple[str, ...], patterns: tuple[str, ...]) -> bool:
    """Whether path parts ``names`` match glob parts ``patterns`` (``**``: any depth)."""
    if not patterns:
        return not names
    head, rest = patterns[0], patterns[1:]
    if head == "**":
        return any(_match_parts(names[skip:], rest) for skip in range(len(names) + 1))
    return bool(names) and fnmatch.fnmatchcase(names[0], head) and _match_parts(names[1:], rest)
