"""The deployment files (Dockerfile, docker-compose.yml, deploy/k8s/) cannot run on this machine
(no container daemon): they are parsed here and must run the very commands the namespace test
runs (tests/e2e/distributed_commands.py), with options loadkit's own CLI accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml

from loadkit.cli import app
from loadkit.defaults import DEFAULT_MASTER_PORT
from tests.e2e.distributed_commands import (
    DEPLOY_MASTER_HOST,
    DEPLOY_OUT,
    DEPLOY_TARGET,
    DEPLOY_WORKERS,
    deployed_master,
    deployed_worker,
)

REPO = Path(__file__).resolve().parents[2]
TARGET = urlsplit(DEPLOY_TARGET)
SERVE = ["loadkit", "serve", "--host", "0.0.0.0", "--port", str(TARGET.port)]


def documents(path: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all((REPO / path).read_text()) if d]
    return docs


def kind(path: str, kind_name: str) -> dict[str, Any]:
    (found,) = [doc for doc in documents(path) if doc["kind"] == kind_name]
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    only: dict[str, Any]
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize("command", [deployed_master(), deployed_worker(), SERVE])
def test_the_deployed_commands_parse_with_loadkits_own_options(command: list[str]) -> None:
    # Parsed only (never run): an option renamed or removed in the CLI fails here.
    assert command[0] == "loadkit"
    group = typer.main.get_command(app)
    sub = group.commands[command[1]]  # type: ignore[attr-defined]
    sub.make_context(command[1], command[2:])


def test_docker_compose_runs_the_namespace_tests_commands() -> None:
    (compose,) = documents("docker-compose.yml")
    services = compose["services"]
    assert services["master"]["command"] == deployed_master()
    assert services["worker"]["command"] == deployed_worker()
    assert services["worker"]["deploy"]["replicas"] == DEPLOY_WORKERS
    assert DEPLOY_MASTER_HOST == "master" and TARGET.hostname == "service"
    assert services["service"]["command"] == SERVE
    # The results file lands on the host.
    assert f"./results:{Path(DEPLOY_OUT).parent}" in services["master"]["volumes"]
    assert all(service["build"] == "." for service in services.values())


def test_kubernetes_manifests_run_the_namespace_tests_commands() -> None:
    master = container(kind("deploy/k8s/master.yaml", "Deployment"))
    shell, flag, _keep_up, *loadkit = master["command"]
    assert (shell, flag) == ("sh", "-c") and loadkit == deployed_master()
    assert {"name": "results", "mountPath": str(Path(DEPLOY_OUT).parent)} in master["volumeMounts"]
    master_service = kind("deploy/k8s/master.yaml", "Service")
    assert master_service["metadata"]["name"] == DEPLOY_MASTER_HOST
    assert [p["port"] for p in master_service["spec"]["ports"]] == [DEFAULT_MASTER_PORT]

    workers = kind("deploy/k8s/worker.yaml", "Deployment")
    assert container(workers)["command"] == deployed_worker()
    # As many workers as the master waits for.
    assert workers["spec"]["replicas"] == DEPLOY_WORKERS

    target = kind("deploy/k8s/target.yaml", "Service")
    assert target["metadata"]["name"] == TARGET.hostname
    assert [p["port"] for p in target["spec"]["ports"]] == [TARGET.port]
    assert container(kind("deploy/k8s/target.yaml", "Deployment"))["command"] == SERVE
    for path in ("master.yaml", "worker.yaml", "target.yaml"):
        assert container(kind(f"deploy/k8s/{path}", "Deployment"))["image"] == "loadkit:latest"


def test_the_image_is_the_projects_own_install() -> None:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    assert "FROM python:3.11-slim" in lines
    assert any(line.startswith("RUN pip install --no-cache-dir . ") for line in lines)
