"""The compose file, Kubernetes manifests and systemd units parse, point at files that exist, and run
commands the CLI accepts: each role (`dialer serve --role …`) is one the CLI knows, and every role runs."""

from __future__ import annotations

import argparse
import configparser
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialer.cli import ROLES, build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SPLIT_ROLES = {"api", "scheduler", "gateway"}


def dialer_commands(command: list[str]) -> list[argparse.Namespace]:
    """Every ``dialer …`` invocation in a container command (argv, or ``sh -c "a && exec b"``),
    parsed by the real CLI parser (an unknown command, flag or role fails the test)."""
    if command[:2] == ["sh", "-c"]:
        steps = [shlex.split(step) for step in command[2].split("&&")]
        steps = [step[1:] if step[0] == "exec" else step for step in steps]
    else:
        steps = [command]
    parsed = []
    for step in steps:
        assert step[0] in ("dialer", "/usr/local/bin/dialer"), step
        try:
            parsed.append(build_parser().parse_args(step[1:]))
        except SystemExit:
            pytest.fail(f"the CLI refuses {shlex.join(step)}")
    return parsed


def served_role(command: list[str]) -> str:
    [serve] = [args for args in dialer_commands(command) if args.command == "serve"]
    role: str = serve.role
    return role


def test_a_role_the_cli_does_not_know_is_caught() -> None:
    assert served_role(["dialer", "serve", "--role", "gateway"]) == "gateway"
    with pytest.raises(pytest.fail.Exception):
        dialer_commands(["dialer", "serve", "--role", "media"])


# ---- compose ---------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((DEPLOY / "compose" / "compose.yml").read_text())
    return found


def test_compose_mounts_only_shipped_files() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "kamailio", "prometheus", "grafana"} <= set(services)
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / "compose" / source).resolve().exists(), source
        if "build" in service:
            build = service["build"]
            assert (DEPLOY / "compose" / build["context"] / build["dockerfile"]).resolve().exists()


def test_compose_runs_every_role_on_its_own_port_and_prometheus_scrapes_each() -> None:
    services = compose()["services"]
    dialers = {
        name: s for name, s in services.items() if "command" in s and "dialer serve" in str(s["command"])
    }
    roles = {name: served_role(service["command"]) for name, service in dialers.items()}
    assert sorted(roles.values()) == sorted(SPLIT_ROLES), roles
    ports = [service["environment"]["DIALER_HTTP_PORT"] for service in dialers.values()]
    assert len(set(ports)) == len(ports), f"roles on the host network need their own HTTP port: {ports}"
    for service in dialers.values():
        assert service["network_mode"] == "host"
        assert service["environment"]["DIALER_REDIS_URL"].startswith("redis://"), "split roles need Redis"
        assert service["environment"]["DIALER_DATABASE_URL"].startswith("postgresql")
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert {f"127.0.0.1:{port}" for port in ports} <= targets


# ---- Kubernetes ------------------------------------------------------------------------------------


def kubernetes() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "dialer.yaml").read_text()) if d]


def test_kubernetes_runs_one_deployment_per_role_with_real_cli_commands() -> None:
    documents = kubernetes()
    assert {"Deployment", "ConfigMap", "Service", "PodDisruptionBudget"} <= {d["kind"] for d in documents}
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    roles = {}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []):
            assert [args.command for args in dialer_commands(container["command"])] == ["migrate"]
        [container] = pod["containers"]
        roles[name] = served_role(container["command"])
        probes = {
            container["readinessProbe"]["httpGet"]["path"],
            container["livenessProbe"]["httpGet"]["path"],
        }
        assert probes == {"/ready", "/health"}
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["role"] == roles[name]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert sorted(roles.values()) == sorted(SPLIT_ROLES), roles
    by_role = {role: deployments[name] for name, role in roles.items()}
    assert by_role["gateway"]["spec"]["template"]["spec"].get("hostNetwork") is True, "SIP/RTP need no NAT"
    assert not by_role["api"]["spec"]["template"]["spec"].get("hostNetwork")
    assert by_role["scheduler"]["spec"]["replicas"] >= 2, "a standby scheduler takes over from the leader"


def test_kubernetes_service_and_budgets_select_the_right_pods() -> None:
    documents = kubernetes()
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in documents
        if d["kind"] == "Deployment"
    }

    def selected(selector: dict[str, str]) -> set[str]:
        return {name for name, labels in pods.items() if selector.items() <= labels.items()}

    [service] = [d for d in documents if d["kind"] == "Service"]
    assert selected(service["spec"]["selector"]) == {"dialer-api"}, "only API pods serve the public API"
    budgets = [
        selected(d["spec"]["selector"]["matchLabels"])
        for d in documents
        if d["kind"] == "PodDisruptionBudget"
    ]
    assert sorted(map(sorted, budgets)) == [[name] for name in sorted(pods)]


# ---- systemd ---------------------------------------------------------------------------------------


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def test_systemd_single_node_unit_runs_every_role() -> None:
    service = unit("dialer.service")["Service"]
    assert served_role(shlex.split(service["ExecStart"])) == "all"
    assert [a.command for a in dialer_commands(shlex.split(service["ExecStartPre"]))] == ["migrate"]


def test_systemd_template_unit_runs_each_split_role() -> None:
    service = unit("dialer@.service")["Service"]
    assert "%i" in service["ExecStart"]
    for role in SPLIT_ROLES:
        assert served_role(shlex.split(service["ExecStart"].replace("%i", role))) == role
    assert SPLIT_ROLES | {"all"} == set(ROLES)
    assert [a.command for a in dialer_commands(shlex.split(service["ExecStartPre"]))] == ["migrate"]
