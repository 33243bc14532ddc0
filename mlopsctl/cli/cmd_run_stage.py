"""`mlopsctl run-stage USECASE/STAGE`: the command dvc.yaml runs for a built-in stage."""

from __future__ import annotations

import json

import click

from mlopsctl.cli.main import settings


@click.command(name="run-stage", hidden=True)
@click.argument("stage_id")
@click.option("--env", "env", default="", help="Environment the stage was compiled for.")
@click.pass_context
def run_stage(ctx: click.Context, stage_id: str, env: str) -> int:
    """Run one stage of the compiled graph in this process (as `dvc repro` does)."""
    from mlopsctl.compile.environment import environment, parse_env_arg
    from mlopsctl.compile.graph import compile_project
    from mlopsctl.errors import MlopsctlError, did_you_mean
    from mlopsctl.execute.task import StageJob, run_job
    from mlopsctl.spec.loader import find_project_root, load_project

    root = find_project_root(settings(ctx).directory)
    project = load_project(root)
    graph = compile_project(project)
    if stage_id not in graph.stages:
        hint = did_you_mean(stage_id, graph.stages)
        raise MlopsctlError(f"no stage '{stage_id}'" + (f" ({hint})" if hint else ""))
    if env:
        wanted, have = parse_env_arg(env), environment()
        diff = [
            f"{k} {v} (compiled) vs {have.get(k)} (here)"
            for k, v in wanted.items()
            if have.get(k) != v
        ]
        if diff:
            click.echo("warning: environment differs from dvc.yaml: " + "; ".join(diff), err=True)
    st = graph.stages[stage_id]
    uc = project.usecase(st.usecase).spec
    n_jobs = uc.infra.n_jobs
    result = run_job(
        StageJob(
            str(root), st, uc, n_jobs if n_jobs > 0 else 1, project.config.allowed_estimator_modules
        )
    )
    if not result.ok:
        raise MlopsctlError(f"{stage_id} failed: {result.message}")
    summary = json.dumps(result.summary, sort_keys=True, default=str)
    click.echo(f"{stage_id}: ok ({result.seconds:.1f}s) {summary}")
    return 0
