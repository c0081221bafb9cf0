"""The report server on a free port, in a thread of this process: it serves the reports folder's
files and nothing else (issue 13, case 7)."""

import urllib.error
import urllib.request

import pytest

from headwater.report_server import start_report_server


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def served(tmp_path):
    reports = tmp_path / "reports"
    (reports / "drift" / "2025-01-02").mkdir(parents=True)
    (reports / "drift" / "2025-01-02" / "report.html").write_text("<html>drift</html>")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (reports / "passwd.html").symlink_to(secret)
    (reports / "outside").symlink_to(tmp_path, target_is_directory=True)
    (reports / "latest.html").symlink_to(reports / "drift" / "2025-01-02" / "report.html")
    server, url = start_report_server(reports, port=0)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def test_a_report_is_served(served):
    assert _get(f"{served}/drift/2025-01-02/report.html") == (200, b"<html>drift</html>")
    # a link that stays inside the folder is an ordinary report
    assert _get(f"{served}/latest.html") == (200, b"<html>drift</html>")


@pytest.mark.parametrize("path", ["/passwd.html", "/outside/secret.txt", "/outside/"])
def test_no_symlink_is_followed_out_of_the_reports_folder(served, path):
    status, body = _get(served + path)
    assert status == 404 and b"root:x" not in body


@pytest.mark.parametrize("path", ["/", "/drift/", "/drift", "/drift/2025-01-02/"])
def test_no_directory_is_listed(served, path):
    status, body = _get(served + path)
    assert status in (403, 404) and b"2025-01-02" not in body and b"report.html" not in body
