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
