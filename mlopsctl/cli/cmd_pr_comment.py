"""`mlopsctl pr-comment BODY_FILE [--pr N] [--repo OWNER/NAME]`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mlopsctl.cli.main import settings


@click.command("pr-comment")
@click.argument(
    "body_file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), metavar="FILE"
)
@click.option(
    "--pr",
    type=click.IntRange(min=1),
    help="Pull request number [default: from GITHUB_EVENT_PATH's pull_request.number].",
)
@click.option(
    "--repo",
    metavar="OWNER/NAME",
    help="Repository [default: GITHUB_REPOSITORY].",
)
@click.pass_context
def pr_comment(ctx: click.Context, body_file: Path, pr: int | None, repo: str | None) -> int:
    """Post FILE as the pull request's sticky comment, or update it (`-`: standard input).

    The comment is found again by the hidden HTML comment on FILE's first line (`plan --format
    markdown` writes one), so each push updates one comment. Needs GITHUB_TOKEN with
    `pull-requests: write`; GITHUB_API_URL and GITHUB_REPOSITORY as GitHub Actions sets them.
    """
    from mlopsctl.gitops.github import post_sticky, read_body, target_from_env

    if str(body_file) == "-":
        body = read_body(None, sys.stdin.read())
    else:
        body = read_body(settings(ctx).directory / body_file)
    target = target_from_env(os.environ, pr=pr, repo=repo)
    posted = post_sticky(target, body)
    click.echo(f"{posted.action} comment on {target.repo}#{target.pr}: {posted.url}")
    return 0
