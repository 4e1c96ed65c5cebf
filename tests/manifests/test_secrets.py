"""Reading the secret behind a SecretRef."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetplane.manifests.fields import SecretRef
from fleetplane.manifests.secrets import SecretUnavailable, read_secret


def test_from_an_environment_variable(tmp_path: Path) -> None:
    ref = SecretRef(env="KEY")

    assert read_secret(ref, base_dir=tmp_path, environ={"KEY": " s3cret\n"}) == "s3cret"


def test_a_missing_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(SecretUnavailable, match=r"^environment variable KEY is not set$"):
        read_secret(SecretRef(env="KEY"), base_dir=tmp_path, environ={})


def test_an_empty_variable_counts_as_unset(tmp_path: Path) -> None:
    with pytest.raises(SecretUnavailable, match="KEY is not set"):
        read_secret(SecretRef(env="KEY"), base_dir=tmp_path, environ={"KEY": "  "})


def test_from_a_file_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key.txt").write_text("s3cret\n")

    assert read_secret(SecretRef(file="secrets/key.txt"), base_dir=tmp_path) == "s3cret"


def test_an_absolute_file_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "key.txt").write_text("abs")

    assert read_secret(SecretRef(file=str(tmp_path / "key.txt")), base_dir=Path("/elsewhere")) == "abs"


def test_a_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(SecretUnavailable, match=r"cannot read secret file .*nope\.txt: No such file"):
        read_secret(SecretRef(file="nope.txt"), base_dir=tmp_path)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(SecretUnavailable, match=r"secret file .*empty\.txt is empty"):
        read_secret(SecretRef(file="empty.txt"), base_dir=tmp_path)
