"""gunicorn's configuration for the web app: `gunicorn -c python:config.gunicorn config.wsgi:application`.

gunicorn answers a request it cannot parse (a malformed request line, header or chunked framing, too
many or too long headers) itself, before Django sees it, with a small HTML page. Every public
endpoint answers its errors in JSON (SPEC §3.7), and so does gunicorn here: the same status, a JSON
body naming what was wrong. gunicorn has no setting for it; its workers write the page through
`gunicorn.util.write_error`, which this module, loaded by the master before it forks the workers,
replaces. (The browser-facing pages never see these: a browser does not send malformed HTTP.)
"""

from __future__ import annotations

import json
import socket

from gunicorn import util

_gunicorn_write_error = util.write_error


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    body = json.dumps({"error": "bad_request" if status_int < 500 else "server_error", "detail": mesg[:200]})
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "Cache-Control: no-store\r\n"
        f"Content-Length: {len(body.encode())}\r\n\r\n"
    )
    util.write_nonblock(sock, (head + body).encode("latin-1", "replace"))


util.write_error = write_json_error
