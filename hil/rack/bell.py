"""Doorbells for the lease queue: a waiter sleeps until a board may have come free.

A waiter in ``LeaseStore.acquire`` would otherwise find out that a board came free only at
its next poll of the database: up to one poll interval late on every hand-over, and a
transaction per waiter per interval while nothing changes. Instead, the transaction that
frees a board (a release, a reclaimed lease, a board returned to service, a waiter leaving
the queue) rings the waiters that the hand-out now gives a board, and they look at once.

A bell is only a hint: a waiter still polls, slowly, so a lost ring (a ring between
looking and listening, a crashed holder whose lease expires, a store on another host)
costs at most one slow poll, never a hang. Which bell a store rings is the store's
business (``LeaseStore._listen`` and ``LeaseStore._ring``):

- SQLite: a datagram to a Linux abstract-namespace socket named after the database file
  and the waiter's ticket. Abstract sockets vanish with their process, so a crash leaves
  nothing behind; where they are not available (not Linux, the name taken), ``listen``
  returns None and the waiter polls.
- PostgreSQL: ``LISTEN``/``NOTIFY`` on a channel per ticket, delivered at commit.
"""

from __future__ import annotations

import hashlib
import os
import select
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol


class Bell(Protocol):
    def wait(self, timeout: float) -> bool:
        """Sleep until rung or ``timeout`` seconds passed; True when rung."""

    def close(self) -> None: ...


def socket_name(db: Path, ticket: int) -> str:
    """The abstract socket name of ``ticket``'s bell in the lease database at ``db``."""
    key = hashlib.sha256(os.fsencode(os.path.realpath(db))).hexdigest()[:20]
    return f"\0hil-lease-{key}-{ticket}"


class SocketBell:
    """A waiter's bell for a SQLite store: an abstract-namespace datagram socket."""

    def __init__(self, sock: socket.socket, poller: select.poll) -> None:
        self._sock = sock
        self._poller = poller

    @classmethod
    def listen(cls, db: Path, ticket: int) -> SocketBell | None:
        """A bell for ``ticket``, or None where abstract sockets cannot be bound (the caller
        polls instead)."""
        if not hasattr(socket, "AF_UNIX") or not hasattr(select, "poll"):
            return None
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except OSError:  # e.g. out of file descriptors
            return None
        try:
            sock.bind(socket_name(db, ticket))
            sock.setblocking(False)
            poller = select.poll()  # not select(): a process may hold fds past 1024
            poller.register(sock, select.POLLIN)
        except OSError:  # not Linux (no abstract namespace), or the name is taken
            sock.close()
            return None
        return cls(sock, poller)

    def wait(self, timeout: float) -> bool:
        rung = bool(self._poller.poll(max(0.0, timeout) * 1000))
        while True:  # several rings queued while we looked are one ring
            try:
                self._sock.recv(16)
            except OSError:  # BlockingIOError: drained
                return rung

    def close(self) -> None:
        self._sock.close()


def ring_sockets(db: Path, tickets: Iterable[int]) -> None:
    """Ring the bells of ``tickets`` (a waiter that is not listening is not an error)."""
    tickets = list(tickets)
    if not tickets or not hasattr(socket, "AF_UNIX"):
        return
    try:  # runs after the commit: a failure here must not read as a failed release
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    except OSError:  # e.g. out of file descriptors: the waiters' slow poll finds it
        return
    with sock:
        sock.setblocking(False)
        for ticket in tickets:
            try:
                sock.sendto(b"\1", socket_name(db, ticket))
            except OSError:  # nobody listens there (gone, or polling), or its queue is full
                pass
