"""`mlopsctl pr-comment`: one sticky comment per pull request, against a fake GitHub on 127.0.0.1.

The fake is a real HTTP server with state (comments per pull request, pagination by ``Link``
headers, bot and human authors), so the command is exercised over real sockets; no network.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

TOKEN = "ghs_secretTOKEN123"
REPO = "acme/churn"
BOT = {"login": "github-actions[bot]", "type": "Bot", "id": 41898282}
OTHER_BOT = {"login": "codecov[bot]", "type": "Bot", "id": 22429695}
HUMAN = {"login": "alice", "type": "User", "id": 1}


@dataclass
class FakeGitHub:
    """Issue comments of pull requests, as GitHub's REST API serves them (the few endpoints)."""

    token: str = TOKEN
    page_size: int = 100
    comments: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    fail: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)  # method -> error
    next_host: str = ""  # serve a next link on this host instead (a hostile API)
    _next_id: int = 1000
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, pr: int, user: dict[str, Any], body: str, repo: str = REPO) -> int:
        self._next_id += 1
        self.comments.setdefault((repo, pr), []).append(
            {
                "id": self._next_id,
                "user": dict(user),
                "body": body,
                "html_url": f"https://github.test/{repo}/pull/{pr}#issuecomment-{self._next_id}",
            }
        )
        return self._next_id

    def of(self, pr: int, repo: str = REPO) -> list[dict[str, Any]]:
        return self.comments.get((repo, pr), [])

    def count(self, method: str) -> int:
        return sum(1 for m, _p in self.requests if m == method)

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, doc: Any, headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                fake.requests.append((method, url.path))
                fake.auth.append(self.headers.get("Authorization", ""))
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"null") if length else None
                if method in fake.fail:
                    code, headers = fake.fail[method]
                    return self._send(code, {"message": f"fake error {code}"}, headers)
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self._send(401, {"message": "Bad credentials"})
                m = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", url.path)
                if m and (m.group(1), int(m.group(2))) not in fake.comments:
                    return self._send(404, {"message": "Not Found"})
                if m and method == "GET":
                    items = fake.comments[(m.group(1), int(m.group(2)))]
                    page = int(urllib.parse.parse_qs(url.query).get("page", ["1"])[0])
                    size = fake.page_size
                    chunk = items[(page - 1) * size : page * size]
                    headers = {}
                    if page * size < len(items):
                        host = fake.next_host or fake.url
                        headers["Link"] = (
                            f'<{host}{url.path}?per_page={size}&page={page + 1}>; rel="next", '
                            f'<{host}{url.path}?page={len(items) // size + 1}>; rel="last"'
                        )
                    return self._send(200, chunk, headers)
                if m and method == "POST":
                    new = fake.add(int(m.group(2)), BOT, payload["body"], repo=m.group(1))
                    return self._send(201, fake.find(new))
                m = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/comments/(\d+)", url.path)
                if m and method == "PATCH":
                    found = fake.find(int(m.group(2)))
                    if found is None:
                        return self._send(404, {"message": "Not Found"})
                    if found["user"]["login"] != BOT["login"]:
                        return self._send(403, {"message": "Resource not accessible"})
                    found["body"] = payload["body"]
                    return self._send(200, found)
                return self._send(404, {"message": "Not Found"})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # a short poll: shutdown() waits for the loop to notice (0.5 s per test by default)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def find(self, comment_id: int) -> dict[str, Any] | None:
        for items in self.comments.values():
            for c in items:
                if c["id"] == comment_id:
                    return c
        return None

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the caller's GitHub or proxy settings, plus *extra*."""
    drop = ("GITHUB_", "GH_", "RUNNER_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(drop) and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update({"NO_COLOR": "1", "DVC_NO_ANALYTICS": "1", "NO_PROXY": "127.0.0.1,localhost"})
    env.pop("CI", None)
    env.update(extra)
    return env


def github_env(fake: FakeGitHub, tmp: Path, pr: int | None = 7, **extra: str) -> dict[str, str]:
    env = {"GITHUB_TOKEN": fake.token, "GITHUB_API_URL": fake.url, "GITHUB_REPOSITORY": REPO}
    if pr is not None:
        event = tmp / "event.json"
        event.write_text(json.dumps({"action": "synchronize", "pull_request": {"number": pr}}))
        env["GITHUB_EVENT_PATH"] = str(event)
    env.update(extra)
    return clean_env(**env)


def pr_comment(
    tmp: Path, env: dict[str, str], *args: str, body: str | None = None
) -> subprocess.CompletedProcess[str]:
    if body is not None:
        (tmp / "plan.md").write_text(body, "utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "mlopsctl", "pr-comment", *(args or ("plan.md",))],
        cwd=tmp,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    return proc


PLAN_V1 = "<!-- mlopsctl:plan -->\n### mlopsctl plan\n\nPlan: 3 to run\n"
PLAN_V2 = "<!-- mlopsctl:plan -->\n### mlopsctl plan\n\nPlan: 1 to run\n"


def test_running_twice_updates_one_comment(github: FakeGitHub, tmp_path: Path) -> None:
    github.comments[(REPO, 7)] = []
    env = github_env(github, tmp_path)

    first = pr_comment(tmp_path, env, body=PLAN_V1)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    second = pr_comment(tmp_path, env, body=PLAN_V2)
    assert second.returncode == 0, second.stderr
    assert "updated" in second.stdout

    assert github.count("POST") == 1
    assert github.count("PATCH") == 1
    assert [c["body"] for c in github.of(7)] == [PLAN_V2]
    assert set(github.auth) == {f"Bearer {TOKEN}"}


def test_the_sticky_comment_is_found_on_a_later_page(github: FakeGitHub, tmp_path: Path) -> None:
    github.page_size = 2
    for i in range(4):
        github.add(7, HUMAN, f"review remark {i}")
    sticky = github.add(7, BOT, PLAN_V1)
    github.add(7, HUMAN, "looks good")

    proc = pr_comment(tmp_path, github_env(github, tmp_path), body=PLAN_V2)

    assert proc.returncode == 0, proc.stderr
    assert github.count("GET") == 3  # pages 1, 2, 3 through Link: rel="next"
    assert github.count("POST") == 0
    assert [m for m, _ in github.requests if m == "PATCH"] == ["PATCH"]
    assert github.find(sticky)["body"] == PLAN_V2  # type: ignore[index]


def test_comments_without_the_key_stay_untouched(github: FakeGitHub, tmp_path: Path) -> None:
    coverage = github.add(7, OTHER_BOT, "<!-- codecov -->\nCoverage: 91%")
    quoting = github.add(7, HUMAN, "> <!-- mlopsctl:plan -->\n> why does train run?")
    other_pr = github.add(8, BOT, PLAN_V1)

    proc = pr_comment(tmp_path, github_env(github, tmp_path), body=PLAN_V2)

    assert proc.returncode == 0, proc.stderr
    assert github.count("PATCH") == 0 and github.count("POST") == 1
    assert github.find(coverage)["body"] == "<!-- codecov -->\nCoverage: 91%"  # type: ignore[index]
    assert github.find(quoting)["body"].startswith("> <!--")  # type: ignore[index]
    assert github.find(other_pr)["body"] == PLAN_V1  # type: ignore[index]
    assert github.of(7)[-1]["body"] == PLAN_V2


def test_a_comment_deleted_meanwhile_is_posted_again(github: FakeGitHub, tmp_path: Path) -> None:
    github.add(7, BOT, PLAN_V1)
    github.fail["PATCH"] = (404, {})  # listed, then deleted before the update reached it
    proc = pr_comment(tmp_path, github_env(github, tmp_path), body=PLAN_V2)
    assert proc.returncode == 0, proc.stderr
    assert "created" in proc.stdout
    assert github.count("PATCH") == 1 and github.count("POST") == 1
    assert github.of(7)[-1]["body"] == PLAN_V2


def test_a_body_without_a_marker_gets_the_default_key(github: FakeGitHub, tmp_path: Path) -> None:
    github.comments[(REPO, 7)] = []
    env = github_env(github, tmp_path)
    assert pr_comment(tmp_path, env, body="plain text\n").returncode == 0
    assert pr_comment(tmp_path, env, body="plain text, again\n").returncode == 0
    assert [c["body"] for c in github.of(7)] == ["<!-- mlopsctl -->\nplain text, again\n"]


def test_pr_and_repo_options_override_the_event(github: FakeGitHub, tmp_path: Path) -> None:
    github.comments[("acme/other", 12)] = []
    env = github_env(github, tmp_path, pr=None)
    proc = pr_comment(tmp_path, env, "-", "--pr", "12", "--repo", "acme/other")
    assert proc.returncode == 1  # stdin was empty
    assert "is empty" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "mlopsctl", "pr-comment", "-", "--pr", "12", "--repo", "acme/other"],
        input=PLAN_V1,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert [c["body"] for c in github.of(12, repo="acme/other")] == [PLAN_V1]


def test_a_long_body_is_cut_to_githubs_limit(github: FakeGitHub, tmp_path: Path) -> None:
    github.comments[(REPO, 7)] = []
    rows = "".join(f"    s{i} --> s{i + 1}\n" for i in range(6000))
    body = f"<!-- mlopsctl:plan -->\n### plan\n\n```mermaid\ngraph LR\n{rows}```\n"
    assert len(body) > 65536

    proc = pr_comment(tmp_path, github_env(github, tmp_path), body=body)

    assert proc.returncode == 0, proc.stderr
    (posted,) = github.of(7)
    assert len(posted["body"]) <= 65536
    assert posted["body"].startswith("<!-- mlopsctl:plan -->\n")
    assert "cut to fit GitHub's limit" in posted["body"]
    fences = [ln for ln in posted["body"].splitlines() if ln.startswith("```")]
    assert len(fences) % 2 == 0  # the mermaid block is closed before the note


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (401, {}, "check GITHUB_TOKEN"),
        (403, {}, "permissions: pull-requests: write"),
        (403, {"X-RateLimit-Remaining": "0"}, "rate limit"),
        (404, {}, "no pull request #7 in acme/churn"),
        (500, {}, "could not list the comments"),
    ],
)
def test_api_errors_are_one_clear_message(
    github: FakeGitHub, tmp_path: Path, status: int, headers: dict[str, str], expected: str
) -> None:
    github.comments[(REPO, 7)] = []
    github.fail["GET"] = (status, headers)

    proc = pr_comment(tmp_path, github_env(github, tmp_path), body=PLAN_V1)

    assert proc.returncode == 1
    assert expected in proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1


def test_a_read_only_token_names_the_permission(github: FakeGitHub, tmp_path: Path) -> None:
    github.comments[(REPO, 7)] = []
    github.fail["POST"] = (403, {})
    proc = pr_comment(tmp_path, github_env(github, tmp_path), body=PLAN_V1)
    assert proc.returncode == 1
    assert "permissions: pull-requests: write" in proc.stderr
    assert "refused to comment" in proc.stderr


def test_a_wrong_token_is_never_printed(github: FakeGitHub, tmp_path: Path) -> None:
    github.comments[(REPO, 7)] = []
    env = github_env(github, tmp_path, GITHUB_TOKEN="ghs_wrongTOKEN999")
    proc = pr_comment(tmp_path, env, body=PLAN_V1)
    assert proc.returncode == 1
    assert "GitHub rejected the token (401: Bad credentials)" in proc.stderr
    assert "ghs_wrongTOKEN999" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        ("GITHUB_TOKEN", "GITHUB_TOKEN is not set"),
        ("GITHUB_REPOSITORY", "--repo OWNER/NAME"),
        ("GITHUB_EVENT_PATH", "no pull request number: pass --pr N"),
    ],
)
def test_missing_settings_name_what_to_set(
    github: FakeGitHub, tmp_path: Path, drop: str, expected: str
) -> None:
    env = github_env(github, tmp_path)
    env.pop(drop)
    proc = pr_comment(tmp_path, env, body=PLAN_V1)
    assert proc.returncode == 1
    assert expected in proc.stderr
    assert github.requests == []


def test_an_unreachable_api_is_one_message(github: FakeGitHub, tmp_path: Path) -> None:
    url = github.url
    github.stop()  # nothing listens on that port any more
    env = github_env(github, tmp_path, GITHUB_API_URL=url)
    proc = pr_comment(tmp_path, env, body=PLAN_V1)
    assert proc.returncode == 1
    assert f"cannot reach the GitHub API at {url}" in proc.stderr


def test_the_token_never_follows_a_link_to_another_host(github: FakeGitHub, tmp_path: Path) -> None:
    elsewhere = FakeGitHub(token="")
    elsewhere.start()
    try:
        github.page_size = 1
        github.add(7, HUMAN, "first")
        github.add(7, HUMAN, "second")
        github.next_host = elsewhere.url
        proc = pr_comment(tmp_path, github_env(github, tmp_path), body=PLAN_V1)
    finally:
        elsewhere.stop()
    assert proc.returncode == 1
    assert "refusing to send the token there" in proc.stderr
    assert elsewhere.requests == []


def test_a_missing_body_file_is_one_message(github: FakeGitHub, tmp_path: Path) -> None:
    proc = pr_comment(tmp_path, github_env(github, tmp_path), "nothing.md")
    assert proc.returncode == 1
    assert "nothing.md: no such file" in proc.stderr
    assert github.requests == []
