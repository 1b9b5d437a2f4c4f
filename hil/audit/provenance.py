"""Provenance documents for one build: in-toto Statement v1 with a SLSA Provenance v1
predicate, a CycloneDX 1.5 SBOM, and DSSE envelopes signed with Ed25519.

All functions are pure except the key file helpers; they take the build record
(``build.json``) as a dict and return JSON-ready dicts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from hil import __version__
from hil.errors import AuditError
from hil.fsutil import atomic_write

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PREDICATE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:hil:build-type:firmware:v1"
#: An image hil did not build (``--image``, ``--build-dir``): only what it can see is stated.
EXTERNAL_BUILD_TYPE = "urn:hil:build-type:external:v1"
BUILDER_PREFIX = "urn:hil:builder:"
DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
SUBJECT_ROLES = ("hex", "bin", "elf")

STATEMENT_FILE = "provenance.intoto.json"
ENVELOPE_FILE = "provenance.intoto.dsse.json"
SBOM_FILE = "sbom.cdx.json"


def _file_uri(path: str) -> str:
    """``file:`` URI for a path; relative paths stay relative to the project."""
    return f"file://{path}" if path.startswith("/") else f"file:{path}"


def statement(record: dict[str, Any], *, started: str | None = None,
              finished: str | None = None, invocation_id: str | None = None) -> dict[str, Any]:
    """The in-toto v1 Statement (SLSA v1 predicate) for a build record."""
    artifacts = record.get("artifacts") or {}
    subjects = []
    for role in SUBJECT_ROLES:
        art = artifacts.get(role)
        if art and art.get("sha256"):
            subjects.append({"name": Path(art["path"]).name,
                             "digest": {"sha256": art["sha256"]},
                             "annotations": {"role": role}})
    if not subjects:
        raise AuditError(
            f"build record for {record.get('board')}/{record.get('app')} names no hex, bin "
            "or elf artifact with a sha256; cannot write provenance")
    tc = record.get("toolchain") or {}
    git = record.get("git") or {}
    deps: list[dict[str, Any]] = []
    if record.get("board_file"):
        deps.append({"name": "board_file", "uri": _file_uri(record["board_file"]),
                     "digest": {"sha256": record.get("board_sha256", "")}})
    ld = record.get("linker_script") or {}
    if ld.get("sha256"):
        deps.append({"name": "linker_script", "uri": _file_uri(ld.get("path", "")),
                     "digest": {"sha256": ld["sha256"]},
                     "annotations": {"rendered": True}})
    for src in record.get("sources") or []:
        deps.append({"name": "source", "uri": _file_uri(src["path"]),
                     "digest": {"sha256": src["sha256"]}})
    if git.get("commit"):
        deps.append({"name": "git", "uri": "git+file:.",
                     "digest": {"gitCommit": git["commit"]},
                     "annotations": {"dirty": bool(git.get("dirty"))}})
    if tc.get("id") or not record.get("external"):
        deps.append({"name": f"toolchain:{tc.get('name', '')}",
                     "digest": {"sha256": tc.get("id", "")},
                     "annotations": {"version": tc.get("version"), "triple": tc.get("triple")}})
    for role, tool in sorted((tc.get("tools") or {}).items()):
        deps.append({"name": f"toolchain:{role}", "uri": _file_uri(tool.get("path", "")),
                     "digest": {"sha256": tool.get("sha256", "")},
                     "annotations": {"version": tool.get("version")}})
    for role, lib in sorted((tc.get("libraries") or {}).items()):
        deps.append({"name": f"library:{role}", "uri": _file_uri(lib.get("path", "")),
                     "digest": {"sha256": lib.get("sha256", "")}})
    byproducts = []
    for role, art in sorted(artifacts.items()):
        if role not in SUBJECT_ROLES and art.get("sha256"):
            byproducts.append({"name": Path(art["path"]).name, "digest": {"sha256": art["sha256"]},
                               "annotations": {"role": role}})
    metadata: dict[str, Any] = {"invocationId": invocation_id or f"urn:uuid:{uuid.uuid4()}"}
    if started:
        metadata["startedOn"] = started
    if finished:
        metadata["finishedOn"] = finished
    host = record.get("host") or os.uname().nodename
    external = {"external": {"source": record.get("source"),
                             "compiler": tc.get("compiler"),
                             "comment": tc.get("comment") or []}} \
        if record.get("external") else {}
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": SLSA_PREDICATE,
        "predicate": {
            "buildDefinition": {
                "buildType": EXTERNAL_BUILD_TYPE if external else BUILD_TYPE,
                "externalParameters": {
                    "board": record.get("board"),
                    "app": record.get("app"),
                    "app_dir": record.get("app_dir"),
                    "toolchain": tc.get("name"),
                    "flags": record.get("flags") or {},
                    **external,
                },
                "internalParameters": {
                    "board_file": record.get("board_file"),
                    "board_sha256": record.get("board_sha256"),
                    "app_version": record.get("app_version"),
                    "triple": tc.get("triple"),
                    "git_dirty": bool(git.get("dirty")),
                    "reproducible_checked": bool(record.get("reproducible_checked")),
                    "regions": record.get("regions") or [],
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": f"{BUILDER_PREFIX}{host}",
                            "version": {"hil": record.get("hil_version") or __version__}},
                "metadata": metadata,
                "byproducts": byproducts,
            },
        },
    }


def validate_statement(doc: Any) -> list[str]:
    """Problems with a document as an in-toto v1 Statement with a SLSA v1 predicate
    (empty when valid). Checks the fields both specifications require."""
    problems: list[str] = []

    def need(cond: bool, what: str) -> bool:
        if not cond:
            problems.append(what)
        return cond

    if not need(isinstance(doc, dict), "statement is not a JSON object"):
        return problems
    need(doc.get("_type") == STATEMENT_TYPE, f"_type must be {STATEMENT_TYPE!r}")
    subjects = doc.get("subject")
    if need(isinstance(subjects, list) and len(subjects) > 0, "subject must be a non-empty list"):
        for i, s in enumerate(subjects):
            digest = s.get("digest") if isinstance(s, dict) else None
            sha = digest.get("sha256") if isinstance(digest, dict) else None
            need(isinstance(sha, str) and len(sha) == 64 and _is_hex(sha),
                 f"subject[{i}].digest.sha256 must be 64 hex digits")
            need(isinstance(s, dict) and isinstance(s.get("name", ""), str),
                 f"subject[{i}].name must be a string")
    need(doc.get("predicateType") == SLSA_PREDICATE,
         f"predicateType must be {SLSA_PREDICATE!r}")
    pred = doc.get("predicate")
    if not need(isinstance(pred, dict), "predicate must be an object"):
        return problems
    bd = pred.get("buildDefinition")
    if need(isinstance(bd, dict), "predicate.buildDefinition must be an object"):
        need(isinstance(bd.get("buildType"), str) and ":" in bd["buildType"],
             "predicate.buildDefinition.buildType must be a URI")
        need(isinstance(bd.get("externalParameters"), dict),
             "predicate.buildDefinition.externalParameters must be an object")
        if "internalParameters" in bd:
            need(isinstance(bd["internalParameters"], dict),
                 "predicate.buildDefinition.internalParameters must be an object")
        deps = bd.get("resolvedDependencies", [])
        if need(isinstance(deps, list),
                "predicate.buildDefinition.resolvedDependencies must be a list"):
            for i, dep in enumerate(deps):
                ok = isinstance(dep, dict) and any(k in dep for k in ("uri", "digest", "content"))
                need(ok, f"resolvedDependencies[{i}] needs one of uri, digest, content")
    rd = pred.get("runDetails")
    if need(isinstance(rd, dict), "predicate.runDetails must be an object"):
        builder = rd.get("builder")
        need(isinstance(builder, dict) and isinstance(builder.get("id"), str)
             and ":" in builder.get("id", ""), "predicate.runDetails.builder.id must be a URI")
        if "metadata" in rd:
            need(isinstance(rd["metadata"], dict),
                 "predicate.runDetails.metadata must be an object")
    return problems


def _is_hex(s: str) -> bool:
    return all(c in "0123456789abcdef" for c in s)


def sbom(record: dict[str, Any], *, timestamp: str | None = None) -> dict[str, Any]:
    """A CycloneDX 1.5 SBOM for the image: toolchain tools, libraries and sources."""
    tc = record.get("toolchain") or {}
    hex_art = (record.get("artifacts") or {}).get("hex") or {}
    components: list[dict[str, Any]] = []
    refs: list[str] = []
    for role, tool in sorted((tc.get("tools") or {}).items()):
        ref = f"tool:{role}"
        refs.append(ref)
        components.append({
            "type": "application", "bom-ref": ref,
            "name": Path(tool.get("path", role)).name,
            "version": tc.get("version", ""),
            "description": tool.get("version", ""),
            "hashes": [{"alg": "SHA-256", "content": tool.get("sha256", "")}],
            "properties": [{"name": "hil:path", "value": tool.get("path", "")},
                           {"name": "hil:role", "value": role},
                           {"name": "hil:toolchain", "value": tc.get("name", "")}],
        })
    for role, lib in sorted((tc.get("libraries") or {}).items()):
        ref = f"library:{role}"
        refs.append(ref)
        components.append({
            "type": "library", "bom-ref": ref, "name": role,
            "version": tc.get("version", ""),
            "hashes": [{"alg": "SHA-256", "content": lib.get("sha256", "")}],
            "properties": [{"name": "hil:path", "value": lib.get("path", "")}],
        })
    for src in record.get("sources") or []:
        ref = f"source:{src['path']}"
        refs.append(ref)
        components.append({
            "type": "file", "bom-ref": ref, "name": src["path"],
            "hashes": [{"alg": "SHA-256", "content": src["sha256"]}],
        })
    main_ref = f"firmware:{record.get('board')}/{record.get('app')}"
    metadata: dict[str, Any] = {
        "tools": {"components": [{"type": "application", "name": "hil",
                                  "version": record.get("hil_version") or __version__}]},
        "component": {
            "type": "firmware", "bom-ref": main_ref,
            "name": str(record.get("app", "")), "version": str(record.get("app_version", "")),
            "hashes": [{"alg": "SHA-256", "content": hex_art.get("sha256", "")}],
            "properties": [{"name": "hil:board", "value": str(record.get("board", ""))}],
        },
    }
    if timestamp:
        metadata["timestamp"] = timestamp
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": metadata,
        "components": components,
        "dependencies": [{"ref": main_ref, "dependsOn": refs}],
    }


# --- DSSE with Ed25519 -----------------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _ed25519() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def key_id(public_key: Any) -> str:
    """sha256 of the raw 32-byte public key, hex: names the key in envelopes."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def generate_key(private_path: Path, *, force: bool = False) -> tuple[Path, Path, str]:
    """Write a new Ed25519 key pair (PKCS#8 PEM, mode 0600, and ``.pub`` PEM); returns the
    paths and key id. Refuses to overwrite unless ``force``."""
    from cryptography.hazmat.primitives import serialization

    public_path = private_path.with_name(private_path.name + ".pub")
    if private_path.exists() and not force:
        raise AuditError(f"{private_path} already exists",
                         hint="pass --force to replace it (envelopes it signed then need the "
                              "old .pub to verify)")
    key = _ed25519().Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    atomic_write(private_path, pem, mode=0o600)  # --force never leaves half a key
    atomic_write(public_path, key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path, key_id(key.public_key())


def load_private_key(path: Path) -> Any:
    """An Ed25519 private key from a PEM file; AuditError when unreadable or not Ed25519."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise AuditError(f"cannot read signing key {path}: {exc}",
                         hint="make one with `hil audit keygen`") from exc
    if not isinstance(key, _ed25519().Ed25519PrivateKey):
        raise AuditError(f"signing key {path} is not an Ed25519 key",
                         hint="make one with `hil audit keygen`")
    return key


def load_public_key(path: Path) -> Any:
    """An Ed25519 public key from a PEM file (a private key file gives its public half)."""
    from cryptography.hazmat.primitives import serialization

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuditError(f"cannot read public key {path}: {exc.strerror}") from exc
    try:
        if b"PRIVATE KEY" in data:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise AuditError(f"cannot read public key {path}: {exc}") from exc
    if not isinstance(key, _ed25519().Ed25519PublicKey):
        raise AuditError(f"public key {path} is not an Ed25519 key")
    return key


def sign(doc: dict[str, Any], private_key: Any) -> dict[str, Any]:
    """A DSSE envelope holding ``doc`` (as compact JSON) signed with ``private_key``."""
    payload = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")
    sig = private_key.sign(pae(DSSE_PAYLOAD_TYPE, payload))
    return {
        "payloadType": DSSE_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": key_id(private_key.public_key()),
                        "sig": base64.b64encode(sig).decode("ascii")}],
    }


def verify_envelope(envelope: Any, public_keys: list[Any]) -> dict[str, Any]:
    """Check a DSSE envelope against trusted public keys; return the statement it holds.

    Raises AuditError if the envelope is malformed, no signature is by a trusted key, or a
    signature by a trusted key does not match (the payload was modified).
    """
    from cryptography.exceptions import InvalidSignature

    if not isinstance(envelope, dict) or not isinstance(envelope.get("payload"), str):
        raise AuditError("not a DSSE envelope: no payload")
    if envelope.get("payloadType") != DSSE_PAYLOAD_TYPE:
        raise AuditError(f"DSSE payloadType is {envelope.get('payloadType')!r}, "
                         f"expected {DSSE_PAYLOAD_TYPE!r}")
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
    except ValueError as exc:
        raise AuditError("DSSE payload is not valid base64") from exc
    by_id = {key_id(k): k for k in public_keys}
    signatures = envelope.get("signatures") or []
    checked = 0
    for s in signatures:
        key = by_id.get(s.get("keyid", "")) if isinstance(s, dict) else None
        if key is None:
            continue
        try:
            key.verify(base64.b64decode(s.get("sig", "")), pae(envelope["payloadType"], payload))
        except (InvalidSignature, ValueError) as exc:
            raise AuditError(
                f"signature by key {s['keyid'][:16]} does not match the statement: it was "
                "modified after signing") from exc
        checked += 1
    if not checked:
        ids = ", ".join(str(s.get("keyid", "?"))[:16] for s in signatures
                        if isinstance(s, dict)) or "none"
        raise AuditError(f"no signature by a trusted key (envelope key ids: {ids})",
                         hint="pass the signer's public key with --key")
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise AuditError("DSSE payload is not JSON") from exc
