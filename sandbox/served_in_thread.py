"""A local HTTP server served from a daemon thread: the start/stop/with lifecycle the sandbox's
receivers (webhook_receiver.py, sentry_receiver.py) share. A subclass sets ``_server`` (an
http.server instance) and ``_thread = None`` in its __init__, and names its thread."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

Served = TypeVar("Served", bound="ServedInThread")


class ServedInThread:
    _server: Any
    _thread: threading.Thread | None
    THREAD_NAME = "http-server"

    def start(self: Served) -> Served:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=self.THREAD_NAME, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self: Served) -> Served:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()
