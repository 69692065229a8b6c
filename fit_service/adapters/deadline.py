"""A deadline for one outbound attempt in all (a webhook POST, an SMTP conversation).

Socket timeouts bound each read and write, not their sum: a peer that answers a line every
few seconds, or drips a TLS handshake, would hold the attempt (and the worker, and every
delivery behind it) as long as it liked.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterable


class Deadline:
    """Ends an attempt that overruns its deadline.

    A timer shuts the watched socket down when the deadline passes; the read or write blocked
    on it then fails at once and the caller counts the attempt as a timeout (``expired``). It
    holds a *duplicate* of the socket, taken right after the TCP connect (before any TLS
    handshake, which wraps the same connection): closing the connection cannot free the
    descriptor for reuse by another socket while the timer may still shut it down. A deadline
    that passes before a socket is watched (a slow name lookup) shuts it down as soon as it
    is. A later connection of the same attempt replaces the earlier one.
    """

    def __init__(self, seconds: float) -> None:
        self._at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._over = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    @property
    def expired(self) -> bool:
        return self._over or self.remaining() <= 0

    def remaining(self) -> float:
        return self._at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
            self._socket = sock.dup()
            if self._over:
                self._shutdown(self._socket)

    def connect(
        self,
        addresses: Iterable[str],
        port: int,
        timeout: float | None,
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:
        """A TCP connection to the first of ``addresses`` that answers (tried in order, as
        ``socket.create_connection`` does), each attempt within what is left of the deadline,
        and watched by it from then on; later reads and writes get the usual ``timeout``. The
        webhook sender (addresses checked beforehand) and the SMTP sender (the relay's name
        looked up within the deadline) both connect this way."""
        last_error: OSError | None = None
        for ip in addresses:
            left = self.remaining()
            if left <= 0:
                raise TimeoutError("deadline passed while connecting")
            try:
                sock = socket.create_connection(
                    (ip, port), left if timeout is None else min(timeout, left), source_address
                )
            except OSError as exc:  # try the next address, as create_connection itself does
                last_error = exc
                continue
            sock.settimeout(timeout)
            self.watch(sock)
            return sock
        raise last_error or OSError("no address to connect to")

    def _expire(self) -> None:
        with self._lock:
            self._over = True
            if self._socket is not None:
                self._shutdown(self._socket)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed by the peer: nothing left to end
            sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
