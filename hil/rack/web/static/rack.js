// The rack page: polls the JSON endpoints every second and rebuilds the tables.
// Every value is user data (board ids, reasons, user names): it goes into the page through
// textContent only, never as HTML.
"use strict";

const POLL_MS = 1000;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function when(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  const d = new Date(seconds * 1000);
  return isNaN(d.getTime()) ? "-" : d.toLocaleString();
}

function isoWhen(text) {
  const d = new Date(text);
  return isNaN(d.getTime()) ? String(text) : d.toLocaleString();
}

function ago(seconds, now) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(now - seconds);
  if (s < 0) return "in " + span(-s);
  return span(s) + " ago";
}

function span(s) {
  if (s < 90) return s + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}

function fill(tbody, rows, columns, emptyText) {
  const fresh = document.createDocumentFragment();
  if (rows.length === 0) {
    const tr = el("tr");
    const td = el("td", emptyText, "empty");
    td.colSpan = columns;
    tr.appendChild(td);
    fresh.appendChild(tr);
  }
  rows.forEach((row) => fresh.appendChild(row));
  tbody.replaceChildren(fresh);
}

function eventText(ev, now) {
  const parts = [ev.step || ev.kind, ev.ok ? "ok" : "failed"];
  if (ev.detail) parts.push(ev.detail);
  return parts.join(": ") + " (" + ago(ev.at, now) + ")";
}

function boardRow(b, now) {
  const tr = el("tr");
  tr.dataset.id = b.id;
  tr.dataset.held = b.lease ? "yes" : "no";
  tr.dataset.health = b.bad_row ? "bad" : b.healthy ? "ok" : "unhealthy";
  const id = el("td", b.id, "id");
  tr.appendChild(id);
  tr.appendChild(el("td", b.board || "-", "type"));
  const probe = el("td", b.probe || "-", "probe");
  if (b.virtual) probe.appendChild(el("span", "virtual", "tag"));
  tr.appendChild(probe);
  let health = "ok";
  if (b.bad_row) health = "BAD ROW: " + b.bad_row;
  else if (!b.healthy) health = "unhealthy: " + (b.unhealthy_reason || "");
  else if (b.failures) health = "ok (" + b.failures + " recent failures)";
  tr.appendChild(el("td", health, "health"));
  const check = el("td", null, "check");
  if (b.last_check) {
    check.appendChild(el("span", b.last_check.ok ? "passed" : "failed",
                         b.last_check.ok ? "event-ok" : "event-failed"));
    check.appendChild(el("small", " " + ago(b.last_check.at, now)));
    if (b.last_check.detail) check.title = b.last_check.detail;
  } else {
    check.textContent = "-";
  }
  tr.appendChild(check);
  const rec = el("td", null, "recoveries");
  if (!b.recoveries || b.recoveries.length === 0) rec.textContent = "-";
  (b.recoveries || []).slice().reverse().forEach((ev) => {
    rec.appendChild(el("div", eventText(ev, now), ev.ok ? "event-ok" : "event-failed"));
  });
  tr.appendChild(rec);
  const lease = b.lease;
  const holder = el("td", lease ? lease.user + "@" + lease.host : "-", "holder");
  if (lease && lease.pid) holder.appendChild(el("small", " pid " + lease.pid));
  if (lease && lease.purpose) holder.appendChild(el("div", lease.purpose, "meta"));
  tr.appendChild(holder);
  tr.appendChild(el("td", lease && lease.ci_job ? lease.ci_job : "-", "ci-job"));
  const since = el("td", lease ? when(lease.since) : "-", "since");
  tr.appendChild(since);
  const until = el("td", lease ? when(lease.until) : "-", "until");
  if (lease && lease.until !== null) until.appendChild(el("small", " (" + ago(lease.until, now) + ")"));
  tr.appendChild(until);
  return tr;
}

function queueRow(q, now) {
  const tr = el("tr");
  tr.dataset.board = q.board;
  tr.dataset.waiting = String(q.waiting);
  tr.appendChild(el("td", q.board, "type"));
  tr.appendChild(el("td", q.boards, "boards"));
  tr.appendChild(el("td", q.free, "free"));
  tr.appendChild(el("td", q.waiting, "waiting"));
  const who = el("td", q.waiters.length ? null : "-", "waiters");
  q.waiters.forEach((w) => {
    who.appendChild(el("div", "#" + w.position + " " + w.host + " pid " + w.pid +
                       ", waiting " + ago(w.since, now).replace(/ ago$/, "") +
                       " for " + w.candidates.join(", ")));
  });
  tr.appendChild(who);
  return tr;
}

function runRow(r) {
  const tr = el("tr");
  tr.dataset.seq = String(r.seq);
  tr.dataset.verdict = r.verdict;
  tr.dataset.where = r.where;
  tr.appendChild(el("td", isoWhen(r.time), "time"));
  tr.appendChild(el("td", r.app || "-", "app"));
  const board = el("td", r.board || "-", "board");
  if (r.rack_id) board.appendChild(el("span", r.rack_id, "tag"));
  tr.appendChild(board);
  const words = {hardware: "hardware", virtual: "virtual board", qemu: "QEMU only"};
  tr.appendChild(el("td", words[r.where] || r.where, "where where-" + r.where));
  const verdict = el("td", r.verdict_text, "verdict");
  if (r.retry) verdict.appendChild(el("small", " attempt " + r.attempt + " (" + r.retry + ")"));
  tr.appendChild(verdict);
  const counts = r.passed + " passed, " + r.failed + " failed, " + r.errors + " errors, " +
    r.skipped + " skipped";
  tr.appendChild(el("td", counts, "counts"));
  tr.appendChild(el("td", r.user || "-", "user"));
  const links = el("td", r.transcripts.length ? null : "-", "transcripts");
  r.transcripts.forEach((t) => {
    const a = el("a", t.name);
    a.href = t.url;
    links.appendChild(a);
  });
  tr.appendChild(links);
  return tr;
}

function showProblem(id, text) {
  const node = document.getElementById(id);
  node.textContent = text || "";
  node.hidden = !text;
}

function renderRack(data) {
  const now = data.at;
  document.getElementById("rack-file").textContent =
    data.rack_file ? "rack file: " + data.rack_file : "no rack file";
  showProblem("rack-error", data.error);
  fill(document.querySelector("#boards tbody"), data.boards.map((b) => boardRow(b, now)),
       10, "no boards in the rack file");
  document.getElementById("board-count").textContent = "(" + data.boards.length + ")";
  fill(document.querySelector("#queue tbody"), data.queue.map((q) => queueRow(q, now)),
       5, "no board types");
  document.getElementById("waiting").textContent =
    data.waiting ? "(" + data.waiting + " waiting)" : "(nobody waiting)";
}

function renderRuns(data) {
  showProblem("runs-error", data.error ? "audit store: " + data.error : "");
  fill(document.querySelector("#runs tbody"), data.runs.map(runRow), 8,
       "no test runs recorded yet");
}

async function getJson(url) {
  const response = await fetch(url, {cache: "no-store", credentials: "same-origin"});
  if (!response.ok) throw new Error(url + ": HTTP " + response.status);
  return response.json();
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const [rack, runs] = await Promise.all([getJson("api/rack"), getJson("api/runs")]);
    renderRack(rack);
    renderRuns(runs);
    status.dataset.state = "live";
    status.textContent = "live, updated " + new Date().toLocaleTimeString();
  } catch (err) {
    // the server restarts or the network drops: say so on the page and keep trying
    status.dataset.state = "stale";
    status.textContent = "not updating (" + (err && err.message ? err.message : err) +
      "), retrying…";
  }
  window.setTimeout(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", poll);
