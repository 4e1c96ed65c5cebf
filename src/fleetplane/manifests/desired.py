"""`DesiredState`: every manifest of a directory, validated together, with where each one came from."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

from fleetplane.manifests.document import Manifest

M = TypeVar("M", bound=Manifest)


@dataclass(frozen=True)
class Origin:
    """Where a manifest is written."""

    file: str  # the path as shown in messages (as given on the command line, joined with the file)
    path: Path  # the file on disk
    relative: str  # the file relative to the loaded directory, '/'-separated: what the store records
    line: int
    column: int
    document: int  # 0-based position in a multi-document file


@dataclass(frozen=True)
class Skipped:
    """A YAML document beside the manifests that is not one (a simulator config, eval cases ...)."""

    file: str
    line: int
    reason: str


class DesiredState:
    """The validated manifests of one directory (or file): what `apply` makes true."""

    def __init__(
        self,
        directory: Path,
        entries: Sequence[tuple[Manifest, Origin]],
        *,
        skipped: Sequence[Skipped] = (),
        files: Sequence[str] = (),
    ) -> None:
        self.directory = directory
        self.skipped = list(skipped)
        self.files = list(files)  # every YAML file read, in reading order
        self._entries = list(entries)
        self._by_ref = {(m.kind, m.name): (m, o) for m, o in self._entries}

    @property
    def manifests(self) -> list[Manifest]:
        return [m for m, _ in self._entries]

    def __iter__(self) -> Iterator[Manifest]:
        return iter(self.manifests)

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def get(self, kind: type[M], name: str) -> M | None: ...
    @overload
    def get(self, kind: str, name: str) -> Manifest | None: ...
    def get(self, kind: type[Manifest] | str, name: str) -> Manifest | None:
        entry = self._by_ref.get((_kind_name(kind), name))
        return entry[0] if entry else None

    @overload
    def of_kind(self, kind: type[M]) -> list[M]: ...
    @overload
    def of_kind(self, kind: str) -> list[Manifest]: ...
    def of_kind(self, kind: type[Manifest] | str) -> list[Any]:
        wanted = _kind_name(kind)
        return [m for m, _ in self._entries if m.kind == wanted]

    def origin(self, manifest: Manifest) -> Origin:
        return self._by_ref[(manifest.kind, manifest.name)][1]

    def base_dir(self, manifest: Manifest) -> Path:
        """The directory relative paths inside `manifest` (a simulator config, a secret file) start from."""
        return self.origin(manifest).path.parent

    def counts(self) -> dict[str, int]:
        """How many documents of each kind, in the order kinds first appear."""
        return dict(Counter(m.kind for m, _ in self._entries))


def _kind_name(kind: type[Manifest] | str) -> str:
    return kind if isinstance(kind, str) else kind.KIND
