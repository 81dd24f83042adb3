"""Atomic writes: complete files or nothing, with the usual permissions."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from gtasr.errors import OutputError
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


def test_a_name_that_fits_the_file_system_fits_with_its_temporary_name(tmp_path):
    target = tmp_path / f"{'x' * 250}.png"  # 254 characters: the final name fits
    atomic_write_bytes(target, b"abc")
    assert target.read_bytes() == b"abc"


def test_unwritable_outputs_are_named(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(
        OutputError, match=r"afile/out\.bin: cannot write \(.*afile is not a folder\)"
    ):
        atomic_write_bytes(tmp_path / "afile" / "out.bin", b"abc")


def test_temporaries_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "out"
    folder.mkdir()
    leftover = folder / f".photo.{dead.pid}.abcd1234.tmp.png"
    ours = folder / f".other.{os.getpid()}.abcd1234.tmp.png"  # a live writer's
    unrelated = folder / ".photo.png"
    for path in (leftover, ours, unrelated):
        path.write_bytes(b"half")
    atomic_write_bytes(folder / "new.png", b"png")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [ours.name, unrelated.name, "new.png"]
    )


def _file_size_limit(limit: int):
    """A child whose files may not grow past ``limit`` bytes: writes then fail with EFBIG,
    a real operating-system write error (Python ignores the SIGXFSZ that comes with it)."""
    import resource

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_write_error_inside_safetensors_is_one_line_and_exit_2(tmp_path) -> None:
    from gtasr.infer.upscaler import bundled_model_path

    target = tmp_path / "m.safetensors"
    proc = subprocess.run(
        [sys.executable, "-m", "gtasr", "convert", str(bundled_model_path()), "-o", str(target)],
        capture_output=True,
        text=True,
        preexec_fn=_file_size_limit(100_000),
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "m.safetensors: cannot write (File too large)" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_a_library_error_that_is_not_about_writing_is_not_disguised(tmp_path) -> None:
    with pytest.raises(ValueError, match="a bug"), atomic_path(tmp_path / "x.bin"):
        raise ValueError("a bug")
    assert list(tmp_path.iterdir()) == []
