"""A TLS front for a fake server: AMI over TLS (port 5039 on Asterisk) for tests."""
from __future__ import annotations

import logging
import socket
import ssl
import threading
from typing import List, Optional, Tuple

__all__ = ["TLSFront"]

logger = logging.getLogger("amiclient.testing.tls")


class TLSFront:
    """Accepts TLS connections on loopback and relays the plain bytes to ``backend`` (host, port).

    ``context`` is a server-side ``ssl.SSLContext`` with its certificate
    loaded.  Context manager; ``stop()`` closes every socket and joins every
    thread.
    """

    def __init__(self, backend: Tuple[str, int], context: ssl.SSLContext, host: str = "127.0.0.1") -> None:
        self.backend = backend
        self.context = context
        self._listener = socket.create_server((host, 0))
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._threads: List[threading.Thread] = []
        self._sockets: List[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._acceptor: Optional[threading.Thread] = None

    def start(self) -> TLSFront:
        """Start accepting (once)."""
        if self._acceptor is None:
            self._acceptor = threading.Thread(target=self._accept_loop, name="tls-front-accept")
            self._acceptor.start()
        return self

    def stop(self) -> None:
        """Close the listener and every relayed connection; join every thread.  Idempotent."""
        with self._lock:
            self._stopping = True
            sockets, self._sockets = self._sockets, []
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for sock in sockets:
            _close(sock)
        if self._acceptor is not None:
            self._acceptor.join(5)
        for thread in list(self._threads):
            thread.join(5)

    def __enter__(self) -> TLSFront:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            try:
                raw.settimeout(5)
                tls = self.context.wrap_socket(raw, server_side=True)
                tls.settimeout(None)
                plain = socket.create_connection(self.backend, timeout=5)
                plain.settimeout(None)
            except (OSError, ssl.SSLError) as exc:
                logger.info("TLS front: connection failed: %s", exc)
                _close(raw)
                continue
            with self._lock:
                if self._stopping:
                    _close(tls)
                    _close(plain)
                    return
                self._sockets += [tls, plain]
                for source, target in ((tls, plain), (plain, tls)):
                    thread = threading.Thread(target=_pump, args=(source, target), name="tls-front-pump")
                    self._threads.append(thread)
                    thread.start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except (OSError, ssl.SSLError):
        pass
    finally:
        _close(source)
        _close(target)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass
    sock.close()
