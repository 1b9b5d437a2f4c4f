"""``hil test --report FILE.html``: the run report's structure, and the page as headless
Chromium renders it after a real run in QEMU (matrix, transcript links, footprint, timeline)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import Browser, needs_chromium

from hil import runreport
from hil.cli import main
from hil.errors import ExitCode


class Page(HTMLParser):
    """The tags of a page with their attributes, and its text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v
                                                            for k, v in attrs.items())]


def _cells(tmp_path: Path) -> list[runreport.Cell]:
    log = tmp_path / "run" / "nucleo-f4" / "transcripts" / "gw0" / "test_ping" / "console.log"
    log.parent.mkdir(parents=True)
    log.write_text("READY\n")
    flash = runreport.Region("FLASH", "flash", 512 * 1024, 8192, delta=4096)
    return [
        runreport.Cell("shell", "nucleo-f4", "passed-virtual", executor="virtual board",
                       rack_id="f4-a", passed=5, start=100.0, end=104.0, transcripts=[log],
                       regions=[flash, runreport.Region("RAM", "ram", 128 * 1024, 2048)]),
        runreport.Cell("shell", "hifive1-revb", "failed", passed=4, failed=1, start=100.5,
                       end=103.0),
        runreport.Cell("<script>alert(1)</script>", "nucleo-f4", "flaky", passed=2, flaky=1,
                       start=104.0, end=106.0),
        runreport.Cell("blinky", "hifive1-revb", "not-run",
                       detail="no board with fixture gpio-loopback"),
    ]


def test_report_structure_matrix_links_footprint_timeline(tmp_path: Path):
    out = tmp_path / "reports" / "run.html"
    runreport.write(out, _cells(tmp_path))
    text = out.read_text()
    page = Page(text)
    assert [t for t, _ in page.tags if t in ("script", "link", "img", "iframe")] == []
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    cells = {(a["data-app"], a["data-board"]): a["data-verdict"]
             for a in page.all("td") if a.get("data-verdict") is not None}
    assert cells == {("shell", "nucleo-f4"): "passed-virtual",
                     ("shell", "hifive1-revb"): "failed",
                     ("<script>alert(1)</script>", "nucleo-f4"): "flaky",
                     ("<script>alert(1)</script>", "hifive1-revb"): "",  # no such cell
                     ("blinky", "nucleo-f4"): "", ("blinky", "hifive1-revb"): "not-run"}
    words = " ".join(page.text)
    assert "no board with fixture gpio-loopback" in words
    assert "passed on a virtual board" in words and "flaky" in words
    # the transcript link is relative to the report and leads to the file
    (href,) = [a["href"] for a in page.all("a")]
    assert href == "../run/nucleo-f4/transcripts/gw0/test_ping/console.log"
    assert (out.parent / href).read_text() == "READY\n"
    regions = {a["data-region"]: a for a in page.all("tr") if a.get("data-region")}
    assert set(regions) == {"FLASH", "RAM"}
    assert page.all("td", **{"data-used": "8192", "data-length": "524288"})
    assert "+4096 B" in words
    runs = page.all("rect")
    assert {(r["data-lane"], r["data-app"]) for r in runs} == {
        ("f4-a", "shell"), ("hifive1-revb", "shell"),
        ("nucleo-f4", "<script>alert(1)</script>")}
    assert len(page.all("svg", id="timeline")) == 1


READ_PAGE = """JSON.stringify({
  title: document.title,
  cells: [...document.querySelectorAll('#matrix td[data-verdict]')].map(td => ({
      app: td.dataset.app, board: td.dataset.board, verdict: td.dataset.verdict,
      text: td.innerText, links: [...td.querySelectorAll('a')].map(a => a.href)})),
  regions: [...document.querySelectorAll('#footprint tr[data-region]')].map(r => ({
      board: r.dataset.board, region: r.dataset.region,
      used: +r.querySelector('[data-used]').dataset.used,
      fill: r.querySelector('.fill').getBoundingClientRect().width,
      outer: r.querySelector('.bar').clientWidth,
      length: +r.querySelector('[data-used]').dataset.length})),
  runs: [...document.querySelectorAll('#timeline rect.run')].map(r => ({
      lane: r.dataset.lane, width: r.getBoundingClientRect().width}))
})"""


@pytest.mark.slow
@needs_chromium
def test_report_of_a_real_run_renders_in_chromium(tmp_path: Path, browser: Browser, capsys):
    report = tmp_path / "out" / "report.html"
    junit = tmp_path / "out" / "verdict.xml"
    rc = main(["test", "--board", "nucleo-f4", "--board", "hifive1-revb", "shell",
               "--report", str(report), "--junit", str(junit)])
    assert rc == ExitCode.OK, capsys.readouterr()
    assert f"run report written to {report}" in capsys.readouterr().err
    browser.load(report.as_uri())
    page = json.loads(browser.evaluate(READ_PAGE))
    assert browser.errors() == []
    assert all(u.startswith("file:") for u in browser.requests()), browser.requests()
    assert page["title"] == "hil test shell"
    cells = {c["board"]: c for c in page["cells"]}
    assert set(cells) == {"nucleo-f4", "hifive1-revb"}
    for board, cell in cells.items():
        assert cell["verdict"] == "passed-qemu" and "passed in QEMU only" in cell["text"]
        assert cell["links"], f"{board}: no transcript link"
        for link in cell["links"]:  # each link opens a transcript of this board's run
            path = Path(link.removeprefix("file://"))
            assert path.is_file() and f"/{board}/" in link
        assert any(Path(u.removeprefix("file://")).name == "console.log" and
                   "READY" in _received(Path(u.removeprefix("file://")))
                   for u in cell["links"])
    flash = [r for r in page["regions"] if r["region"].upper().startswith("FLASH")]
    assert {r["board"] for r in flash} == {"nucleo-f4", "hifive1-revb"}
    for r in page["regions"]:
        assert r["outer"] > 0
        assert r["fill"] == pytest.approx(r["outer"] * r["used"] / r["length"], abs=2)
    assert all(r["used"] > 0 for r in flash)
    assert sorted(r["lane"] for r in page["runs"]) == ["hifive1-revb", "nucleo-f4"]
    assert all(r["width"] >= 2 for r in page["runs"])


def _received(transcript: Path) -> str:
    """What the board sent, joined across the transcript's chunks (``  t < text``): a line
    may arrive in several chunks."""
    return "".join(line.split(" < ", 1)[1] for line in transcript.read_text().splitlines()
                   if " < " in line)
