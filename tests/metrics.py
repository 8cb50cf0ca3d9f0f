"""Reading the samples the platform's processes wrote to a ``PROMETHEUS_MULTIPROC_DIR``."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metric_samples(metrics_dir: Path) -> Samples:
    """Every sample in ``metrics_dir``, aggregated over its processes as the exporter does."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when no process wrote it."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
