"""Download Debian packages of any suite with a private APT setup, leaving the system's alone.

The training photos come from packages of several Debian releases, which ``apt-get
download`` sees only through sources of its own: an APT configuration written into a
temporary folder (``APT_CONFIG``), so which file is fetched does not depend on the
machine's sources and nothing outside the folder is written (docs/data-and-licences.md).

``Release`` files are not refused for having passed their ``Valid-Until`` date:
mirrors that serve a snapshot of the archive (as some build farms do) would
otherwise be unusable for sid and testing, and the photos are pinned by SHA-256
anyway, so a stale index can only make a check fail, never pass a changed file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from gtasr.errors import GtasrError
from gtasr.external import run_program

ARCHIVE = "http://deb.debian.org/debian"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
DEBIAN = "a Debian-based system is needed"


def write_apt_config(
    root: Path, suites: Sequence[str], archive: str = ARCHIVE, keyring: Path = KEYRING
) -> Path:
    """Write a private APT setup for ``suites`` under ``root``; return its ``apt.conf``.

    Everything apt reads or writes with it (sources, lists, cache, state,
    preferences) lies under ``root``.
    """
    for folder in ("lists/partial", "cache/archives/partial", "empty"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "status").touch()
    sources = root / "sources.list"
    sources.write_text(
        "".join(f"deb [signed-by={keyring}] {archive} {suite} main\n" for suite in suites)
    )
    empty = root / "empty"
    settings = {
        "Dir::Etc::Main": empty / "apt.conf",
        "Dir::Etc::Parts": empty,
        "Dir::Etc::SourceList": sources,
        "Dir::Etc::SourceParts": empty,
        "Dir::Etc::Preferences": empty / "preferences",
        "Dir::Etc::PreferencesParts": empty,
        "Dir::State": root,
        "Dir::State::Lists": root / "lists",
        "Dir::State::Status": root / "status",
        "Dir::Cache": root / "cache",
        "Acquire::Languages": "none",
        "Acquire::Check-Valid-Until": "false",
        "APT::Update::Error-Mode": "any",
    }
    config = root / "apt.conf"
    config.write_text("".join(f'{key} "{value}";\n' for key, value in settings.items()))
    # apt fetches as its own unprivileged user when run as root: let it read here.
    for path in (root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return config


def apt_download(
    packages: Mapping[str, str],
    folder: Path,
    apt_root: Path,
    archive: str = ARCHIVE,
    keyring: Path = KEYRING,
) -> None:
    """Put the .deb of each package (name -> suite) in ``folder``, through a private APT
    setup under ``apt_root`` (see the module docstring). Nothing is installed.

    Raises :class:`GtasrError` naming the packages when apt is missing, the archive
    cannot be reached or a package is not in its suite.
    """
    if not keyring.is_file():
        raise GtasrError(
            f"{keyring} not found: the Debian archive keyring is needed to check the "
            f"packages {', '.join(packages)} (package debian-archive-keyring)"
        )
    suites = sorted(set(packages.values()))
    config = write_apt_config(apt_root, suites, archive, keyring)
    env = {**os.environ, "APT_CONFIG": str(config)}
    run_program(
        ["apt-get", "update"],
        env=env,
        name=f"apt-get update ({', '.join(suites)} from {archive}, for {', '.join(packages)})",
        needs=DEBIAN,
        error_prefix="E: ",
    )
    for package, suite in packages.items():
        run_program(
            ["apt-get", "download", f"{package}/{suite}"],
            cwd=folder,
            env=env,
            name=f"apt-get download {package}/{suite}",
            needs=DEBIAN,
            error_prefix="E: ",
        )


def unpack_debs(debs: Path, root: Path) -> None:
    """Extract every ``PACKAGE_*.deb`` in ``debs`` to ``root/PACKAGE`` with ``dpkg-deb -x``."""
    for deb in sorted(debs.glob("*.deb")):
        package = deb.name.split("_", 1)[0]
        target = root / package
        target.mkdir(parents=True, exist_ok=True)
        run_program(["dpkg-deb", "-x", str(deb), str(target)], cwd=debs, needs=DEBIAN)
