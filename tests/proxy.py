"""A TCP proxy in front of the database server that a test can cut, restore, freeze and thaw."""

from __future__ import annotations

import contextlib
import socket
import threading


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._flowing = threading.Event()  # cleared while frozen
        self._flowing.set()
        #: Cut every connection once the clients have sent this many more chunks (see ``cut_after``).
        self._sends_left: int | None = None
        #: Connections the clients opened through the proxy so far.
        self.accepted = 0
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop every open one, like a network cut or a server restart."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def freeze(self) -> None:
        """Stop forwarding, both ways, on open and new connections alike: a server that hangs with TCP up.

        Connections are still accepted and nothing is closed; what was sent meanwhile is delivered on ``thaw``.
        """
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def cut_after(self, sends: int) -> None:
        """Forward ``sends`` more chunks from the clients (about one statement each), then cut everything."""
        with self._lock:
            self._sends_left = sends

    def _count_send(self) -> bool:
        """Count one chunk from a client; True when it must not go through because the cut is due."""
        with self._lock:
            if self._sends_left is None:
                return False
            self._sends_left -= 1
            due = self._sends_left < 0
            if due:
                self._sends_left = None
        if due:
            self.cut()
        return due

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b, counted in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, counted), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()
                if counted and self._count_send():
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
