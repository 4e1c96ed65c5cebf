"""The envelope every manifest shares, and the registry of kinds."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from fleetplane.manifests.fields import FieldError, Name

API_VERSION = "fleetplane.dev/v1alpha1"

_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            raise FieldError(
                f"{key!r} is not a valid label key",
                at=(key,),
                expected="an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.'",
                show_value=False,
            )
        if not _LABEL_VALUE.match(value):
            raise FieldError(at=(key,), expected="at most 63 letters, digits, '-', '_' or '.'")
    return labels


class Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    labels: Annotated[dict[str, str], AfterValidator(_check_labels)] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Manifest(BaseModel):
    """A document of one kind. Subclasses set `kind` and type `spec`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    KIND: ClassVar[str] = ""
    api_version: Literal["fleetplane.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: str
    metadata: Metadata

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def ref(self) -> str:
        """`Kind/name`, how a document is named in messages and diffs."""
        return f"{self.kind}/{self.metadata.name}"

    def to_document(self) -> dict[str, Any]:
        """The canonical JSON-able form: what is stored, hashed and diffed."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


KINDS: dict[str, type[Manifest]] = {}


def kind(cls: type[Manifest]) -> type[Manifest]:
    """Register a manifest class under its KIND."""
    KINDS[cls.KIND] = cls
    return cls
