"""Atomic writes: complete files or nothing, with the usual permissions."""

from __future__ import annotations

import os
import stat

import pytest

from gtasr.fileio import atomic_path, atomic_write_bytes


def test_atomic_write_creates_file_with_umask_mode(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    old = os.umask(0o022)
    try:
        atomic_write_bytes(target, b"abc")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"abc"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_mode_is_set_even_when_the_writer_recreates_the_file(tmp_path):
    """Some writers (safetensors) replace the temporary file with a private one."""
    target = tmp_path / "model.safetensors"
    old = os.umask(0o022)
    try:
        with atomic_path(target) as tmp:
            tmp.unlink()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, b"x")
            os.close(fd)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_failed_write_leaves_nothing_and_keeps_old_file(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.suffix == ".png"
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
