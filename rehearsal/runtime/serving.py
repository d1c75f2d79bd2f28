"""A loopback HTTP server on a background thread: what the gateway and the control plane run on."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """Serves `handler` on 127.0.0.1 (port 0: any free port) until `stop()`; binding errors propagate."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, port: int, name: str) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, free the port and wait for the serving thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
