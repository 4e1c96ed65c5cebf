"""Packing is deterministic; a signature is an in-toto statement in a DSSE envelope (ed25519); the trust
file decides whose signatures count. Every refusal names the file or the key."""

from __future__ import annotations

import base64
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from skilltools import write_trust

from fleetplane.skills.archive import digest_of, pack, unpack
from fleetplane.skills.errors import SkillError, SkillInvalid
from fleetplane.skills.signing import (
    PAYLOAD_TYPE,
    generate_key,
    key_id,
    load_private_key,
    public_text,
    read_envelope,
    sign_folder,
    write_keypair,
)
from fleetplane.skills.trust import TrustPolicy
from fleetplane.skills.verify import verify_archive


def refusal(data: bytes, trust: TrustPolicy | None, required: bool = False) -> str:
    with pytest.raises(SkillError) as caught:
        verify_archive(data, label="summarize.tar.gz", trust=trust, require_signed=required)
    return f"{caught.value.kind}: {caught.value.message}"


def test_pack_is_deterministic_and_carries_evals(skill_copy: Callable[..., Path], tmp_path: Path) -> None:
    first = skill_copy("summarize")
    second = skill_copy("summarize", as_name="summarize-copy")
    os.utime(first / "SKILL.md", (1_000_000, 1_000_000))
    (first / "scripts" / "summarize.py").chmod(0o755)
    (first / "scripts" / "__pycache__").mkdir()
    (first / "scripts" / "__pycache__" / "summarize.cpython-312.pyc").write_bytes(b"junk")
    (first / ".DS_Store").write_bytes(b"junk")
    data = pack(first)
    assert pack(first) == data
    assert pack(second, name="summarize") == data
    files = unpack(data, "x").files
    assert sorted(files) == [
        "SKILL.md",
        "evals/evals.json",
        "scripts/summarize.py",
        "scripts/words.py",
        "skill.yaml",
        "tests/test_summarize.py",
    ]
    assert digest_of(data).startswith("sha256:") and len(digest_of(data)) == 71


def test_unpack_refuses_what_a_folder_cannot_hold() -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("summarize/../../etc/passwd")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(SkillError) as caught:
        unpack(raw.getvalue(), "evil.tar.gz")
    assert (
        caught.value.message == "evil.tar.gz: entry 'summarize/../../etc/passwd' is outside the skill folder"
    )
    with pytest.raises(SkillError) as caught:
        unpack(b"not gzip", "junk.tar.gz")
    assert caught.value.message.startswith("junk.tar.gz: not a gzip'd tar archive")


@pytest.fixture
def signed(skill_copy: Callable[..., Path], tmp_path: Path) -> tuple[Path, str, TrustPolicy]:
    folder = skill_copy("summarize")
    public = write_keypair(tmp_path / "keys" / "release.pem")
    sign_folder(folder, load_private_key(tmp_path / "keys" / "release.pem"))
    trust = TrustPolicy.load(write_trust(tmp_path / "trust.yaml", [("release", public, ["summar*"])]))
    return folder, public, trust


def test_a_signed_skill_verifies(signed: tuple[Path, str, TrustPolicy]) -> None:
    folder, _, trust = signed
    envelope = orjson.loads((folder / "skill.dsse.json").read_bytes())
    assert envelope["payloadType"] == PAYLOAD_TYPE
    checked = verify_archive(pack(folder), label="x", trust=trust, require_signed=True)
    assert checked.signer == trust.keys[0].id
    assert (checked.folder.name, checked.folder.version) == ("summarize", "1.0.0")
    # ed25519 is deterministic: signing again gives the same envelope, so the digest stays the same.
    before = pack(folder)
    assert pack(folder) == before


def test_a_tampered_file_is_refused(signed: tuple[Path, str, TrustPolicy]) -> None:
    folder, _, trust = signed
    script = folder / "scripts" / "summarize.py"
    script.write_text(script.read_text() + "\n# exfiltrate\n")
    assert refusal(pack(folder), trust) == (
        "tampered: summarize@1.0.0: scripts/summarize.py does not match its sha256 in the signature"
    )
    # Without a trust file the statement is still checked against the files.
    assert refusal(pack(folder), None) == (
        "tampered: summarize@1.0.0: scripts/summarize.py does not match its sha256 in the signature"
    )


def test_added_and_removed_files_are_refused(signed: tuple[Path, str, TrustPolicy]) -> None:
    folder, _, trust = signed
    (folder / "scripts" / "extra.py").write_text("x = 1\n")
    assert refusal(pack(folder), trust) == (
        "tampered: summarize@1.0.0: scripts/extra.py is not covered by the signature (added after signing)"
    )
    (folder / "scripts" / "extra.py").unlink()
    (folder / "tests" / "test_summarize.py").unlink()
    assert refusal(pack(folder), trust) == (
        "tampered: summarize@1.0.0: tests/test_summarize.py is signed but missing (removed after signing)"
    )


def test_a_key_the_trust_file_does_not_list(signed: tuple[Path, str, TrustPolicy], tmp_path: Path) -> None:
    folder, _, _ = signed
    other = generate_key().public_key()
    trust = TrustPolicy.load(write_trust(tmp_path / "other.yaml", [("ci", public_text(other), ["*"])]))
    signer = orjson.loads((folder / "skill.dsse.json").read_bytes())["signatures"][0]["keyid"]
    assert refusal(pack(folder), trust) == (
        f"untrusted: summarize@1.0.0: signed by key {signer}, which {tmp_path}/other.yaml does not list"
    )


def test_a_key_may_sign_only_its_skills(signed: tuple[Path, str, TrustPolicy], tmp_path: Path) -> None:
    folder, public, trust = signed
    narrow = TrustPolicy.load(write_trust(tmp_path / "narrow.yaml", [("release", public, ["support-*"])]))
    kid = trust.keys[0].id
    assert refusal(pack(folder), narrow) == (
        f"untrusted: summarize@1.0.0: key {kid} (release) may not sign skill 'summarize'; "
        "it may sign: support-*"
    )


def test_a_revoked_key(signed: tuple[Path, str, TrustPolicy], tmp_path: Path) -> None:
    folder, public, trust = signed
    kid = trust.keys[0].id
    revoked = TrustPolicy.load(write_trust(tmp_path / "revoked.yaml", [("release", public, ["*"])], [kid]))
    assert refusal(pack(folder), revoked) == (
        f"revoked: summarize@1.0.0: signed by key {kid}, revoked in {tmp_path}/revoked.yaml: laptop stolen"
    )
    # Revoked by the key itself rather than its id: the same.
    by_key = TrustPolicy.load(write_trust(tmp_path / "by-key.yaml", [("release", public, ["*"])], [public]))
    assert by_key.revoked_keys == {kid: "laptop stolen"}


def test_unsigned_under_a_signing_policy(skill_copy: Callable[..., Path], tmp_path: Path) -> None:
    folder = skill_copy("summarize")
    assert refusal(pack(folder), None, required=True) == (
        "unsigned: summarize@1.0.0 is not signed (no skill.dsse.json) and signing is required"
    )
    # Not required: an unsigned skill verifies, with no signer.
    assert verify_archive(pack(folder), label="x", trust=None, require_signed=False).signer is None


def test_an_altered_envelope(signed: tuple[Path, str, TrustPolicy]) -> None:
    folder, _, trust = signed
    envelope = orjson.loads((folder / "skill.dsse.json").read_bytes())
    sig = envelope["signatures"][0]["sig"]
    envelope["signatures"][0]["sig"] = ("B" if sig[0] == "A" else "A") + sig[1:]
    (folder / "skill.dsse.json").write_bytes(orjson.dumps(envelope))
    kid = trust.keys[0].id
    assert refusal(pack(folder), trust) == (
        f"tampered: summarize@1.0.0: the signature by key {kid} (release) does not verify: "
        "skill.dsse.json was altered"
    )


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"[1]", "the payload is not an in-toto Statement"),
        (b'"a statement"', "the payload is not an in-toto Statement"),
        (
            b'{"_type": "https://in-toto.io/Statement/v1", "subject": [], "predicate": [1]}',
            "the statement's predicate is not a mapping",
        ),
    ],
)
def test_an_envelope_whose_payload_is_not_a_statement_fails_closed(payload: bytes, problem: str) -> None:
    envelope = {
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": "k", "sig": ""}],
    }
    with pytest.raises(SkillError) as refused:
        read_envelope(orjson.dumps(envelope), "summarize@1.0.0: skill.dsse.json")
    assert (refused.value.kind, refused.value.message) == (
        "tampered",
        f"summarize@1.0.0: skill.dsse.json: the signature envelope is malformed ({problem})",
    )


def test_keypair_files(tmp_path: Path) -> None:
    public = write_keypair(tmp_path / "k.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "k.pem.pub").read_text() == public + "\n"
    key = load_private_key(tmp_path / "k.pem")
    assert public_text(key.public_key()) == public
    assert len(key_id(key.public_key())) == 16
    with pytest.raises(SkillError) as caught:
        write_keypair(tmp_path / "k.pem")
    assert caught.value.message == f"{tmp_path}/k.pem already exists: choose another path, or remove it first"


def test_a_revoked_archive(skill_copy: Callable[..., Path], tmp_path: Path) -> None:
    data = pack(skill_copy("summarize"))
    digest = digest_of(data)
    (tmp_path / "t.yaml").write_text(
        f'keys: []\nrevoked:\n  - digest: "{digest}"\n    reason: exfiltrates the input\n'
    )
    trust = TrustPolicy.load(tmp_path / "t.yaml")
    assert refusal(data, trust) == (
        f"revoked: summarize@1.0.0: archive {digest} is revoked in {tmp_path}/t.yaml: exfiltrates the input"
    )


def test_trust_file_faults_are_named_at_their_line(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(
        'keys:\n  - name: ci\n    key: "ed25519:nope"\n    skills: []\nextra: 1\n'
    )
    with pytest.raises(SkillInvalid) as caught:
        TrustPolicy.load(tmp_path / "t.yaml")
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path}/t.yaml:5:1: extra: unknown field; expected one of: keys, revoked",
        f"{tmp_path}/t.yaml:4:13: keys[0].skills: found an empty list; "
        "expected a non-empty list of skill name patterns",
        f"{tmp_path}/t.yaml:3:10: keys[0].key: not a valid ed25519 public key",
    ]
