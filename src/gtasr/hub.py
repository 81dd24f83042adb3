"""Models by name: the catalogue, ``hf://`` specs, and the one resolver of a model spec.

Everywhere gtasr takes a model (``--model`` of every command, ``Upscaler.from_pretrained``,
``gtasr.load_model``) it takes a *model spec*, resolved to a local file by
:func:`resolve_model`: a local path that exists, a catalogue name (:data:`CATALOGUE`,
``gtasr models``) or ``hf://OWNER/REPO/FILE[@REVISION]``. Hub files go through
``huggingface_hub`` into its standard cache, checked against the SHA-256 the hub states
(docs/authors-weights.md).

Nothing here imports PyTorch, and ``huggingface_hub`` only when a hub file is looked up.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gtasr.errors import GtasrError, first_line
from gtasr.fileio import atomic_path, file_sha256

log = logging.getLogger(__name__)

ModelSpec = str | os.PathLike
"""A model as its user names it: a path, a catalogue name or an ``hf://`` address."""

DEFAULT_MODEL_NAME: Final = "gtasr-default.safetensors"
SCHEME: Final = "hf://"
DEFAULT_REVISION: Final = "main"
NOT_STATED: Final = "not stated"
"""The licence of a model whose source names none."""

MODEL_SPEC_HELP: Final = (
    "a model file, a name from `gtasr models` (bundled, gtasr-paper, ctmsr) or "
    "hf://OWNER/REPO/FILE[@REVISION]; an existing file of that name wins over a name"
)
"""What ``--help`` says of every ``--model``."""


def bundled_model_path() -> Path:
    """The default model shipped in the package (``gtasr/weights/``)."""
    return Path(__file__).resolve().parent / "weights" / DEFAULT_MODEL_NAME


@dataclass(frozen=True)
class HubFile:
    """One file of a Hugging Face model repository at a revision."""

    repo: str
    filename: str
    revision: str = DEFAULT_REVISION

    @property
    def spec(self) -> str:
        """The ``hf://`` spec naming this file (the revision only when not ``main``)."""
        at = f"@{self.revision}" if self.revision != DEFAULT_REVISION else ""
        return f"{SCHEME}{self.repo}/{self.filename}{at}"

    def url(self) -> str:
        """Where the file is downloaded from (``HF_ENDPOINT`` taken into account)."""
        return _hub().hf_hub_url(self.repo, self.filename, revision=self.revision)

    def cached(self) -> Path | None:
        """The file in the local cache, or None; looks at the disk only."""
        found = _hub().try_to_load_from_cache(self.repo, self.filename, revision=self.revision)
        return Path(found) if isinstance(found, str) else None


@dataclass(frozen=True)
class CatalogueEntry:
    """A model ``--model`` accepts by name."""

    name: str
    parameters: int
    """Network parameters (tests/test_hub.py counts them from the network definitions)."""
    licence: str
    source: HubFile | None = None
    """Where the file is published; None for the bundled model."""

    def cached(self) -> Path | None:
        """The file in the local cache (the bundled one always is), else None."""
        return bundled_model_path() if self.source is None else self.source.cached()


PAPER_PARAMETERS: Final = 171_518_529
"""The release network (the ``paper`` preset), which both authors' models use."""

CATALOGUE: Final = {
    entry.name: entry
    for entry in (
        CatalogueEntry(
            name="bundled",
            parameters=8_174_993,
            licence="Apache-2.0 (gtasr's)",
        ),
        CatalogueEntry(
            name="gtasr-paper",
            parameters=PAPER_PARAMETERS,
            licence=NOT_STATED,
            source=HubFile("Blaze-UESTC/GTASR", "GTASR_final_phase.pth"),
        ),
        CatalogueEntry(
            name="ctmsr",
            parameters=PAPER_PARAMETERS,
            licence=NOT_STATED,
            source=HubFile("ywy123/CTMSR", "CTMSR.pth"),
        ),
    )
}
"""Every model ``--model`` accepts by name, in the order ``gtasr models`` lists them."""


def _hub() -> Any:
    """``huggingface_hub``, imported on first use (a dependency of gtasr)."""
    try:
        import huggingface_hub
    except ImportError as error:
        raise GtasrError(
            "models from the Hugging Face hub need huggingface_hub: pip install huggingface_hub"
        ) from error
    return huggingface_hub


_SPEC = re.compile(r"^(?P<repo>[^/@]+/[^/@]+)/(?P<file>[^@]+?)(?:@(?P<revision>.+))?$")


def parse_hub_spec(spec: str) -> HubFile:
    """``hf://OWNER/REPO/FILE[@REVISION]`` -> the file it names; a malformed spec is an error."""
    found = _SPEC.match(spec[len(SCHEME) :])
    if not spec.startswith(SCHEME) or found is None or not _plain_file(found["file"]):
        raise GtasrError(f"{spec}: expected hf://OWNER/REPO/FILE or hf://OWNER/REPO/FILE@REVISION")
    _hub()
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(found["repo"])
    except ValueError as error:
        raise GtasrError(f"{spec}: not a hub repository name ({first_line(error)})") from None
    return HubFile(found["repo"], found["file"], found["revision"] or DEFAULT_REVISION)


def _plain_file(path: str) -> bool:
    """Whether a file path inside a repository has no empty, ``.`` or ``..`` part."""
    return all(part not in ("", ".", "..") for part in path.split("/"))


def resolve_model(spec: ModelSpec | None) -> Path:
    """The local file (or folder) of a model spec, downloading a hub file not yet cached.

    None is the bundled model. A path that exists is taken as it is, so a file named like
    a catalogue entry is read rather than the entry; a path that does not exist and is no
    name is a one-line error.
    """
    if spec is None:
        return bundled_model_path()
    path = Path(spec)
    text = os.fspath(spec)
    if not text:
        raise GtasrError("the model is an empty name; give a file, a name or hf://...")
    if path.exists():
        return path
    if is_model_name(text):
        return fetch_model(text)
    hint = "" if os.sep in text or "/" in text else f" (nor a model name: {', '.join(CATALOGUE)})"
    raise GtasrError(f"{text}: model file not found{hint}")


def is_model_name(spec: str) -> bool:
    """Whether ``spec`` names a model rather than a path: a catalogue name or ``hf://``."""
    return spec in CATALOGUE or spec.startswith(SCHEME)


def fetch_model(name: str) -> Path:
    """The local file of a catalogue name or ``hf://`` spec (never a local path),
    downloaded into the cache when it is not there yet."""
    if not is_model_name(name):
        raise GtasrError(
            f"{name}: not a model name ({', '.join(CATALOGUE)}) nor hf://OWNER/REPO/FILE"
        )
    source = CATALOGUE[name].source if name in CATALOGUE else parse_hub_spec(name)
    return bundled_model_path() if source is None else fetch(source, name)


def fetch(source: HubFile, label: str) -> Path:
    """The cached file of ``source``, downloaded first when it is not in the cache.

    ``label`` is how the user named the model (the catalogue name or the ``hf://`` spec);
    every error names it, the URL, and ``gtasr fetch-model`` where fetching again may help.
    """
    cached = source.cached()
    if cached is not None:
        log.debug("%s: %s (cached)", label, cached)
        return cached
    hub = _hub()
    url = source.url()
    command = f"`gtasr fetch-model {label}`"
    if hub.constants.HF_HUB_OFFLINE:
        raise GtasrError(
            f"{label}: not in the local cache and HF_HUB_OFFLINE is set; "
            f"{command} downloads it from {url} when online"
        )
    log.info("%s: downloading %s", label, url)
    try:
        stated = hub.get_hf_file_metadata(url).etag
        downloaded = Path(
            hub.hf_hub_download(source.repo, source.filename, revision=source.revision)
        )
    except Exception as error:  # network, HTTP and hub errors differ between versions
        raise GtasrError(
            f"{label}: cannot download {url} ({first_line(error)}); "
            f"{command} downloads it once the hub can be reached"
        ) from None
    _check_sha256(downloaded, stated, label)
    return downloaded


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _check_sha256(file: Path, etag: str | None, label: str) -> None:
    """Compare a downloaded file with the SHA-256 its ETag states (Git LFS files); on a
    mismatch remove it from the cache, where it would otherwise be used from now on."""
    expected = (etag or "").strip('"').removeprefix("W/").strip('"')
    if not _SHA256.match(expected):
        log.debug("%s: the hub states no SHA-256 for %s", label, file.name)
        return
    actual = file_sha256(file)
    if actual == expected:
        return
    for stored in {file.resolve(), file}:
        stored.unlink(missing_ok=True)
    raise GtasrError(
        f"{label}: the downloaded file's SHA-256 is {actual}, not the {expected} the hub "
        "states; it was removed from the cache (run the command again)"
    )


def copy_model(source: Path, target: Path) -> None:
    """Copy a model file to ``target`` atomically (``gtasr fetch-model --output``)."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


@dataclass(frozen=True)
class CatalogueRow:
    """One line of ``gtasr models``."""

    name: str
    parameters: str
    size: str
    source: str
    licence: str
    cached: str


def catalogue_rows() -> Iterator[CatalogueRow]:
    """The catalogue as ``gtasr models`` shows it, the cache looked at on the disk only."""
    for entry in CATALOGUE.values():
        local = entry.cached()
        if entry.source is None:
            source, cached = "in the package", "yes"
        else:
            source, cached = entry.source.spec, "yes" if local is not None else "no"
        yield CatalogueRow(
            name=entry.name,
            parameters=f"{entry.parameters / 1e6:.2f}M",
            size=f"{local.stat().st_size / 1e6:.1f} MB" if local is not None else "-",
            source=source,
            licence=entry.licence,
            cached=cached,
        )
