"""Read one entry of an Eet file, the container format of Enlightenment's ``.edj`` themes.

Enlightenment ships its wallpapers as Edje files (``.edj``), which are Eet files:
a key -> data store. Each wallpaper photo is a JPEG stored as the entry
``edje/images/0``. Only what extracting such an entry needs is implemented:

- the file starts with a header of three big-endian 32-bit integers:
  the magic number ``0x1EE70F42``, the number of directory entries and the
  number of dictionary entries;
- the directory follows: six big-endian 32-bit integers per entry, namely the
  data offset, the stored size, the uncompressed size, the name offset, the
  name size (with its terminating NUL) and a flag word (bit 0: compressed,
  bit 1: encrypted, bit 2: an alias of another key). Offsets count from the
  start of the file;
- the dictionary (five integers a string, used by serialised data
  structures), the names and the data follow; a file may end with a signature.

Compressed, encrypted and alias entries are refused rather than decoded: the
photos this is for are stored plainly. The layout is the one Enlightenment's
``eet_lib.c`` (``eet_flush2`` / ``eet_internal_read2``) writes and reads.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from gtasr.errors import GtasrError

MAGIC = 0x1EE70F42
HEADER = struct.Struct(">3I")
ENTRY = struct.Struct(">6I")
COMPRESSED, ENCRYPTED, ALIAS = 0x1, 0x2, 0x4


def read_entry(path: str | os.PathLike[str], key: str) -> bytes:
    """The stored bytes of entry ``key`` in the Eet file ``path``.

    Raises :class:`GtasrError` naming the file when it is not an Eet file, is
    truncated or inconsistent, lacks ``key``, or stores it compressed,
    encrypted or as an alias.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as error:
        raise GtasrError(f"{file}: cannot read ({error.strerror or error})") from error
    if len(data) < HEADER.size:
        raise GtasrError(f"{file}: too short for an Eet file")
    magic, entries, dictionary = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise GtasrError(f"{file}: not an Eet file (magic {magic:#010x})")
    names_start = HEADER.size + ENTRY.size * entries + 20 * dictionary
    if names_start > len(data):
        raise GtasrError(f"{file}: damaged Eet file (directory runs past the end)")
    for index in range(entries):
        offset, size, _, name_offset, name_size, flags = ENTRY.unpack_from(
            data, HEADER.size + ENTRY.size * index
        )
        name_end = name_offset + name_size
        if name_size == 0 or name_offset < names_start or name_end > len(data):
            raise GtasrError(f"{file}: damaged Eet file (entry {index} has a bad name)")
        if data[name_offset:name_end] != key.encode() + b"\0":
            continue
        if flags & (COMPRESSED | ENCRYPTED | ALIAS):
            kind = (
                "compressed"
                if flags & COMPRESSED
                else "encrypted"
                if flags & ENCRYPTED
                else "an alias"
            )
            raise GtasrError(f"{file}: Eet entry {key} is {kind}, which is not supported")
        if offset < names_start or offset + size > len(data):
            raise GtasrError(f"{file}: damaged Eet file (entry {key} runs past the end)")
        return data[offset : offset + size]
    raise GtasrError(f"{file}: no Eet entry {key}")
