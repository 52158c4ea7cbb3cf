"""The compose file and Kubernetes manifests parse, and point at files and commands that exist."""

from __future__ import annotations

from pathlib import Path

import yaml

from dialer.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_compose_mounts_only_shipped_files() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yml").read_text())
    assert {"postgres", "redis", "dialer", "kamailio", "prometheus", "grafana"} <= set(compose["services"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / "compose" / source).resolve().exists(), source
    build = compose["services"]["dialer"]["build"]
    assert (DEPLOY / "compose" / build["context"] / build["dockerfile"]).resolve().exists()


def test_kubernetes_manifests_run_real_cli_commands() -> None:
    documents = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "dialer.yaml").read_text()) if d]
    kinds = {d["kind"] for d in documents}
    assert {"Deployment", "ConfigMap", "Service", "PodDisruptionBudget"} <= kinds
    [deployment] = [d for d in documents if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    parser = build_parser()
    for container in pod["containers"] + pod["initContainers"]:
        command = container["command"]
        assert command[0] == "dialer"
        parser.parse_args(command[1:])  # exits (fails the test) on an unknown command or flag
    [container] = pod["containers"]
    probes = {container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"]}
    assert probes == {"/ready", "/health"}
