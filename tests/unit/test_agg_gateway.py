"""The push to the original's aggregation gateway: one UDP datagram per cron run, read back by a loopback listener
and parsed with prometheus_client's own parser (the exposition format the gateway reads)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alarm_backends.core.prometheus.agg_gateway import DEFAULT_UDP_PORT, push_run, udp_address


@pytest.fixture
def gateway() -> Iterator[socket.socket]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    yield listener
    listener.close()


def test_one_run_is_one_datagram_of_this_run_alone(gateway: socket.socket) -> None:
    port = gateway.getsockname()[1]
    conf = SimpleNamespace(METRIC_AGG_GATEWAY_URL="http://gw:10205", METRIC_AGG_GATEWAY_UDP_URL=f"127.0.0.1:{port}")
    assert push_run(conf, "alarm_backends.jobs.heartbeat", "celery_cron", "failed", "KeyError", 2.5)
    data, _ = gateway.recvfrom(65507)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(data.decode())
        for s in family.samples
    }
    run = (("exception", "KeyError"), ("queue", "celery_cron"), ("status", "failed"),
           ("task_name", "alarm_backends.jobs.heartbeat"))  # fmt: skip
    assert samples[("bkmonitor_cron_task_execute_count_total", run)] == 1
    labels = (("queue", "celery_cron"), ("task_name", "alarm_backends.jobs.heartbeat"))
    assert samples[("bkmonitor_cron_task_execute_time_count", labels)] == 1
    assert samples[("bkmonitor_cron_task_execute_time_sum", labels)] == 2.5
    assert samples[("bkmonitor_cron_task_execute_time_bucket", (("le", "1.0"), *labels))] == 0
    assert samples[("bkmonitor_cron_task_execute_time_bucket", (("le", "5.0"), *labels))] == 1
    assert not any("_created" in name for name, _ in samples)


def test_off_without_the_url(gateway: socket.socket) -> None:
    conf = SimpleNamespace(METRIC_AGG_GATEWAY_URL="", METRIC_AGG_GATEWAY_UDP_URL="127.0.0.1:1")
    assert not push_run(conf, "job", "celery_cron", "success", "None", 0.1)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("10.0.0.9", ("10.0.0.9", DEFAULT_UDP_PORT)),
        ("10.0.0.9:10300", ("10.0.0.9", 10300)),
        ("http://gw.example:10205/metrics", ("gw.example", 10205)),
        ("[fd00::9]:10300", ("fd00::9", 10300)),
        ("fd00::9", ("fd00::9", DEFAULT_UDP_PORT)),
    ],
)
def test_udp_addresses(url: str, address: tuple[str, int]) -> None:
    assert udp_address(url) == address
