"""The commands of a distributed run, in one place: the namespace test runs them and the
deployment files (docker-compose.yml, deploy/k8s/) must spell the same ones (tested), so that
what was run here and what a team deploys cannot drift apart."""

from __future__ import annotations

from collections.abc import Sequence

DEPLOY_TARGET = "http://service:8000/health"
"""The target in the deployment files: the bundled service's name on their network."""
DEPLOY_MASTER_HOST = "master"
DEPLOY_BIND_HOST = "0.0.0.0"
DEPLOY_WORKERS = 2
DEPLOY_LOAD = ("--concurrency", "20", "--duration", "60")
DEPLOY_OUT = "/results/load.json"
DEPLOY_ENGINE = "native"


def master_command(
    *,
    target: str,
    engine: str,
    bind_host: str,
    workers: int,
    load: Sequence[str],
    out: str,
) -> list[str]:
    """``loadkit load`` as the master: waits for ``workers`` workers, writes ``out``."""
    return [
        *("loadkit", "load", target, "--engine", engine),
        *("--master", "--master-bind-host", bind_host, "--expect-workers", str(workers)),
        *load,
        *("--out", out),
    ]


def worker_command(*, engine: str, master_host: str) -> list[str]:
    """``loadkit load`` as a worker of the master at ``master_host``: the target and the load
    come from the master. A Locust worker names the master's scenario (a URL run's is ``url``)."""
    scenario = ("--scenario", "url") if engine == "locust" else ()
    return [
        "loadkit",
        "load",
        "--worker",
        "--engine",
        engine,
        *scenario,
        "--master-host",
        master_host,
    ]


def deployed_master() -> list[str]:
    """The master's command in docker-compose.yml and deploy/k8s/master.yaml."""
    return master_command(
        target=DEPLOY_TARGET,
        engine=DEPLOY_ENGINE,
        bind_host=DEPLOY_BIND_HOST,
        workers=DEPLOY_WORKERS,
        load=DEPLOY_LOAD,
        out=DEPLOY_OUT,
    )


def deployed_worker() -> list[str]:
    """A worker's command in docker-compose.yml and deploy/k8s/worker.yaml."""
    return worker_command(engine=DEPLOY_ENGINE, master_host=DEPLOY_MASTER_HOST)
