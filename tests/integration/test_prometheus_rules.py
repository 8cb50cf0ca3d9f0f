"""The alert rules and the dashboard against Prometheus's own tools: ``promtool check rules`` parses the rules (and
every query of the dashboard, as recording rules), ``promtool test rules`` runs their unit tests
(support-files/prometheus/alerts_test.yml), and every metric they name is one the platform exports, under the name
prometheus_client gives it. A running platform's series in a real Prometheus: tests/e2e/test_make_run.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import alarm_backends.core.prometheus.metrics
import alarm_backends.service.scheduler.dedupe  # noqa: F401  (the dedupe counters)
from alarm_backends.management.supervisor.metrics import SupervisorCollector
from patches.redbeat.observe import beat_metrics
from tests.prometheus import RULES, RULES_TEST, binary, dashboard_queries, metric_names, rule_expressions


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          check=False)  # fmt: skip


def test_the_rules_parse() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rule_expressions())} rules found" in checked.stdout


def test_the_rules_unit_tests_pass() -> None:
    tested = promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_a_broken_rule_fails_its_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: the same tests against rules whose no-leader alert waits twice as long."""
    (tmp_path / RULES.name).write_text(RULES.read_text().replace("for: 1m", "for: 2m", 1))
    (tmp_path / RULES_TEST.name).write_text(RULES_TEST.read_text())
    tested = promtool("test", "rules", RULES_TEST.name, cwd=tmp_path)
    assert tested.returncode != 0 and "BkmonitorSchedulerNoLeader" in tested.stdout + tested.stderr


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15
    rules = [{"record": f"dashboard:query_{n}", "expr": expr} for n, (_, expr) in enumerate(queries)]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def exported_names() -> set[str]:
    """Every sample name the platform's metrics can take, as prometheus_client names them (``_total``, ``_bucket``,
    ...), and those of supervisord's collector."""
    beat_metrics()
    names = {sample.name for family in REGISTRY.collect() for sample in family.samples}
    for family in REGISTRY.collect():  # labelled metrics have no sample until used: their family's suffixes
        kind = family.type
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}.get(kind, [""])
        names.update(family.name + suffix for suffix in suffixes)
    collector = SupervisorCollector("/nonexistent/supervisor.sock")
    names.update(family.name for family in collector.collect())  # supervisord down: only its up gauge
    names.update({"bkmonitor_supervisor_program_running", "bkmonitor_supervisor_program_start_time_seconds"})
    return names


def test_every_metric_the_rules_and_dashboard_name_is_exported() -> None:
    named = metric_names(rule_expressions()) | metric_names(dashboard_queries())
    assert not named - exported_names(), sorted(named - exported_names())
    # What the issue asks the dashboard to show, and the rules to watch.
    for wanted in ("bkmonitor_beat_dispatch_lateness_seconds_bucket", "bkmonitor_cron_task_execute_count_total",
                   "bkmonitor_cron_task_execute_time_bucket", "bkmonitor_beat_leader", "bkmonitor_beat_failovers_total",
                   "bkmonitor_beat_duplicate_dropped_total", "bkmonitor_cron_queue_depth",
                   "bkmonitor_supervisor_program_start_time_seconds"):  # fmt: skip
        assert wanted in metric_names(dashboard_queries()), wanted
