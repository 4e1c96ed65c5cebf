"""Signatures: an in-toto Statement listing each file's sha256, in a DSSE envelope signed with ed25519.

The statement's subjects are every file of the skill but the envelope itself (`skill.dsse.json`), by
path relative to the folder; its predicate names the skill and version. The envelope signs the
Pre-Authentication Encoding of payload type and payload (DSSE v1), so neither can be swapped without
breaking the signature. ed25519 is deterministic: signing the same folder with the same key gives the
same envelope, so a signed folder still packs to one digest.

Keys: a private key is a PKCS#8 PEM file; a public key is one line, `ed25519:<base64 of the 32 raw
bytes>`, as a trust file lists it; its id is the first 16 hex digits of the sha256 of those bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fleetplane.skills.errors import SkillError
from fleetplane.skills.folder import SIGNATURE_FILE, list_files, read_folder

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://fleetplane.dev/skill/v1"
PUBLIC_PREFIX = "ed25519:"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: what is actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.b64encode(raw).decode()


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SkillError("invalid", f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SkillError("invalid", f"{path}: an ed25519 key is needed, found {type(key).__name__}")
    return key


def parse_public(text: str) -> Ed25519PublicKey:
    """`ed25519:<base64>` (or a PEM public key); ValueError when it is neither."""
    text = text.strip()
    if text.startswith(PUBLIC_PREFIX):
        try:
            raw = base64.b64decode(text[len(PUBLIC_PREFIX) :], validate=True)
            return Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError):
            raise ValueError("not a valid ed25519 public key") from None
    try:
        key = serialization.load_pem_public_key(text.encode())
    except ValueError:
        raise ValueError("expected 'ed25519:<base64>' or a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("an ed25519 key is needed")
    return key


def statement(name: str, version: str, files: Mapping[str, bytes]) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": path, "digest": {"sha256": hashlib.sha256(files[path]).hexdigest()}}
            for path in sorted(files)
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"name": name, "version": version},
    }


def sign(name: str, version: str, files: Mapping[str, bytes], key: Ed25519PrivateKey) -> bytes:
    """The envelope for these files (the signature file itself must not be among them)."""
    payload = orjson.dumps(statement(name, version, files), option=orjson.OPT_SORT_KEYS)
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key_id(key.public_key()), "sig": base64.b64encode(signature).decode()}],
    }
    return orjson.dumps(envelope, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


@dataclass(frozen=True)
class Envelope:
    payload: bytes
    statement: dict[str, Any]
    signatures: tuple[tuple[str, bytes], ...]  # (key id, signature)

    def verifies(self, key: Ed25519PublicKey, signature: bytes) -> bool:
        try:
            key.verify(signature, pae(PAYLOAD_TYPE, self.payload))
        except InvalidSignature:
            return False
        return True

    @property
    def subjects(self) -> dict[str, str]:
        return {s["name"]: s["digest"]["sha256"] for s in self.statement["subject"]}

    @property
    def predicate(self) -> dict[str, Any]:
        return dict(self.statement.get("predicate") or {})


def read_envelope(data: bytes, label: str) -> Envelope:
    """A well-formed envelope around an in-toto statement; `SkillError` tampered when it is not."""
    try:
        raw = orjson.loads(data)
        if raw["payloadType"] != PAYLOAD_TYPE:
            raise ValueError(f"payloadType is {raw['payloadType']!r}, expected {PAYLOAD_TYPE!r}")
        payload = base64.b64decode(raw["payload"], validate=True)
        signatures = tuple(
            (str(s["keyid"]), base64.b64decode(s["sig"], validate=True)) for s in raw["signatures"]
        )
        body = orjson.loads(payload)
        if (
            not isinstance(body, dict)
            or body.get("_type") != STATEMENT_TYPE
            or not isinstance(body.get("subject"), list)
        ):
            raise ValueError("the payload is not an in-toto Statement")
        if not isinstance(body.get("predicate", {}), dict):
            raise ValueError("the statement's predicate is not a mapping")
        for subject in body["subject"]:
            if not isinstance(subject["name"], str) or not isinstance(subject["digest"]["sha256"], str):
                raise ValueError("a subject lacks its name or sha256")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise SkillError("tampered", f"{label}: the signature envelope is malformed ({exc})") from None
    if not signatures:
        raise SkillError("tampered", f"{label}: the signature envelope holds no signature")
    return Envelope(payload, body, signatures)


def check_subjects(envelope: Envelope, files: Mapping[str, bytes], label: str) -> None:
    """Every file is a subject with the same sha256, and every subject a file."""
    subjects = envelope.subjects
    for path in sorted(files):
        if path not in subjects:
            raise SkillError(
                "tampered", f"{label}: {path} is not covered by the signature (added after signing)"
            )
        if hashlib.sha256(files[path]).hexdigest() != subjects[path]:
            raise SkillError("tampered", f"{label}: {path} does not match its sha256 in the signature")
    for path in sorted(subjects):
        if path not in files:
            raise SkillError("tampered", f"{label}: {path} is signed but missing (removed after signing)")


def sign_folder(folder: Path, key: Ed25519PrivateKey) -> Path:
    """Check the folder, then write its envelope (`skill.dsse.json`) over every other file in it."""
    checked = read_folder(folder)
    files = {
        rel: (checked.path / rel).read_bytes() for rel in list_files(checked.path) if rel != SIGNATURE_FILE
    }
    target = checked.path / SIGNATURE_FILE
    target.write_bytes(sign(checked.name, checked.version, files, key))
    return target


def write_keypair(path: Path) -> str:
    """A new ed25519 key: the private key as PKCS#8 PEM at `path` (owner-only), the public one at
    `path` + `.pub` as one `ed25519:<base64>` line; the public line is returned."""
    if path.exists():
        raise SkillError("invalid", f"{path} already exists: choose another path, or remove it first")
    key = generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(private_pem(key))
    public = public_text(key.public_key())
    path.with_name(path.name + ".pub").write_text(public + "\n")
    return public
