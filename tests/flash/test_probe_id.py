"""Probe ids are read in one place (hil.flash.probe_id): every kind parses to what it names,
bad text is a ConfigError naming it, and no other module of hil reads the prefix itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hil.errors import ConfigError
from hil.flash.probe_id import KINDS, ProbeId

HIL = Path(__file__).resolve().parents[2] / "hil"

GOOD = [
    pytest.param("stlink:066DFF485550755187083519", "stlink", "066DFF485550755187083519",
                 "stlink:066DFF485550755187083519", id="stlink"),
    pytest.param("cmsisdap:0240000032044e4500257009997b00386781000097969900", "cmsisdap",
                 "0240000032044e4500257009997b00386781000097969900",
                 "cmsisdap:0240000032044e4500257009997b00386781000097969900", id="cmsisdap"),
    pytest.param("jlink:000979012345", "jlink", "000979012345", "jlink:000979012345",
                 id="jlink"),
    pytest.param("picoprobe:E6614C309B4D5A2F", "picoprobe", "E6614C309B4D5A2F",
                 "picoprobe:E6614C309B4D5A2F", id="picoprobe"),
    pytest.param("pemicro:PEMC8E9A1", "pemicro", "PEMC8E9A1", "pemicro:PEMC8E9A1",
                 id="pemicro"),
    pytest.param("066DFF485550755187083519", "serial", "066DFF485550755187083519",
                 "066DFF485550755187083519", id="bare-serial"),
    pytest.param("jlink", "jlink", "", "jlink", id="any-jlink"),
    pytest.param("openocd", "openocd", "", "openocd", id="any-openocd"),
    pytest.param("hilsim:f4-a", "hilsim", "f4-a", "hilsim:f4-a", id="simulated"),
    pytest.param("HILSIM:f4.a_1", "hilsim", "f4.a_1", "hilsim:f4.a_1",
                 id="simulated-upper-case-kind"),
    pytest.param("remote:rack-host:5555", "remote", "rack-host:5555", "remote:rack-host:5555",
                 id="remote"),
    pytest.param("remote:[::1]:5555", "remote", "[::1]:5555", "remote:[::1]:5555",
                 id="remote-ipv6"),
]


@pytest.mark.parametrize("text, kind, address, pyocd_id", GOOD)
def test_every_kind_parses_to_what_it_names(text, kind, address, pyocd_id):
    probe = ProbeId.parse(text)
    assert (probe.kind, probe.address, probe.pyocd_id) == (kind, address, pyocd_id)
    assert str(probe) == text  # printed and recorded as written
    assert probe.simulated == (kind == "hilsim")
    assert probe.remote == (kind == "remote")
    assert probe.usb == (kind not in ("hilsim", "remote"))
    assert probe.any == (address == "")


def test_remote_probe_gives_host_and_port():
    probe = ProbeId.parse("remote:rack-host:5555")
    assert (probe.host, probe.port) == ("rack-host", 5555)
    assert ProbeId.parse("remote:[::1]:7001").host == "[::1]"
    local = ProbeId.parse("stlink:1")
    assert (local.host, local.port) == (None, None)


BAD = [
    pytest.param("", "'' is not a probe id", id="empty"),
    pytest.param("foo:bar", "'foo:bar' is not a probe id: unknown probe kind 'foo'",
                 id="unknown-kind"),
    pytest.param("stlink:", "'stlink:' names no serial number", id="kind-without-serial"),
    pytest.param("stlink:0A B", "'stlink:0A B' is not a probe id", id="serial-with-space"),
    pytest.param("066D'FF", "'066D'FF' is not a probe id", id="bare-serial-with-quote"),
    pytest.param("jlink:1; shutdown", "'jlink:1; shutdown' is not a probe id",
                 id="jlink-serial-injecting-a-command"),
    pytest.param("hilsim:../x", "'../x' is not a valid simulated probe name",
                 id="simulated-traversal"),
    pytest.param("hilsim", "'' is not a valid simulated probe name", id="simulated-no-name"),
    pytest.param("remote:rack-host", "'remote:rack-host': 'rack-host' is not a number",
                 id="remote-no-port"),
    pytest.param("remote:rack-host:0", "a TCP port must be 1..65535", id="remote-port-zero"),
    pytest.param("remote::5555", "'remote::5555' names no host", id="remote-no-host"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_bad_probe_id_is_a_config_error_naming_it(text, message):
    with pytest.raises(ConfigError) as err:
        ProbeId.parse(text)
    assert message in str(err.value)
    assert err.value.hint  # and says how to write one


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(ConfigError) as err:
        ProbeId.parse("usb:1234")
    assert all(kind in err.value.hint for kind in KINDS)


def test_same_probe_ignores_case_of_kind_and_address():
    assert ProbeId.parse("HILSIM:F4-A") == ProbeId.parse("hilsim:f4-a")
    assert len({ProbeId.parse("stlink:abc"), ProbeId.parse("STLINK:ABC")}) == 1
    assert ProbeId.parse("stlink:abc") != ProbeId.parse("cmsisdap:abc")
    assert ProbeId.parse("hilsim:f4-a") != "hilsim:f4-a"  # text is parsed, never compared


@pytest.mark.parametrize("ours, listed, same", [
    pytest.param("stlink:066DFF", "066dff", True, id="kind-prefixed-vs-listed-serial"),
    pytest.param("066DFF", "stlink:066dff", True, id="bare-vs-prefixed"),
    pytest.param("stlink:066DFF", "cmsisdap:066DFF", False, id="other-kind-same-serial"),
    pytest.param("stlink:066DFF", "066DF", False, id="prefix-of-serial"),
    pytest.param("hilsim:f4-a", "hilsim:f4-a", True, id="simulated"),
    pytest.param("hilsim:f4-a", "hilsim:f4-b", False, id="other-simulated"),
    pytest.param("stlink:066DFF", "not an id", False, id="unreadable-listed-id"),
])
def test_a_listed_probe_matches_the_rack_probe(ours, listed, same):
    assert ProbeId.parse(ours).matches(listed) is same


def test_rack_entry_parses_its_probe_once():
    from hil.rack.inventory import RackEntry

    entry = RackEntry(id="x", board="nucleo-f4", probe="HILSIM:x")  # type: ignore[arg-type]
    assert entry.probe == ProbeId.parse("hilsim:x") and entry.is_virtual
    assert str(entry.probe) == "HILSIM:x"


# ------------------------------------------------------------------ one parser, enforced

_KIND_TEXT = {k for kind in KINDS for k in (kind, kind + ":")}
_SPLITTERS = {"startswith", "endswith", "split", "rsplit", "partition", "rpartition"}


def _src(node: ast.AST) -> str:
    return ast.unparse(node)


def _names_probe(node: ast.AST) -> bool:
    text = _src(node).lower()
    return "probe" in text or "unique_id" in text


def prefix_tests(source: str) -> list[tuple[int, str]]:
    """Lines of ``source`` that read a probe id's text themselves: a string method splitting
    or prefix-testing a probe id, a comparison with a kind's text, or a slice of one."""
    found = []
    for node in ast.walk(ast.parse(source)):
        hit = False
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in _SPLITTERS:
            consts = [c.value for a in node.args for c in ast.walk(a)
                      if isinstance(c, ast.Constant)]
            hit = _names_probe(node.func.value) or any(c in _KIND_TEXT for c in consts)
        elif isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            consts = [c.value for p in parts for c in ast.walk(p) if isinstance(c, ast.Constant)]
            colon = any(isinstance(c, str) and c in _KIND_TEXT and c.endswith(":")
                        for c in consts)
            kind = any(c in _KIND_TEXT for c in consts)
            hit = colon or (kind and any(_names_probe(p) or "kind" in _src(p) for p in parts))
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            hit = _names_probe(node.value)
        if hit:
            found.append((node.lineno, _src(node)))
    return found


def test_the_scan_finds_the_old_style_checks():
    """The enforcing test below can fail: each way hil used to read a prefix is caught."""
    old = '''
if probe.lower().startswith("hilsim:"): pass
if e.probe.startswith(("hilsim:", "remote:")): pass
name = entry.probe.split(":", 1)[1]
if kind.lower() == "hilsim": pass
if probe and probe.lower() not in ("jlink", "openocd"): pass
if "remote:" in text: pass
host = self.probe[7:]
kind, _, rest = probe.partition(":")
'''
    assert sorted({line for line, _ in prefix_tests(old)}) == [2, 3, 4, 5, 6, 7, 8, 9]
    fine = '''
if board.flash.tool == "openocd": pass
if entry.probe.simulated: pass
name = entry.probe.address
text = f"hilsim:{name}"
'''
    assert prefix_tests(fine) == []


def test_no_module_but_the_parser_reads_a_probe_id_prefix():
    parser = HIL / "flash" / "probe_id.py"
    offenders = [f"{path.relative_to(HIL.parent)}:{line}: {code}"
                 for path in sorted(HIL.rglob("*.py")) if path != parser
                 for line, code in prefix_tests(path.read_text(encoding="utf-8"))]
    assert offenders == [], "read probe ids with hil.flash.probe_id.ProbeId:\n" + \
        "\n".join(offenders)
