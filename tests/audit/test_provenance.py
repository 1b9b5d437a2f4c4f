"""Provenance written by on_build: in-toto v1 / SLSA v1 structure, CycloneDX SBOM, DSSE."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest
from auditdata import make_build_record

from hil import audit
from hil.audit import provenance, queries
from hil.audit.store import open_store
from hil.cli import main
from hil.errors import AuditError, ExitCode


@pytest.fixture
def built(state: Path, tmp_path: Path) -> tuple[Path, dict]:
    out = tmp_path / "build" / "nucleo-f4" / "shell"
    record = make_build_record(out)
    audit.on_build(out, record)
    return out, record


def test_statement_has_the_required_in_toto_and_slsa_fields(built: tuple[Path, dict]):
    out, record = built
    stmt = json.loads((out / provenance.STATEMENT_FILE).read_text())
    assert provenance.validate_statement(stmt) == []
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["predicateType"] == "https://slsa.dev/provenance/v1"
    bd = stmt["predicate"]["buildDefinition"]
    assert isinstance(bd["buildType"], str) and ":" in bd["buildType"]
    assert bd["externalParameters"]["board"] == "nucleo-f4"
    assert bd["externalParameters"]["flags"] == record["flags"]
    assert isinstance(bd["internalParameters"], dict)
    rd = stmt["predicate"]["runDetails"]
    assert rd["builder"]["id"].startswith("urn:hil:builder:")
    assert isinstance(rd["metadata"], dict) and rd["metadata"]["invocationId"]
    # subjects are the HEX, BIN and ELF with the sha256 of the files on disk
    subjects = {s["name"]: s["digest"]["sha256"] for s in stmt["subject"]}
    assert set(subjects) == {"firmware.hex", "firmware.bin", "firmware.elf"}
    for name, digest in subjects.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest


def test_resolved_dependencies_name_toolchain_board_sources_commit(built: tuple[Path, dict]):
    out, record = built
    stmt = json.loads((out / provenance.STATEMENT_FILE).read_text())
    deps = stmt["predicate"]["buildDefinition"]["resolvedDependencies"]
    by_name: dict[str, list[dict]] = {}
    for d in deps:
        by_name.setdefault(d["name"], []).append(d)
    tools = record["toolchain"]["tools"]
    for role in ("cc", "cc1", "as", "ld", "objcopy"):
        dep = by_name[f"toolchain:{role}"][0]
        assert dep["digest"]["sha256"] == tools[role]["sha256"]
        assert dep["annotations"]["version"] == tools[role]["version"]
        assert dep["uri"] == "file://" + tools[role]["path"]
    assert by_name["library:libgcc"][0]["digest"]["sha256"] == \
        record["toolchain"]["libraries"]["libgcc"]["sha256"]
    assert by_name["board_file"][0]["digest"]["sha256"] == record["board_sha256"]
    assert by_name["linker_script"][0]["digest"]["sha256"] == \
        record["linker_script"]["sha256"]
    assert by_name["git"][0]["digest"]["gitCommit"] == record["git"]["commit"]
    assert by_name["git"][0]["annotations"]["dirty"] is False
    assert [s["digest"]["sha256"] for s in by_name["source"]] == \
        [s["sha256"] for s in record["sources"]]


@pytest.mark.parametrize(("mutate", "problem"), [
    pytest.param(lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"), "_type",
                 id="old-type"),
    pytest.param(lambda s: s.update(subject=[]), "subject", id="no-subject"),
    pytest.param(lambda s: s["subject"][0]["digest"].update(sha256="abc"), "sha256",
                 id="short-digest"),
    pytest.param(lambda s: s.update(predicateType="https://slsa.dev/provenance/v0.2"),
                 "predicateType", id="slsa-v0.2"),
    pytest.param(lambda s: s["predicate"]["buildDefinition"].pop("buildType"), "buildType",
                 id="no-build-type"),
    pytest.param(lambda s: s["predicate"]["buildDefinition"].pop("externalParameters"),
                 "externalParameters", id="no-external-parameters"),
    pytest.param(lambda s: s["predicate"]["runDetails"]["builder"].pop("id"), "builder.id",
                 id="no-builder-id"),
])
def test_validator_rejects_broken_statements(built: tuple[Path, dict], mutate, problem: str):
    out, _ = built
    stmt = json.loads((out / provenance.STATEMENT_FILE).read_text())
    mutate(stmt)
    problems = provenance.validate_statement(stmt)
    assert any(problem in p for p in problems), problems


def test_sbom_is_cyclonedx_1_5(built: tuple[Path, dict]):
    out, record = built
    bom = json.loads((out / provenance.SBOM_FILE).read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    assert bom["serialNumber"].startswith("urn:uuid:")
    main_component = bom["metadata"]["component"]
    assert main_component["type"] == "firmware"
    assert main_component["hashes"][0]["content"] == record["artifacts"]["hex"]["sha256"]
    types = {c["type"] for c in bom["components"]}
    assert types == {"application", "library", "file"}
    hashes = {c["hashes"][0]["content"] for c in bom["components"]}
    assert record["toolchain"]["tools"]["cc1"]["sha256"] in hashes
    assert record["sources"][0]["sha256"] in hashes
    refs = {c["bom-ref"] for c in bom["components"]}
    assert set(bom["dependencies"][0]["dependsOn"]) == refs


def test_keygen_makes_a_private_key_only_the_owner_reads(state: Path):
    assert main(["audit", "keygen"]) == 0
    key = audit.default_key_path()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.with_name(key.name + ".pub").is_file()
    assert main(["audit", "keygen"]) == ExitCode.AUDIT_FAILED  # refuses to overwrite


def test_keygen_force_replaces_a_readable_key_with_a_private_one(state: Path):
    key = audit.default_key_path()
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_text("old key")
    key.chmod(0o644)
    assert main(["audit", "keygen", "--force"]) == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert sorted(p.name for p in key.parent.iterdir() if p.name.startswith(".")) == []


def _signed_build(state: Path, tmp_path: Path) -> Path:
    assert main(["audit", "keygen"]) == 0
    out = tmp_path / "signed"
    audit.on_build(out, make_build_record(out, salt="signed"))
    return out


def test_signed_envelope_verifies(state: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]):
    out = _signed_build(state, tmp_path)
    envelope = out / provenance.ENVELOPE_FILE
    assert main(["audit", "verify", "--statement", str(envelope)]) == 0
    assert "signature OK" in capsys.readouterr().out
    with open_store() as store:
        result = queries.verify(store, audit.trusted_public_keys())
    assert result.ok and result.signatures_checked == 1


def test_modified_statement_is_rejected(state: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]):
    out = _signed_build(state, tmp_path)
    path = out / provenance.ENVELOPE_FILE
    envelope = json.loads(path.read_text())
    stmt = json.loads(base64.b64decode(envelope["payload"]))
    stmt["subject"][0]["digest"]["sha256"] = "0" * 64  # point the signature at another image
    envelope["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    path.write_text(json.dumps(envelope))
    with pytest.raises(AuditError, match="modified"):
        provenance.verify_envelope(envelope, audit.trusted_public_keys())
    capsys.readouterr()
    assert main(["audit", "verify", "--statement", str(path)]) == ExitCode.AUDIT_FAILED
    assert "modified after signing" in capsys.readouterr().err


def test_swapped_image_file_is_caught(state: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]):
    out = _signed_build(state, tmp_path)
    (out / "firmware.hex").write_text(":00000001FF\n")
    assert main(["audit", "verify", "--statement",
                 str(out / provenance.ENVELOPE_FILE)]) == ExitCode.AUDIT_FAILED
    assert "firmware.hex" in capsys.readouterr().err


def test_untrusted_key_is_rejected(state: Path, tmp_path: Path):
    out = _signed_build(state, tmp_path)
    other, _, _ = provenance.generate_key(tmp_path / "other.pem")
    envelope = json.loads((out / provenance.ENVELOPE_FILE).read_text())
    with pytest.raises(AuditError, match="no signature by a trusted key"):
        provenance.verify_envelope(envelope, [provenance.load_public_key(other)])
    with open_store() as store:
        result = queries.verify(store, [provenance.load_public_key(other)])
    assert not result.ok and "not trusted" in result.problems[0][1]


def test_missing_key_named_by_env_is_an_error(state: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HIL_AUDIT_KEY", str(tmp_path / "nope.pem"))
    out = tmp_path / "b"
    with pytest.raises(AuditError, match="HIL_AUDIT_KEY"):
        audit.on_build(out, make_build_record(out))


def test_unsigned_build_removes_a_stale_envelope(state: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch):
    out = _signed_build(state, tmp_path)
    assert (out / provenance.ENVELOPE_FILE).exists()
    monkeypatch.setenv("HIL_AUDIT_KEY", "")
    audit.on_build(out, make_build_record(out, salt="unsigned"))
    assert not (out / provenance.ENVELOPE_FILE).exists()
