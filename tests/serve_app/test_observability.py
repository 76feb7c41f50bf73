"""The Grafana dashboard and the alerts against the metrics a running gateway exports."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from agents.samples import landing_page
from serve_app.metrics import GatewayMetrics
from tests.serve_app.conftest import TENANT_KEYS, Gateway, generate, parse_sse, user

pytestmark = pytest.mark.ray

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
DASHBOARD = CLUSTER / "grafana" / "nocode-ai.json"
ALERTS = CLUSTER / "alerts.yaml"
METRIC = re.compile(r"\b(ray_[a-z_]+)\b")
FAILURE_COUNTERS = ("loop_failures", "keeper_unreachable", "upstream_errors")
"""Counters of failures: Ray exports a counter once it has counted, so a healthy gateway
shows none of these; they are checked against the gateway's own declarations instead."""


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    rule = yaml.safe_load(ALERTS.read_text())
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_the_dashboard_is_a_grafana_dashboard_laid_out_on_its_grid() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert {"title", "uid", "panels", "schemaVersion", "templating"} <= set(dashboard)
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["type"] == "timeseries"
        assert panel["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
    for expr in dashboard_queries():
        assert expr.count("(") == expr.count(")"), expr
        assert expr.count("{") == expr.count("}"), expr
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in (
        "error rate",
        "time to result",
        "first event",
        "stage latency",
        "cost",
        "tokens per generation",
        "upstream errors",
        "budget",
        "cache hit",
        "again",
    ):
        assert topic in titles, topic


def test_every_alert_has_a_severity_a_summary_and_a_runbook_line() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    assert (document["apiVersion"], document["kind"]) == (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
    )
    readme = (CLUSTER / "README.md").read_text()
    runbook = readme[readme.index("## Alerts") :]
    rules = alert_rules()
    assert len(rules) >= 6
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert f"`{rule['alert']}`" in runbook, rule["alert"]


def exported(gateway: Gateway, wanted: set[str]) -> set[str]:
    """The series names the gateway's metrics port shows once ``wanted`` appear (or 90 s)."""
    names: set[str] = set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = httpx2.get(gateway.metrics_url, timeout=10).text
        names = set(re.findall(r"^([a-z_]+)[{ ]", text, re.MULTILINE))
        if wanted <= names:
            break
        time.sleep(3)
    return names


def test_every_query_names_a_metric_the_running_gateway_exports(gateway: Gateway) -> None:
    body = {
        "instruction": "Add a pricing table",
        "user_id": user(),
        "page": landing_page("obs").model_dump(mode="json"),
    }
    generate(gateway, "obs", body)
    generate(gateway, "obs", body)  # the same again: a result-cache hit
    referenced = {
        name
        for expr in dashboard_queries() + [r["expr"] for r in alert_rules()]
        for name in METRIC.findall(expr)
    }
    gateway_metrics = GatewayMetrics()
    declared = {f"ray_{getattr(gateway_metrics, attr)._name}" for attr in FAILURE_COUNTERS}
    live = exported(gateway, referenced - declared)
    assert referenced - declared <= live, sorted(referenced - declared - live)


COST_TENANT = "stark"
"""The tenant only this test spends for: other tests' jobs may still settle meanwhile."""


def cost_counted(gateway: Gateway) -> float:
    text = httpx2.get(gateway.metrics_url, timeout=10).text
    series = re.findall(r"^ray_nocode_cost_usd_total\{([^}]*)\} ([0-9.e+-]+)$", text, re.M)
    return sum(float(value) for tags, value in series if f'tenant="{COST_TENANT}"' in tags)


def result_cost(reply: httpx2.Response) -> float:
    done = [e for e in parse_sse(reply.text) if e[1] == "result"]
    return float(done[0][2]["usage"]["total"]["cost_usd"])


def settled_cost(gateway: Gateway, at_least: float) -> float:
    """The counter once it holds ``at_least`` and two reads an export interval apart agree:
    Ray exports every few seconds, and a new series only appears after an export or two."""
    last = cost_counted(gateway)
    for _ in range(20):
        time.sleep(6)
        now = cost_counted(gateway)
        if now == last and now >= at_least - 1e-6:
            return now
        last = now
    raise AssertionError("the cost counter never settled")


def test_the_cost_counter_grows_by_what_the_result_says_it_cost(gateway: Gateway) -> None:
    body = {"instruction": "Create a landing page for a kite shop", "user_id": user()}
    as_tenant = {"authorization": f"Bearer {TENANT_KEYS[COST_TENANT]}"}
    warm = result_cost(generate(gateway, "cost-warm", body, as_tenant))
    before = settled_cost(gateway, at_least=warm)
    later = {**body, "instruction": body["instruction"] + " by the sea"}
    cost = result_cost(generate(gateway, "cost", later, as_tenant))
    assert cost > 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and cost_counted(gateway) - before < cost - 1e-6:
        time.sleep(2)
    assert cost_counted(gateway) - before == pytest.approx(cost, abs=1e-5)
