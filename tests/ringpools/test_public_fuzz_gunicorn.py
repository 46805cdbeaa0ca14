"""The public endpoints behind a real gunicorn, spoken to over raw sockets: thousands of requests with
hostile headers, methods, framing and bodies, then the same endpoints with a Redis that hangs and with
the database gone. Never a 5xx but the designed 503s, never an HTML error page, never a traceback in
the log (SPEC §3.7). Production settings, gunicorn started as the README starts it."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.ringpools.test_ratelimit import HangingRedis

pytestmark = pytest.mark.own_settings
ROOT = Path(__file__).resolve().parents[2]
KEY = "rp_fuzz"
ORIGIN = "https://www.example.com"
CASES = 2500

SETUP = f"""
from accounts.models import Account
from ringpools.models import Campaign, DestinationNumber, PromoNumber, RingPool
from django.utils import timezone
account = Account.objects.create(name="Fuzz", slug="fuzz")
pool = RingPool.objects.create(account=account, name="P", key="{KEY}", allowed_origins=["{ORIGIN}"],
    campaign=Campaign.objects.create(account=account, name="C"),
    destination_number=DestinationNumber.objects.create(account=account, number="+18055550100"))
for n in range(40):
    PromoNumber.objects.create(account=account, pool=pool, number=f"+1805555{{n + 110:04d}}",
                               number_type="local", acquired_at=timezone.now())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    log: Path

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=30)
        return self.log.read_text(errors="replace")


def production_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RINGPOOL_", "DATABASE_URL", "DEBUG"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY="fuzz-" + "x" * 60,
        RINGPOOL_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        RINGPOOL_DATA_DIR=str(tmp),
        DATABASE_URL=f"sqlite:///{tmp / 'fuzz.sqlite3'}",
        ALLOWED_HOSTS="ringpool.example,127.0.0.1",
        RINGPOOL_RATE_LIMIT_URL="local",
        CELERY_BROKER_URL="memory://",
    )
    env.update(extra)
    return env


def start(tmp: Path, name: str, **extra: str) -> Server:
    port, log = free_port(), tmp / f"{name}.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:config.gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--log-level",
            "info",
        ],
        cwd=ROOT,
        env=production_env(tmp, **extra),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return Server(port, process, log)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"gunicorn did not start: {log.read_text()}")


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("fuzz")
    deploy = (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"])
    for args in (*deploy, ["shell", "--no-imports", "-c", SETUP]):
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=production_env(tmp),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    return tmp


@pytest.fixture(scope="module")
def server(database) -> Iterator[Server]:
    running = start(database, "healthy")
    yield running
    running.stop()


@dataclass
class Answer:
    status: int | None  # None: the server closed the connection without answering
    headers: dict[str, str]
    body: bytes


def exchange(port: int, raw: bytes) -> Answer:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # the server refused and closed before reading it all
            pass
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    if not data:
        return Answer(None, {}, b"")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunked(body)
    return Answer(int(lines[0].split()[1]), headers, body)


def dechunked(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2 :]
    return out


def request(
    method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"", version: str = "HTTP/1.1"
) -> bytes:
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1", "replace") + body


def chunked(body: bytes, rng: random.Random) -> bytes:
    out, at = b"", 0
    while at < len(body):
        size = min(rng.randint(1, 40), len(body) - at)
        out += f"{size:x}\r\n".encode() + body[at : at + size] + b"\r\n"
        at += size
    return out + b"0\r\n\r\n"


PATHS = [
    f"/api/v1/ringpools/{KEY}/numbers",
    f"/api/v1/ringpools/{KEY}/numbers/release",
    "/api/v1/ringpools/rp_nope/numbers",
    f"/api//v1/ringpools/{KEY}/numbers",
    f"/API/V1/ringpools/{KEY}/numbers",
    f"/api/v1/ringpools/{KEY}/numbers/",
    "/api/v1/ringpools/%00%ff/numbers",
    "/api/v1/" + "a" * 3000,
    f"/tag/{KEY}.js",
    f"/tag/{KEY}.JS",
    "/tag/%0a%0d.js",
    "/tag/",
    "/webhooks/calls",
    "/webhooks/calls?To=%2B18055550110",
    "/healthz",
    "/healthz/",
    "/livez",
    "/api/v1/ringpools/é/numbers",
]
METHODS = ["GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "TRACE", "FOO", "get", "CONNECT"]
HOSTS = [
    "ringpool.example",
    "127.0.0.1",
    "",
    "@evil.example",
    "[::1",
    "a/b",
    "exa_mple.com",
    "x.example, y.example",
]
HOSTS += ["evil.example", "ringpool.example:99999", "é.example", "a" * 300]
FORWARDED = [
    "203.0.113.7",
    "unknown",
    "not-an-ip",
    "999.1.1.1",
    "1.2.3.4%eth0",
    "2001:db8::1",
    "[2001:db8::2]:443",
]
FORWARDED += ["10.0.0.1, 203.0.113.9", "", "a" * 500]
BODIES = [
    b'{"visitor_id": "visitor-0001", "page_url": "https://www.example.com/"}',
    b'{"visitor_id": "visitor-0002", "new_visitor": true}',
    b"{}",
    b"[]",
    b"not json",
    b"\xff\xfe\x00garbage",
    b'{"visitor_id": "' + b"v" * 20000 + b'"}',
    b"[" * 5000 + b"]" * 5000,
    b"To=%2B18055550110&CallSid=CA1&To=%2B18055550111",
    b'{"visitor_id": "\\ud800ab-cdefgh"}',
    b"",
]
CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "",
]
CONTENT_TYPES += ["multipart/form-data; boundary=x", "application/json; charset=latin-1", "text/html"]


def case(rng: random.Random) -> bytes:
    method, path = rng.choice(METHODS), rng.choice(PATHS)
    body = rng.choice(BODIES)
    headers: list[tuple[str, str]] = []
    host = rng.choice(HOSTS) if rng.random() < 0.5 else "ringpool.example"
    if rng.random() < 0.97:
        headers.append(("Host", host))
    if rng.random() < 0.05:
        headers.append(("Host", rng.choice(HOSTS)))  # twice
    if rng.random() < 0.9:
        headers.append(("X-Forwarded-Proto", "https"))
    headers.append(("X-Forwarded-For", rng.choice(FORWARDED)))
    if rng.random() < 0.4:
        headers.append(("Origin", rng.choice([ORIGIN, "https://evil.example", "null", "", "x" * 200])))
    if rng.random() < 0.3:
        headers.append(("Access-Control-Request-Method", rng.choice(["POST", "GET", "x"])))
    headers.append(("Content-Type", rng.choice(CONTENT_TYPES)))
    if rng.random() < 0.2:
        headers.append(("X-Twilio-Signature", rng.choice(["", "abc", "=" * 50])))
    if rng.random() < 0.1:
        headers.append(
            (rng.choice(["X-Weird", "Cookie", "Accept", "User-Agent"]), "\xe9\xff" * rng.randint(1, 50))
        )
    if rng.random() < 0.03:
        headers += [(f"X-Many-{n}", "y") for n in range(rng.choice([50, 150]))]
    if rng.random() < 0.03:
        headers.append(("X-Long", "z" * rng.choice([5000, 9000])))
    if rng.random() < 0.03:
        headers.append(("Bad Header Name", "x"))
    framing = rng.random()
    if framing < 0.6:
        headers.append(("Content-Length", str(len(body))))
    elif framing < 0.75:
        headers.append(("Transfer-Encoding", "chunked"))
        body = chunked(body, rng) if rng.random() < 0.8 else b"zz\r\nbroken\r\n"
    elif framing < 0.8:
        headers.append(
            ("Content-Length", rng.choice(["-1", "abc", "99999999999", str(len(body) + 10), "1, 2"]))
        )
    elif framing < 0.85:
        headers += [("Content-Length", str(len(body))), ("Transfer-Encoding", "chunked")]
    elif framing < 0.9:
        headers.append(("Transfer-Encoding", rng.choice(["gzip", "chunked, gzip", "identity"])))
    else:
        body = b""
    version = (
        "HTTP/1.1" if rng.random() < 0.95 else rng.choice(["HTTP/1.0", "HTTP/2.0", "HTTP/9", "http/1.1"])
    )
    if rng.random() < 0.02:
        return rng.randbytes(rng.randint(1, 300))  # not HTTP at all
    return request(method, path, headers, body, version)


def assert_designed(answer: Answer, raw: bytes) -> None:
    if answer.status is None:
        return  # gunicorn closes a connection that never became a request: no answer, no error
    content_type = answer.headers.get("content-type", "")
    assert answer.status < 500 or answer.status in (501, 503), (answer.status, answer.body[:300], raw[:300])
    if answer.status == 503:
        assert json.loads(answer.body)["error"] in ("busy", "unavailable"), raw[:300]
    if answer.status >= 400 and answer.body:
        assert not content_type.startswith("text/html"), (answer.status, answer.body[:300], raw[:300])
        assert content_type.startswith(("application/json", "text/javascript")), (content_type, raw[:300])


def test_thousands_of_hostile_requests_get_designed_answers_and_no_traceback(server):
    rng = random.Random(19)
    statuses: dict[int | None, int] = {}
    for _n in range(CASES):
        raw = case(rng)
        answer = exchange(server.port, raw)
        assert_designed(answer, raw)
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
    # The hand-out itself was reached, and so were the refusals of every kind.
    assert statuses.get(200, 0) > 50 and statuses.get(400, 0) > 100 and statuses.get(404, 0) > 50
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log
    assert "Internal Server Error" not in log


def test_a_chunked_body_is_read(server):
    rng = random.Random(7)
    body = json.dumps({"visitor_id": "chunked-visitor-1"}).encode()
    answer = exchange(
        server.port,
        request(
            "POST",
            f"/api/v1/ringpools/{KEY}/numbers",
            [
                ("Host", "ringpool.example"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-For", "203.0.113.77"),
                ("Content-Type", "application/json"),
                ("Transfer-Encoding", "chunked"),
            ],
            chunked(body, rng),
        ),
    )
    assert answer.status == 200 and json.loads(answer.body)["kind"] == "promo"


def test_gunicorns_own_refusals_are_json(server):
    for raw in (b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n", b"G\x00T / HTTP/1.1\r\n\r\n"):
        answer = exchange(server.port, raw)
        assert answer.status == 400 and answer.headers["content-type"] == "application/json"
        assert json.loads(answer.body)["error"] == "bad_request"


def public_requests() -> list[tuple[str, bytes]]:
    base = [("Host", "ringpool.example"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-For", "203.0.113.50")]
    visitor = json.dumps({"visitor_id": "outage-visitor-1"}).encode()
    json_post = [("Content-Type", "application/json"), ("Content-Length", str(len(visitor)))]
    form = b"CallSid=CA1&To=%2B18055550110"
    return [
        ("api", request("POST", f"/api/v1/ringpools/{KEY}/numbers", base + json_post, visitor)),
        ("release", request("POST", f"/api/v1/ringpools/{KEY}/numbers/release", base + json_post, visitor)),
        (
            "preflight",
            request(
                "OPTIONS",
                f"/api/v1/ringpools/{KEY}/numbers",
                [*base, ("Origin", ORIGIN), ("Access-Control-Request-Method", "POST")],
            ),
        ),
        (
            "preflight without origin",
            request(
                "OPTIONS",
                f"/api/v1/ringpools/{KEY}/numbers",
                [*base, ("Access-Control-Request-Method", "POST")],
            ),
        ),
        (
            "webhook",
            request(
                "POST",
                "/webhooks/calls",
                [
                    *base,
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    ("Content-Length", str(len(form))),
                ],
                form,
            ),
        ),
        ("tag", request("GET", f"/tag/{KEY}.js", base)),
        ("health", request("GET", "/healthz", base)),
        ("sign-in page", request("GET", "/account/sign-in/", base)),
        ("settings", request("GET", "/settings/", [*base, ("Cookie", "sessionid=" + "k" * 32)])),
    ]


def test_with_the_database_gone_every_endpoint_answers_its_designed_503(database):
    gone = start(database, "database-gone", DATABASE_URL="sqlite:////nonexistent/ringpool/gone.sqlite3")
    try:
        answers = {name: exchange(gone.port, raw) for name, raw in public_requests()}
    finally:
        gone.stop()
    for name, answer in answers.items():
        if name == "sign-in page":  # drawn without the database: the form still shows
            assert answer.status == 200, name
            continue
        assert answer.status == 503, (name, answer.status, answer.body[:200])
        kind = answer.headers["content-type"]
        if name == "tag":
            assert kind.startswith("text/javascript")
        elif name == "health":  # the health check's own answer
            assert json.loads(answer.body)["status"] == "unavailable"
        elif name == "settings":
            assert kind.startswith("text/html") and b"RingPool cannot answer right now" in answer.body
        else:
            assert kind == "application/json" and json.loads(answer.body)["error"] == "unavailable", name


def test_with_redis_hanging_the_api_answers_and_redis_is_asked_once_per_cool_off(database):
    hanging = HangingRedis()
    stalled = start(
        database,
        "redis-hanging",
        RINGPOOL_RATE_LIMIT_URL=hanging.url,
        RINGPOOL_RATE_LIMIT_REDIS_COOL_OFF_SECONDS="3600",
    )
    try:
        base = [("Host", "ringpool.example"), ("X-Forwarded-Proto", "https")]
        answers = []
        for n in range(200):
            body = json.dumps({"visitor_id": f"hang-visitor-{n % 20:03d}"}).encode()
            headers = [*base, ("X-Forwarded-For", f"203.0.113.{n % 50}")]
            headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            answers.append(
                exchange(stalled.port, request("POST", f"/api/v1/ringpools/{KEY}/numbers", headers, body))
            )
        log = stalled.stop()
    finally:
        hanging.close()
    assert [a.status for a in answers] == [200] * 200
    # Each of the two workers waited for the hanging Redis once, then counted on its own.
    assert len(hanging.connections) <= 2
    assert log.count("rate limits counted in this process") <= 2
