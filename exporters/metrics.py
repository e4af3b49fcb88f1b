"""Counter, gauge and histogram families that record a batch in one step.

A family (``Counter``, ``Gauge``, ``Histogram``) owns one child per set of label
values; ``family.labels(...)`` returns the cached child, and the child records.
``Histogram`` children take ``observe(value, count=n)``, so a batch of n events
with the same duration costs one bucket update instead of n.

Concurrency: children update plain Python ints and floats without locks. This
is correct because each service process records from its one asyncio
event-loop thread. Read (scrape) on that same thread to get a consistent
snapshot. A read from another thread may see a batch half applied, for
example a histogram ``_sum`` that does not yet include the latest bucket
update. Each process has its own ``Registry``, and adding figures across
worker processes is not done here.
"""

from __future__ import annotations

import logging
import math
import operator
import re
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

__all__ = [
    "DEFAULT_BUCKETS",
    "Collector",
    "Counter",
    "CounterChild",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
    "Registry",
    "histogram_quantile",
]

logger = logging.getLogger(__name__)

# Upper bounds in seconds, from 1 ms to 10 s. They include 0.1 so that the
# share of requests under 100 ms is exact rather than interpolated.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)

# OpenMetrics 1.0 limits the label names and values of one exemplar together
# to 128 UTF-8 characters.
EXEMPLAR_MAX_CHARACTERS = 128

_INF = math.inf
_METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


class Collector(Protocol):
    """Anything with ``collect()`` returning metric families."""

    def collect(self) -> Iterable[Any]: ...


# ---------------------------------------------------------------------------
# Registry


class Registry:
    """Metric families and extra collectors that one ``/metrics`` endpoint exposes.

    Families register themselves when constructed with ``registry=``. Other
    collectors (for example ``prometheus_client.ProcessCollector``) join with
    ``register``. ``collect()`` returns ``prometheus_client`` metric families, so
    a ``Registry`` can be passed wherever ``prometheus_client`` expects one.

    With ``process_metrics=True`` (the default) the registry also exposes
    ``process_*`` (CPU, memory, file descriptors, start time), ``python_info``
    and ``python_gc_*``.
    """

    def __init__(self, *, process_metrics: bool = True) -> None:
        self._collectors: list[Collector] = []
        self._names_by_collector: dict[int, frozenset[str]] = {}
        self._collector_by_name: dict[str, Collector] = {}
        if process_metrics:
            from exporters.process import register_process_collectors

            register_process_collectors(self)

    def register(self, collector: Collector) -> None:
        """Add a collector; raise ValueError if one of its names is taken."""
        if id(collector) in self._names_by_collector:
            raise ValueError(f"collector {collector!r} is already registered")
        names = _exposed_names(collector)
        clashes = sorted(name for name in names if name in self._collector_by_name)
        if clashes:
            raise ValueError(
                f"metric name {clashes[0]!r} is already registered by "
                f"{self._collector_by_name[clashes[0]]!r}: choose another name or "
                "unregister the earlier collector first"
            )
        self._collectors.append(collector)
        self._names_by_collector[id(collector)] = names
        for name in names:
            self._collector_by_name[name] = collector

    def unregister(self, collector: Collector) -> None:
        """Remove a collector; raise KeyError if it is not registered."""
        names = self._names_by_collector.pop(id(collector), None)
        if names is None:
            raise KeyError(f"collector {collector!r} is not registered")
        self._collectors = [c for c in self._collectors if c is not collector]
        for name in names:
            del self._collector_by_name[name]

    def collect(self) -> Iterator[Metric]:
        """Yield every registered family as a ``prometheus_client`` metric family."""
        for collector in list(self._collectors):
            for item in collector.collect():
                if isinstance(item, _Family):
                    yield from item.collect()
                else:
                    yield item

    def get(self, name: str) -> Collector | None:
        """Return the collector that exposes the metric ``name``, or None."""
        return self._collector_by_name.get(name)


def _exposed_names(collector: Collector) -> frozenset[str]:
    """Return the family and sample names a collector exposes, for clash checks."""
    if isinstance(collector, _Family):
        return collector._exposed_names()
    describe = getattr(collector, "describe", None)
    families = describe() if callable(describe) else collector.collect()
    names: set[str] = set()
    for family in families:
        if isinstance(family, _Family):
            names |= family._exposed_names()
            continue
        names.add(family.name)
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("_count", "_sum", "_created"),
            "info": ("_info",),
            "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
        }.get(family.type, ())
        names.update(family.name + suffix for suffix in suffixes)
    return frozenset(names)


# ---------------------------------------------------------------------------
# Family base


class _Family:
    """Name, help, label names and the children of one metric family."""

    _type = ""
    _suffixes: tuple[str, ...] = ()
    _reserved_labelnames: frozenset[str] = frozenset()

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: Registry | None,
        unit: str,
    ) -> None:
        if isinstance(labelnames, str):
            raise TypeError(
                f"labelnames of metric {name!r} must be a sequence of label names, "
                f"not the string {labelnames!r}: write ({labelnames!r},)"
            )
        self.name = name
        self.documentation = documentation
        self.labelnames: tuple[str, ...] = tuple(labelnames)
        self.unit = unit
        self._validate()
        self._children: dict[tuple[str, ...], Any] = {}
        self._default: Any = None
        if not self.labelnames:
            self._default = self._new_child()
            self._children[()] = self._default
        if registry is not None:
            registry.register(self)

    # -- construction checks ------------------------------------------------

    def _validate(self) -> None:
        name = self.name
        if not isinstance(name, str) or not _METRIC_NAME_RE.match(name):
            raise ValueError(
                f"invalid metric name {name!r}: use letters, digits, '_' and ':' "
                "and do not start with a digit"
            )
        if not isinstance(self.documentation, str) or not self.documentation:
            raise ValueError(f"metric {name!r} needs a non-empty documentation string")
        seen: set[str] = set()
        for labelname in self.labelnames:
            if not isinstance(labelname, str) or not _LABEL_NAME_RE.match(labelname):
                raise ValueError(
                    f"invalid label name {labelname!r} on metric {name!r}: use letters, "
                    "digits and '_' and do not start with a digit"
                )
            if labelname.startswith("__"):
                raise ValueError(
                    f"label name {labelname!r} on metric {name!r} is reserved: names "
                    "starting with '__' belong to Prometheus"
                )
            if labelname in self._reserved_labelnames:
                raise ValueError(
                    f"label name {labelname!r} on {self._type} {name!r} is reserved "
                    "by the exposition format: choose another label name"
                )
            if labelname in seen:
                raise ValueError(f"label name {labelname!r} appears twice on metric {name!r}")
            seen.add(labelname)
        if self.unit:
            if not _LABEL_NAME_RE.match(self.unit):
                raise ValueError(f"invalid unit {self.unit!r} on metric {name!r}")
            if not self._base_name().endswith("_" + self.unit):
                raise ValueError(
                    f"metric {name!r} has unit {self.unit!r}, so its name must end with "
                    f"'_{self.unit}' (before any '_total')"
                )

    def _base_name(self) -> str:
        """Return the OpenMetrics family name: ``name`` without any type suffix."""
        return self.name

    def _exposed_names(self) -> frozenset[str]:
        base = self._base_name()
        return frozenset([base] + [base + suffix for suffix in self._suffixes])

    # -- children -----------------------------------------------------------

    def _new_child(self) -> Any:
        raise NotImplementedError

    def labels(self, *values: Any, **labelvalues: Any) -> Any:
        """Return the child for these label values, creating it on first use.

        Pass the values in ``labelnames`` order, or all of them by keyword.
        Values are stored as ``str``.
        """
        if labelvalues:
            values = self._values_from_keywords(values, labelvalues)
        try:
            return self._children[values]
        except KeyError:
            return self._add_child(values)
        except TypeError:
            return self._add_child(values)

    def _add_child(self, values: tuple[Any, ...]) -> Any:
        key = self._key(values)
        child = self._children.get(key)
        if child is None:
            child = self._new_child()
            self._children[key] = child
        return child

    def _key(self, values: tuple[Any, ...]) -> tuple[str, ...]:
        if not self.labelnames:
            raise ValueError(f"metric {self.name!r} has no labels: record on the family itself")
        if len(values) != len(self.labelnames):
            raise ValueError(
                f"metric {self.name!r} expects {len(self.labelnames)} label values "
                f"{self.labelnames}, got {len(values)}: {values!r}"
            )
        key = []
        for labelname, value in zip(self.labelnames, values):
            if value is None:
                raise ValueError(
                    f"label {labelname!r} of metric {self.name!r} is None: pass a string"
                )
            key.append(value if value.__class__ is str else str(value))
        return tuple(key)

    def _values_from_keywords(
        self, values: tuple[Any, ...], labelvalues: Mapping[str, Any]
    ) -> tuple[Any, ...]:
        if values:
            raise ValueError(
                f"metric {self.name!r}: pass label values either by position or by "
                "keyword, not both"
            )
        if len(labelvalues) != len(self.labelnames) or not all(
            labelname in labelvalues for labelname in self.labelnames
        ):
            raise ValueError(
                f"metric {self.name!r} expects labels {self.labelnames}, "
                f"got {tuple(labelvalues)}"
            )
        return tuple(labelvalues[labelname] for labelname in self.labelnames)

    def remove(self, *values: Any, **labelvalues: Any) -> bool:
        """Drop the child for these label values; return whether it existed."""
        if labelvalues:
            values = self._values_from_keywords(values, labelvalues)
        return self._children.pop(self._key(values), None) is not None

    def clear(self) -> None:
        """Drop every child of a labelled family."""
        if not self.labelnames:
            raise ValueError(f"metric {self.name!r} has no labels, so it has no children to clear")
        self._children.clear()

    def items(self) -> list[tuple[tuple[str, ...], Any]]:
        """Return ``(label values, child)`` pairs, in creation order."""
        return list(self._children.items())

    def _labels_required(self, method: str) -> ValueError:
        return ValueError(
            f"metric {self.name!r} has labels {self.labelnames}: call "
            f".labels(...).{method}(...) instead of .{method}(...)"
        )

    def _unlabelled(self, attribute: str) -> Any:
        if self._default is None:
            raise ValueError(
                f"metric {self.name!r} has labels {self.labelnames}: read "
                f".labels(...).{attribute} instead of .{attribute}"
            )
        return self._default

    def collect(self) -> list[Metric]:
        """Return this family as one ``prometheus_client`` metric family."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, labelnames={self.labelnames!r})"


# ---------------------------------------------------------------------------
# Validation on the slow path


def _as_number(value: Any) -> int | float:
    """Convert an integral or real number (numpy scalar, Decimal, Fraction) to int or float.

    Raises TypeError for anything else, strings included, so that "3" is
    not read as 3.
    """
    if isinstance(value, (str, bytes, bytearray)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    try:
        return operator.index(value)
    except TypeError:
        pass
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"expected a number, got {type(value).__name__}") from None


def _checked_amount(family: _Family, amount: Any) -> int | float:
    """Return ``amount`` as int or float, or raise if it is not finite and >= 0."""
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        try:
            amount = _as_number(amount)
        except TypeError:
            raise TypeError(
                f"amount for metric {family.name!r} must be a number, "
                f"got {type(amount).__name__} {amount!r}"
            ) from None
    if not 0 <= amount < _INF:
        raise ValueError(
            f"amount for metric {family.name!r} must be finite and >= 0, got {amount!r}: "
            "a counter only goes up"
        )
    return amount


def _checked_number(family: _Family, value: Any) -> int | float:
    """Return a gauge value as int or float (NaN and infinities are allowed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            return _as_number(value)
        except TypeError:
            raise TypeError(
                f"value for metric {family.name!r} must be a number, "
                f"got {type(value).__name__} {value!r}"
            ) from None
    return value


def _checked_observation(family: _Family, value: Any, count: Any) -> tuple[float, int]:
    """Return ``(value, count)`` normalised, or raise naming the metric."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = _as_number(value)
        except TypeError:
            raise TypeError(
                f"observed value for metric {family.name!r} must be a number, "
                f"got {type(value).__name__} {value!r}"
            ) from None
    if not 0 <= value < _INF:
        raise ValueError(
            f"observed value for metric {family.name!r} must be finite and >= 0, "
            f"got {value!r}"
        )
    if isinstance(count, bool):
        raise TypeError(f"count for metric {family.name!r} must be an int, got {count!r}")
    try:
        count = operator.index(count)
    except TypeError:
        raise TypeError(
            f"count for metric {family.name!r} must be an int, "
            f"got {type(count).__name__} {count!r}"
        ) from None
    if count < 1:
        raise ValueError(f"count for metric {family.name!r} must be >= 1, got {count!r}")
    return float(value), count


def _checked_exemplar(family: _Family, labels: Mapping[str, str], value: float) -> Exemplar:
    """Return an Exemplar stamped now, or raise if its labels break OpenMetrics rules."""
    if not isinstance(labels, Mapping):
        raise TypeError(
            f"exemplar for metric {family.name!r} must be a dict of label names to "
            f"values such as {{'trace_id': '...'}}, got {type(labels).__name__}"
        )
    characters = 0
    for labelname, labelvalue in labels.items():
        if not isinstance(labelname, str) or not _LABEL_NAME_RE.match(labelname):
            raise ValueError(
                f"invalid exemplar label name {labelname!r} on metric {family.name!r}"
            )
        if not isinstance(labelvalue, str):
            raise TypeError(
                f"exemplar label {labelname!r} on metric {family.name!r} must be a "
                f"string, got {type(labelvalue).__name__}"
            )
        characters += len(labelname) + len(labelvalue)
    if characters > EXEMPLAR_MAX_CHARACTERS:
        raise ValueError(
            f"exemplar labels on metric {family.name!r} have {characters} characters, "
            f"over the OpenMetrics limit of {EXEMPLAR_MAX_CHARACTERS}: keep trace_id "
            "and span_id only"
        )
    return Exemplar(dict(labels), value, time.time())


# ---------------------------------------------------------------------------
# Counter


class CounterChild:
    """One counter series: a monotonic total, kept as int while every amount is an int.

    Not thread-safe: record from one thread (see the module docstring).
    """

    __slots__ = ("_family", "value", "exemplar", "created")

    def __init__(self, family: Counter) -> None:
        self._family = family
        self.value: int | float = 0
        self.exemplar: Exemplar | None = None
        self.created = time.time()

    def inc(self, amount: int | float = 1, exemplar: Mapping[str, str] | None = None) -> None:
        """Add ``amount`` (finite, >= 0); ``exemplar`` labels such as a trace id are kept."""
        if amount.__class__ is not int or amount < 0:
            amount = _checked_amount(self._family, amount)
        self.value += amount
        if exemplar is not None:
            self.exemplar = _checked_exemplar(self._family, exemplar, amount)


class Counter(_Family):
    """A counter family; give ``name`` with its ``_total`` suffix.

    Both exposition formats print samples as ``<name>``; OpenMetrics names the
    family ``<name>`` without ``_total``. With ``created=True`` each series
    also exposes ``<name without _total>_created``, the time its child was
    created, in Unix seconds.
    """

    _type = "counter"
    _suffixes = ("_total", "_created")

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: Registry | None,
        unit: str = "",
        created: bool = False,
    ) -> None:
        self.created = created
        super().__init__(name, documentation, labelnames, registry, unit)
        if self._default is not None:
            self.inc = self._default.inc  # type: ignore[method-assign]

    def _base_name(self) -> str:
        return self.name[:-6] if self.name.endswith("_total") else self.name

    def _new_child(self) -> CounterChild:
        return CounterChild(self)

    def inc(self, amount: int | float = 1, exemplar: Mapping[str, str] | None = None) -> None:
        """Add ``amount`` to an unlabelled counter."""
        raise self._labels_required("inc")

    @property
    def value(self) -> int | float:
        """The total of an unlabelled counter."""
        return self._unlabelled("value").value

    def collect(self) -> list[Metric]:
        family = CounterMetricFamily(
            self.name, self.documentation, labels=self.labelnames, unit=self.unit
        )
        created = self.created
        for values, child in list(self._children.items()):
            family.add_metric(
                values,
                child.value,
                created=child.created if created else None,
                exemplar=child.exemplar,
            )
        return [family]


# ---------------------------------------------------------------------------
# Gauge


class GaugeChild:
    """One gauge series: a value that is set, or read from a function at scrape time."""

    __slots__ = ("_family", "_value", "_function")

    def __init__(self, family: Gauge) -> None:
        self._family = family
        self._value: int | float = 0
        self._function: Callable[[], float] | None = None

    def set(self, value: int | float) -> None:
        """Set the value; this also drops a function given to ``set_function``."""
        if value.__class__ is not float and value.__class__ is not int:
            value = _checked_number(self._family, value)
        self._value = value
        self._function = None

    def inc(self, amount: int | float = 1) -> None:
        """Add ``amount`` (may be negative)."""
        if amount.__class__ is not int and amount.__class__ is not float:
            amount = _checked_number(self._family, amount)
        if self._function is not None:
            raise self._function_set("inc")
        self._value += amount

    def dec(self, amount: int | float = 1) -> None:
        """Subtract ``amount``."""
        if amount.__class__ is not int and amount.__class__ is not float:
            amount = _checked_number(self._family, amount)
        if self._function is not None:
            raise self._function_set("dec")
        self._value -= amount

    def set_function(self, function: Callable[[], float]) -> None:
        """Read the value from ``function()`` at every scrape."""
        if not callable(function):
            raise TypeError(
                f"set_function on metric {self._family.name!r} needs a callable, "
                f"got {type(function).__name__}"
            )
        self._function = function

    @property
    def value(self) -> int | float:
        """The current value; calls the function given to ``set_function`` if any."""
        if self._function is None:
            return self._value
        return _checked_number(self._family, self._function())

    def _function_set(self, method: str) -> ValueError:
        return ValueError(
            f"metric {self._family.name!r} reads its value from a function: call "
            f".set(...) to go back to a set value before .{method}(...)"
        )


class Gauge(_Family):
    """A gauge family."""

    _type = "gauge"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: Registry | None,
        unit: str = "",
    ) -> None:
        super().__init__(name, documentation, labelnames, registry, unit)
        if self._default is not None:
            default = self._default
            self.set = default.set  # type: ignore[method-assign]
            self.inc = default.inc  # type: ignore[method-assign]
            self.dec = default.dec  # type: ignore[method-assign]
            self.set_function = default.set_function  # type: ignore[method-assign]

    def _new_child(self) -> GaugeChild:
        return GaugeChild(self)

    def set(self, value: int | float) -> None:
        """Set an unlabelled gauge."""
        raise self._labels_required("set")

    def inc(self, amount: int | float = 1) -> None:
        """Add to an unlabelled gauge."""
        raise self._labels_required("inc")

    def dec(self, amount: int | float = 1) -> None:
        """Subtract from an unlabelled gauge."""
        raise self._labels_required("dec")

    def set_function(self, function: Callable[[], float]) -> None:
        """Read an unlabelled gauge from ``function()`` at every scrape."""
        raise self._labels_required("set_function")

    @property
    def value(self) -> int | float:
        """The value of an unlabelled gauge."""
        return self._unlabelled("value").value

    def collect(self) -> list[Metric]:
        family = GaugeMetricFamily(
            self.name, self.documentation, labels=self.labelnames, unit=self.unit
        )
        for values, child in list(self._children.items()):
            try:
                value = child.value
            except Exception:
                # One failing callback must not fail the whole scrape: the
                # series is left out and the error logged once per scrape.
                logger.exception(
                    "gauge function failed, series left out of this scrape",
                    extra={"metric": self.name, "labels": dict(zip(self.labelnames, values))},
                )
                continue
            family.add_metric(values, value)
        return [family]


# ---------------------------------------------------------------------------
# Histogram


class HistogramChild:
    """One histogram series: per-bucket counts, the sum and the latest exemplar per bucket.

    Not thread-safe: record from one thread (see the module docstring).
    """

    __slots__ = ("_family", "_upper_bounds", "_counts", "sum", "_exemplars", "created")

    def __init__(self, family: Histogram) -> None:
        self._family = family
        self._upper_bounds = family._upper_bounds
        # Counts per bucket, not cumulative; the last one is the +Inf bucket.
        self._counts = [0] * len(self._upper_bounds)
        self.sum: float = 0.0
        self._exemplars: list[Exemplar | None] = [None] * len(self._upper_bounds)
        self.created = time.time()

    def observe(
        self,
        value: float,
        count: int = 1,
        exemplar: Mapping[str, str] | None = None,
    ) -> None:
        """Record ``count`` observations of ``value`` in one step.

        ``value`` must be finite and >= 0 and ``count`` an int >= 1, else
        ValueError. ``exemplar`` (labels such as ``{"trace_id": ..., "span_id": ...}``)
        becomes the latest exemplar of the bucket ``value`` falls in.
        """
        if (
            value.__class__ is not float
            or not 0.0 <= value < _INF
            or count.__class__ is not int
            or count < 1
        ):
            value, count = _checked_observation(self._family, value, count)
        index = bisect_left(self._upper_bounds, value)
        self._counts[index] += count
        self.sum += value * count
        if exemplar is not None:
            self._exemplars[index] = _checked_exemplar(self._family, exemplar, value)

    @property
    def count(self) -> int:
        """The number of observations."""
        return sum(self._counts)

    def buckets(self) -> list[tuple[float, int]]:
        """Return ``(upper bound, cumulative count)`` pairs, ending with ``+Inf``."""
        cumulative = 0
        result = []
        for upper_bound, count in zip(self._upper_bounds, list(self._counts)):
            cumulative += count
            result.append((upper_bound, cumulative))
        return result

    def quantile(self, q: float) -> float:
        """Estimate the ``q`` quantile (0 <= q <= 1) from the buckets.

        Uses the interpolation of PromQL's ``histogram_quantile``, so the
        estimate agrees with a dashboard that queries the same buckets. Returns
        NaN when there are no observations.
        """
        return histogram_quantile(q, self.buckets())


def histogram_quantile(q: float, buckets: Sequence[tuple[float, int | float]]) -> float:
    """Estimate the ``q`` quantile from ``(upper bound, cumulative count)`` pairs.

    Follows PromQL's ``histogram_quantile``: linear interpolation inside the
    bucket that contains the rank, a lower bound of 0 for the first bucket, and
    the highest finite bound when the rank falls in the ``+Inf`` bucket.
    Returns NaN without observations or without a finite bucket.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be between 0 and 1, got {q!r}")
    if len(buckets) < 2 or buckets[-1][0] != _INF:
        return math.nan
    total = buckets[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    index = len(buckets) - 1
    for position, (_, cumulative) in enumerate(buckets[:-1]):
        if cumulative >= rank:
            index = position
            break
    if index == len(buckets) - 1:
        return float(buckets[-2][0])
    upper = float(buckets[index][0])
    if index == 0 and upper <= 0:
        return upper
    lower = 0.0
    in_bucket = buckets[index][1]
    if index > 0:
        lower = float(buckets[index - 1][0])
        in_bucket -= buckets[index - 1][1]
        rank -= buckets[index - 1][1]
    if in_bucket == 0:
        return lower
    return lower + (upper - lower) * (rank / in_bucket)


class Histogram(_Family):
    """A histogram family with fixed bucket upper bounds (``+Inf`` is added).

    With ``created=True`` each series also exposes ``<name>_created``, the
    time its child was created, in Unix seconds.
    """

    _type = "histogram"
    _suffixes = ("_bucket", "_count", "_sum", "_created")
    _reserved_labelnames = frozenset({"le"})

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: Registry | None,
        buckets: Iterable[float] = DEFAULT_BUCKETS,
        unit: str = "",
        created: bool = False,
    ) -> None:
        self.created = created
        self._upper_bounds = _checked_buckets(name, buckets)
        # Bound labels formatted once, the way prometheus_client prints them.
        self._bound_labels = tuple(floatToGoString(bound) for bound in self._upper_bounds)
        super().__init__(name, documentation, labelnames, registry, unit)
        if self._default is not None:
            self.observe = self._default.observe  # type: ignore[method-assign]

    @property
    def upper_bounds(self) -> tuple[float, ...]:
        """The bucket upper bounds, ending with ``+Inf``."""
        return self._upper_bounds

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self)

    def observe(
        self, value: float, count: int = 1, exemplar: Mapping[str, str] | None = None
    ) -> None:
        """Record ``count`` observations of ``value`` on an unlabelled histogram."""
        raise self._labels_required("observe")

    @property
    def count(self) -> int:
        """The number of observations of an unlabelled histogram."""
        return self._unlabelled("count").count

    @property
    def sum(self) -> float:
        """The sum of observations of an unlabelled histogram."""
        return self._unlabelled("sum").sum

    def quantile(self, q: float) -> float:
        """Estimate the ``q`` quantile of an unlabelled histogram."""
        return self._unlabelled("quantile").quantile(q)

    def collect(self) -> list[Metric]:
        family = HistogramMetricFamily(
            self.name, self.documentation, labels=self.labelnames, unit=self.unit
        )
        bound_labels = self._bound_labels
        for values, child in list(self._children.items()):
            # Copy first, so _count equals the +Inf bucket even if the copy
            # races with an update from another thread.
            counts = list(child._counts)
            exemplars = list(child._exemplars)
            total = child.sum
            buckets: list[tuple[Any, ...]] = []
            cumulative = 0
            for bound_label, count, exemplar in zip(bound_labels, counts, exemplars):
                cumulative += count
                if exemplar is None:
                    buckets.append((bound_label, cumulative))
                else:
                    buckets.append((bound_label, cumulative, exemplar))
            family.add_metric(values, buckets, total)
            if self.created:
                family.add_sample(
                    self.name + "_created", dict(zip(self.labelnames, values)), child.created
                )
        return [family]


def _checked_buckets(name: str, buckets: Iterable[float]) -> tuple[float, ...]:
    """Return sorted upper bounds ending with +Inf, or raise naming the metric."""
    try:
        bounds = [float(bound) for bound in buckets]
    except (TypeError, ValueError):
        raise TypeError(
            f"buckets of histogram {name!r} must be numbers, got {buckets!r}"
        ) from None
    if any(math.isnan(bound) for bound in bounds):
        raise ValueError(f"buckets of histogram {name!r} contain NaN: {buckets!r}")
    bounds.sort()
    if bounds and bounds[-1] == _INF:
        bounds.pop()
    if not bounds:
        raise ValueError(
            f"histogram {name!r} needs at least one finite bucket upper bound, "
            f"got {buckets!r}"
        )
    if bounds[0] < 0:
        raise ValueError(
            f"bucket upper bound {bounds[0]!r} of histogram {name!r} is negative, but "
            "observations must be >= 0: drop it"
        )
    for lower, upper in zip(bounds, bounds[1:]):
        if lower == upper:
            raise ValueError(f"bucket upper bound {lower!r} of histogram {name!r} appears twice")
    bounds.append(_INF)
    return tuple(bounds)
