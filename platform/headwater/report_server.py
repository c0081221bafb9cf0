"""Serve the monitoring reports folder over HTTP, so the Dagster UI can link to a report.

Browsers refuse to open file:// links from an http:// page, so a report's path in asset
metadata is not one click away; a URL under `HEADWATER_REPORTS_URL` is. `headwater dev` starts
this server beside `dagster dev` and passes the URL on in the environment. It is the standard
library's file server, narrowed: read-only, one folder, files only (a directory is a 404, never a
listing), no escapes (`..` is resolved inside the folder, and a symbolic link that leads out of it
is a 404), meant for a developer's machine and bound to the UI's host.
"""

from __future__ import annotations

import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from headwater_core.config import reports_dir

__all__ = ["reports_dir", "report_url", "start_report_server"]


class _QuietHandler(SimpleHTTPRequestHandler):
    """A file handler for the reports folder's files only, that does not write a line per
    request to `headwater dev`'s terminal."""

    def send_head(self):
        # `translate_path` resolves `..` inside the folder but follows symbolic links; the
        # real path must still be a file under the folder's real path.
        folder = os.path.realpath(self.directory)
        path = os.path.realpath(self.translate_path(self.path))
        if os.path.commonpath([folder, path]) != folder or not os.path.isfile(path):
            self.send_error(404, "File not found")
            return None
        return super().send_head()

    def list_directory(self, path):  # never reached through send_head; refused all the same
        self.send_error(404, "File not found")
        return None

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass


def report_url(host: str, port: int) -> str:
    """The base URL a browser uses for a server bound to `host`:`port`."""
    # A wildcard bind is reachable on loopback; not every browser opens http://0.0.0.0.
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def start_report_server(
    folder: Path | str, host: str = "127.0.0.1", port: int = 3001
) -> tuple[ThreadingHTTPServer, str]:
    """Serve `folder` (created if absent) on `host`:`port` from a daemon thread.

    Returns the server (stop it with `shutdown()` then `server_close()`) and its base URL.
    Port 0 picks a free port; the URL names the one bound. An address in use raises OSError.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer((host, port), handler)
    # Request threads must not keep the process alive once `headwater dev` is done.
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, name="headwater-report-server", daemon=True
    )
    thread.start()
    return server, report_url(host, server.server_address[1])
