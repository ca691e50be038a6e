"""Renders the store as Prometheus metric families; a scrape only reads memory."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PromCollector

from mongooseim_agent import __version__
from mongooseim_agent.metrics import Contract, Kind, MetricSpec
from mongooseim_agent.snapshot import Sample, Snapshot
from mongooseim_agent.store import sane_number


def _family(spec: MetricSpec) -> GaugeMetricFamily | CounterMetricFamily:
    if spec.kind is Kind.COUNTER:
        return CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
    return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)


def agent_samples(
    snapshots: Iterable[Snapshot],
    ready: bool,
    stuck: Collection[str] = frozenset(),
    dropped: Mapping[str, int] | None = None,
) -> Iterator[Sample]:
    """`stuck`: collectors running past their timeout, failing whatever they last stored.
    `dropped`: samples refused per collector (mongooseim_agent_samples_dropped_total)."""
    yield Sample("mongooseim_agent_build_info", 1, {"version": __version__})
    for snap in snapshots:
        label = {"collector": snap.collector}
        ok = snap.ok and snap.collector not in stuck
        yield Sample("mongooseim_agent_collector_success", 1 if ok else 0, label)
        yield Sample("mongooseim_agent_collector_duration_seconds", snap.duration_seconds, label)
        if dropped is not None:
            yield Sample("mongooseim_agent_samples_dropped_total",
                         dropped.get(snap.collector, 0), label)
    yield Sample("mongooseim_node_ready", 1 if ready else 0)


class StoreCollector(PromCollector):
    """A prometheus_client collector over `samples()`; undeclared names are dropped and logged.

    A sample whose labels do not match its declaration is dropped too: an exporter that
    emits malformed series would be worse than one missing a series.
    """

    def __init__(self, contract: Contract, samples: Callable[[], Iterable[Sample]]) -> None:
        self._contract = contract
        self._samples = samples
        self._log = structlog.get_logger("exposition")
        self._reported: set[str] = set()

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        seen: defaultdict[str, set[tuple[str, ...]]] = defaultdict(set)
        for sample in self._samples():
            spec = self._contract.get(sample.metric)
            if spec is None or set(sample.labels) != set(spec.labels):
                self._report(sample, spec)
                continue
            values = tuple(sample.labels[name] for name in spec.labels)
            if values in seen[spec.name]:
                continue
            seen[spec.name].add(values)
            if not sane_number(sample.value):
                self._report_value(sample)
                continue
            family = families.get(spec.name)
            if family is None:
                family = families[spec.name] = _family(spec)
            family.add_metric(list(values), float(sample.value))
        yield from families.values()

    def _report_value(self, sample: Sample) -> None:
        if sample.metric not in self._reported:
            self._reported.add(sample.metric)
            self._log.error("metric with an unusable value dropped", metric=sample.metric)

    def _report(self, sample: Sample, spec: MetricSpec | None) -> None:
        if sample.metric in self._reported:
            return
        self._reported.add(sample.metric)
        if spec is None:
            self._log.error("undeclared metric dropped", metric=sample.metric)
        else:
            self._log.error(
                "metric with wrong labels dropped",
                metric=sample.metric,
                labels=sorted(sample.labels),
                declared=list(spec.labels),
            )
