"""The shipped Prometheus rules are valid and name only series the dialer exports; the exposition lints."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

from prometheus_client import generate_latest

from dialer.metrics import Metrics, SipWorkerCollector
from dialer.outcome import Outcome
from tests.system_tools import needs, require

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
DASHBOARD = DEPLOY / "grafana" / "dialer-dashboard.json"
needs_promtool = needs("promtool", "prometheus")


def exercised() -> Metrics:
    """A registry with a sample in every series (labelled series only appear once used)."""
    metrics = Metrics()
    trunk, campaign = str(uuid4()), str(uuid4())
    metrics.call_placed(trunk)
    metrics.call_ringing(trunk, 0.8)
    metrics.call_ended(campaign, trunk, Outcome.ANSWERED, 42.0)
    metrics.inbound_started(trunk)
    metrics.inbound_ended(trunk, Outcome.ANSWERED, 12.0)
    metrics.window_blocked.labels("legal_hours").inc()
    metrics.dispatch_lag.observe(0.2)
    metrics.leases_lost.inc()
    metrics.http_request("GET", "/campaigns/{id}", 200, 0.01)
    metrics.transfer_settled("refer", "completed", 0.05)
    answered = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
    metrics.worker_joined(campaign, "outbound", answered, answered + timedelta(seconds=0.4))
    metrics.worker_joined(campaign, "inbound", answered, None)
    metrics.webhook_delivery("failed")
    metrics.set_slots("trunk", uuid4(), 3, 10)
    metrics.set_prospects(uuid4(), {"pending": 5, "completed": 2})
    metrics.registry.register(SipWorkerCollector(lambda: {"sip-0": 123, "sip-1": None}, lambda: 4))
    return metrics


def test_rules_name_only_exported_series() -> None:
    exposition = generate_latest(exercised().registry).decode()
    exported = set(re.findall(r"^(dialer_[a-z_]+)", exposition, re.MULTILINE))
    named = set(re.findall(r"\b(dialer_[a-z_]+)", RULES.read_text()))
    assert named, "the rules file names dialer series"
    assert named <= exported, f"rules name series nobody exports: {sorted(named - exported)}"


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    promtool = require("promtool", "prometheus")
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    """rules_test.yml: the abandonment alert fires near 3% on enough calls, and only then; the
    no-scheduler alert after 2 minutes without a leader."""
    promtool = require("promtool", "prometheus")
    tests = RULES.parent / "rules_test.yml"
    done = subprocess.run(
        [promtool, "test", "rules", tests.name], capture_output=True, text=True, timeout=60, cwd=RULES.parent
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "DialerAbandonmentNear3Percent" in tests.read_text()


@needs_promtool
def test_promtool_lints_the_exposition() -> None:
    promtool = require("promtool", "prometheus")
    text = generate_latest(exercised().registry)
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


def test_grafana_dashboard_queries_only_exported_series_and_recorded_rules() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [
        v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)
    ]
    text = "\n".join(exprs)
    exported = set(
        re.findall(r"^(dialer_[a-z_]+)", generate_latest(exercised().registry).decode(), re.MULTILINE)
    )
    recorded = set(re.findall(r"record: (dialer:[a-z0-9_:]+)", RULES.read_text()))
    series = set(re.findall(r"\b(dialer_[a-z_]+)", text))
    rules = set(re.findall(r"\b(dialer:[a-z0-9_:]+)", text))
    assert series and rules
    assert series <= exported, f"the dashboard queries series nobody exports: {sorted(series - exported)}"
    assert rules <= recorded, f"the dashboard queries rules nobody records: {sorted(rules - recorded)}"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
