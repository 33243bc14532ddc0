"""One sticky pull-request comment, posted or updated through GitHub's REST API.

Plain :mod:`urllib`, no client library: three endpoints (list, create and update an issue
comment) do not justify a dependency. The comment is found again by its *key*, the hidden HTML
comment on the body's first line (``<!-- mlopsctl:plan -->``); each push to the pull request then
updates that one comment instead of adding another.

The token goes only to the API host it was meant for: it is never sent along a redirect nor to a
pagination link on another host, and it never appears in a message.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsctl import __version__
from mlopsctl.errors import MlopsctlError

DEFAULT_API = "https://api.github.com"
DEFAULT_KEY = "<!-- mlopsctl -->"
# GitHub refuses an issue comment longer than this (HTTP 422, "body is too long")
MAX_BODY = 65536
TRUNCATED = (
    "\n\n---\n*This comment was cut to fit GitHub's limit of {limit} characters; "
    "the full text is in the job's log.*\n"
)
PERMISSION_HINT = (
    "give the job `permissions: pull-requests: write` (a pull request from a fork gets a "
    "read-only token: skip the comment there)"
)
_KEY = re.compile(r"<!--.*-->")
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class GitHubError(MlopsctlError):
    """The GitHub API could not be reached, or refused the request (*status*: its HTTP code)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Target:
    """Where the comment goes: the API, the repository, the pull request, and the token."""

    api: str
    repo: str
    pr: int
    token: str = field(repr=False)


@dataclass(frozen=True)
class Posted:
    action: str  # "created" | "updated"
    id: int
    url: str


def sticky_body(body: str) -> tuple[str, str]:
    """The key that identifies the comment, and the body that carries it on its first line.

    The key is the body's first line when that line is an HTML comment; otherwise
    :data:`DEFAULT_KEY` is put in front of the body.
    """
    first = body.split("\n", 1)[0].strip()
    if _KEY.fullmatch(first):
        return first, body
    return DEFAULT_KEY, f"{DEFAULT_KEY}\n{body}"


def fit(body: str, limit: int = MAX_BODY) -> str:
    """*body*, cut with a note when it is longer than *limit* characters.

    A cut inside a fenced code block (a mermaid graph) closes the fence, so that the note is not
    rendered as code.
    """
    if len(body) <= limit:
        return body
    note = TRUNCATED.format(limit=limit)
    kept = body[: limit - len(note) - len("\n```")]
    kept = kept[: kept.rfind("\n") + 1] if "\n" in kept else kept  # never cut a line in half
    fences = sum(1 for line in kept.splitlines() if line.lstrip().startswith("```"))
    if fences % 2:
        kept += "```"
    return kept.rstrip("\n") + note


def target_from_env(
    env: Mapping[str, str], pr: int | None = None, repo: str | None = None
) -> Target:
    """The target from options and the variables GitHub Actions sets, or a :class:`GitHubError`
    that names what to set."""
    token = env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or ""
    if not token:
        raise GitHubError(
            "GITHUB_TOKEN is not set: pass the job's token to the step "
            "(env: GITHUB_TOKEN: ${{ github.token }}) and " + PERMISSION_HINT
        )
    api = (env.get("GITHUB_API_URL") or DEFAULT_API).rstrip("/")
    if urllib.parse.urlsplit(api).scheme not in ("http", "https"):
        raise GitHubError(f"GITHUB_API_URL must be an http(s) URL, not {api!r}")
    repo = repo or env.get("GITHUB_REPOSITORY") or ""
    if not repo:
        raise GitHubError("no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY")
    if not _REPO.match(repo):
        raise GitHubError(f"--repo must be OWNER/NAME, not {repo!r}")
    if pr is None:
        pr = _event_pr(env.get("GITHUB_EVENT_PATH", ""))
    return Target(api=api, repo=repo, pr=pr, token=token)


def _event_pr(event_path: str) -> int:
    missing = (
        "no pull request number: pass --pr N, or run on a pull_request event "
        "(GITHUB_EVENT_PATH names the event file)"
    )
    if not event_path:
        raise GitHubError(missing)
    try:
        event = json.loads(Path(event_path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise GitHubError(f"cannot read the event file {event_path}: {exc}") from None
    number = None
    if isinstance(event, dict):
        pull = event.get("pull_request")
        number = pull.get("number") if isinstance(pull, dict) else event.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise GitHubError(missing + f"; {event_path} has no pull_request.number")
    return number


class Client:
    """The few REST calls the sticky comment needs, with errors turned into one-line messages."""

    def __init__(self, target: Target, timeout: float = 30.0) -> None:
        self.target = target
        self.timeout = timeout
        self._opener = urllib.request.build_opener()  # urllib's defaults: proxies from env

    def url(self, path: str) -> str:
        return f"{self.target.api}{path}"

    def call(
        self, method: str, url: str, payload: Mapping[str, Any] | None = None, what: str = ""
    ) -> tuple[Any, Mapping[str, str]]:
        """One request; the decoded JSON answer and the response headers."""
        if not _same_origin(url, self.target.api):
            raise GitHubError(
                f"the GitHub API pointed to {_origin(url)}, not {_origin(self.target.api)}: "
                "refusing to send the token there"
            )
        data = json.dumps(payload).encode("utf-8") if payload is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/vnd.github+json")
        req.add_header("X-GitHub-Api-Version", "2022-11-28")
        req.add_header("User-Agent", f"mlopsctl/{__version__}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        # unredirected: urllib would copy an ordinary header onto a redirect to any host
        req.add_unredirected_header("Authorization", f"Bearer {self.target.token}")
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                raw = resp.read()
                headers = {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as exc:
            message = self._scrub(self._http_error(exc, what or method))
            raise GitHubError(message, status=exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise GitHubError(
                self._scrub(
                    f"cannot reach the GitHub API at {self.target.api}: {reason} "
                    "(check GITHUB_API_URL and the network)"
                )
            ) from None
        try:
            return (json.loads(raw) if raw.strip() else None), headers
        except ValueError:
            raise GitHubError(
                f"the GitHub API at {self.target.api} answered {method} {_path(url)} "
                "with something that is not JSON (check GITHUB_API_URL)"
            ) from None

    def _http_error(self, exc: urllib.error.HTTPError, what: str) -> str:
        t = self.target
        detail = _api_message(exc)
        status = f"{exc.code}{': ' + detail if detail else ''}"
        if exc.code == 401:
            return f"GitHub rejected the token ({status}): check GITHUB_TOKEN"
        if exc.code == 403 and exc.headers.get("X-RateLimit-Remaining") == "0":
            return f"GitHub's rate limit is exhausted ({status}): run the job again later"
        if exc.code == 403:
            return f"GitHub refused to {what} on {t.repo}#{t.pr} ({status}): {PERMISSION_HINT}"
        if exc.code == 404:
            return (
                f"GitHub found no pull request #{t.pr} in {t.repo} ({status}): check --repo and "
                "--pr; a token that may not see the repository gets 404 too, so check "
                "GITHUB_TOKEN and `permissions: pull-requests: write`"
            )
        return f"GitHub could not {what} on {t.repo}#{t.pr} ({status})"

    def _scrub(self, text: str) -> str:
        return text.replace(self.target.token, "***") if self.target.token else text

    # --- the three calls ------------------------------------------------------------------

    def comments(self) -> list[dict[str, Any]]:
        """Every comment of the pull request's conversation, following ``Link: rel=next``."""
        t = self.target
        url: str | None = self.url(f"/repos/{t.repo}/issues/{t.pr}/comments?per_page=100")
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        while url and url not in seen:  # a server that links a page to itself ends here
            seen.add(url)
            page, headers = self.call("GET", url, what="list the comments")
            if not isinstance(page, list):
                raise GitHubError(f"unexpected answer listing the comments of {t.repo}#{t.pr}")
            out.extend(c for c in page if isinstance(c, dict))
            url = next_link(headers.get("link", ""))
        return out

    def create(self, body: str) -> dict[str, Any]:
        t = self.target
        url = self.url(f"/repos/{t.repo}/issues/{t.pr}/comments")
        answer, _h = self.call("POST", url, {"body": body}, what="comment")
        return answer if isinstance(answer, dict) else {}

    def update(self, comment_id: int, body: str) -> dict[str, Any]:
        url = self.url(f"/repos/{self.target.repo}/issues/comments/{comment_id}")
        answer, _h = self.call("PATCH", url, {"body": body}, what="update the comment")
        return answer if isinstance(answer, dict) else {}


def next_link(link: str) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, or None."""
    for part in link.split(","):
        m = _NEXT.search(part)
        if m:
            return m.group(1).strip()
    return None


def find_sticky(comments: Sequence[Mapping[str, Any]], key: str) -> Mapping[str, Any] | None:
    """The comment to update: the first by a bot that contains *key*, else the first that starts
    with it. A person's reply that merely quotes the key is never taken over."""
    with_key = [c for c in comments if key in str(c.get("body") or "")]
    by_bot = [c for c in with_key if _is_bot(c)]
    if by_bot:
        return by_bot[0]
    for c in with_key:
        if str(c.get("body") or "").lstrip().startswith(key):
            return c
    return None


def post_sticky(target: Target, body: str, client: Client | None = None) -> Posted:
    """Update the pull request's comment that carries *body*'s key, or create it."""
    key, body = sticky_body(body)
    body = fit(body)
    client = client or Client(target)
    found = find_sticky(client.comments(), key)
    if found is not None and isinstance(found.get("id"), int):
        try:
            answer = client.update(found["id"], body)
            url = str(answer.get("html_url") or found.get("html_url"))
            return Posted("updated", found["id"], url)
        except GitHubError as exc:
            if exc.status != 404:
                raise
            # deleted since it was listed: post a new one
    answer = client.create(body)
    return Posted("created", int(answer.get("id") or 0), str(answer.get("html_url") or ""))


def read_body(path: Path | None, stdin: str = "") -> str:
    """The comment body from *path* (None: *stdin*), or a :class:`GitHubError` saying why not."""
    if path is None:
        text = stdin
        where = "standard input"
    else:
        where = str(path)
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            raise GitHubError(f"{path}: no such file (the comment body)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise GitHubError(f"cannot read the comment body {path}: {exc}") from None
    if not text.strip():
        raise GitHubError(f"the comment body ({where}) is empty")
    return text


def _is_bot(comment: Mapping[str, Any]) -> bool:
    user = comment.get("user")
    return isinstance(user, dict) and (
        user.get("type") == "Bot" or str(user.get("login", "")).endswith("[bot]")
    )


def _api_message(exc: urllib.error.HTTPError) -> str:
    try:
        doc = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        doc = {}
    message = doc.get("message") if isinstance(doc, dict) else None
    text = str(message) if message else (exc.reason or "")
    return " ".join(str(text).split())[:200]


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _same_origin(url: str, api: str) -> bool:
    return _origin(url).lower() == _origin(api).lower()


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path
