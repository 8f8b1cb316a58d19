"""Dataset rules: which dataset an object key belongs to, and the CloudCatalog row it becomes.

A dataset is declared in instance.yaml by a key ``prefix`` and a ``pattern`` (a regular expression
matched against the rest of the key). The pattern's named groups, concatenated in the order they
appear, are parsed with ``time_format`` to give the row's start time; groups whose names begin with
``stop`` give the stop time instead (parsed with ``stop.time_format``). Without stop groups the stop
is the start plus ``stop.cadence_seconds`` (default 0). A key under no dataset, or whose time does
not parse, becomes a :class:`Reject` with a reason an admin can act on.

Pure functions only (stdlib): shared by the indexer Lambda, the CLI and the sandbox.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

CATALOG_KEY = "catalog.json"
REJECTS_NAME = "rejects.csv"
REJECTS_PARTITION = "_rejects"
# CloudCatalog optional entry fields an admin may set per dataset (copied verbatim).
OPTIONAL_ENTRY_FIELDS = ("description", "resource", "creation", "expiration", "verified", "citation", "contact",
                         "about", "multiyear")
STOP_GROUP_PREFIX = "stop"
_INDEX_FILE = re.compile(r"([A-Za-z0-9_-]+)_[0-9]{4}\.csv")


class Row(NamedTuple):
    """One line of a ``<id>_YYYY.csv`` index file."""

    start: str
    stop: str
    datakey: str
    filesize: int


class Parsed(NamedTuple):
    """A key that belongs to a dataset: its row and the (dataset, year) partition holding it."""

    dataset: str
    year: int
    row: Row

    @property
    def partition(self) -> str:
        return partition_id(self.dataset, self.year)


class Reject(NamedTuple):
    """A key that matches no dataset, or whose time does not parse."""

    key: str
    reason: str
    filesize: int


def partition_id(dataset: str, year: int) -> str:
    return f"{dataset}#{year:04d}"


def split_partition(partition: str) -> tuple[str, int]:
    dataset, year = partition.rsplit("#", 1)
    return dataset, int(year)


def format_time(moment: datetime, *, millis: bool = False) -> str:
    """CloudCatalog time: ``YYYY-MM-DDTHH:MM:SSZ`` (``.sss`` before the Z when the dataset has
    sub-second times), always UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


class TimeError(ValueError):
    """The named groups of a key do not parse with the dataset's time format."""


@dataclass(frozen=True)
class Dataset:
    id: str
    title: str
    prefix: str
    pattern: re.Pattern
    time_format: str
    filetype: str
    stop_cadence: timedelta = timedelta(0)
    stop_time_format: str | None = None
    optional: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, spec: dict) -> "Dataset":
        stop = spec.get("stop") or {}
        return cls(
            id=spec["id"],
            title=spec["title"],
            prefix=spec["prefix"],
            pattern=re.compile(spec["pattern"]),
            time_format=spec["time_format"],
            filetype=spec["filetype"],
            stop_cadence=timedelta(seconds=stop.get("cadence_seconds", 0)),
            stop_time_format=stop.get("time_format"),
            optional={k: spec[k] for k in OPTIONAL_ENTRY_FIELDS if spec.get(k) not in (None, "")},
        )

    @property
    def millis(self) -> bool:
        return "%f" in self.time_format or "%f" in (self.stop_time_format or "")

    @property
    def start_groups(self) -> list[str]:
        return [g for g in _groups_in_order(self.pattern) if not g.startswith(STOP_GROUP_PREFIX)]

    @property
    def stop_groups(self) -> list[str]:
        return [g for g in _groups_in_order(self.pattern) if g.startswith(STOP_GROUP_PREFIX)]

    def match(self, key: str) -> re.Match | None:
        """The pattern matched against the key after the prefix (whole remainder), or None."""
        if not key.startswith(self.prefix):
            return None
        return self.pattern.fullmatch(key, len(self.prefix))

    def times(self, match: re.Match) -> tuple[datetime, datetime]:
        start = _parse(match, self.start_groups, self.time_format)
        if self.stop_time_format:
            stop = _parse(match, self.stop_groups, self.stop_time_format)
        else:
            stop = start + self.stop_cadence
        if stop < start:
            raise TimeError(f"stop {format_time(stop)} is before start {format_time(start)}")
        return start, stop


def _groups_in_order(pattern: re.Pattern) -> list[str]:
    return [name for name, _ in sorted(pattern.groupindex.items(), key=lambda item: item[1])]


def _parse(match: re.Match, groups: list[str], fmt: str) -> datetime:
    text = "".join(match.group(g) or "" for g in groups)
    try:
        moment = datetime.strptime(text, fmt)
    except ValueError as exc:
        raise TimeError(f"time {text!r} does not parse with {fmt!r}") from exc
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


@dataclass(frozen=True)
class BucketRules:
    """The rules of one data bucket: its datasets, where its index lives, how it is shared, and
    whether it keeps versions (then a removal may leave an older version showing)."""

    name: str
    datasets: tuple[Dataset, ...]
    index_prefix: str = "index/"
    public: bool = False
    requester_pays: bool = False
    versioned: bool = False
    region: str = "us-east-1"
    title: str = ""
    description: str = ""
    contact: str = ""

    @classmethod
    def from_config(cls, spec: dict, *, region: str = "us-east-1", contact: str = "") -> "BucketRules":
        return cls(
            name=spec["name"],
            datasets=tuple(Dataset.from_config(d) for d in spec.get("datasets", [])),
            index_prefix=spec.get("index_prefix", "index/"),
            public=spec.get("public", False),
            requester_pays=spec.get("requester_pays", False),
            versioned=spec.get("versioning", False),
            region=region,
            title=spec.get("title") or spec["name"],
            description=spec.get("description", ""),
            contact=spec.get("contact") or contact,
        )

    def dataset(self, dataset_id: str) -> Dataset:
        return next(d for d in self.datasets if d.id == dataset_id)

    @property
    def index_url(self) -> str:
        return f"s3://{self.name}/{self.index_prefix}"

    def index_key(self, partition: str) -> str:
        """Object key of a partition's CSV (``<index><id>_YYYY.csv``) or of the rejects report."""
        if partition == REJECTS_PARTITION:
            return self.index_prefix + REJECTS_NAME
        dataset, year = split_partition(partition)
        return f"{self.index_prefix}{dataset}_{year:04d}.csv"

    def is_index_object(self, key: str) -> bool:
        """The registry's own output (catalog.json, <id>_YYYY.csv, rejects.csv): never a data
        object, never a reject."""
        if key == CATALOG_KEY:
            return True
        if not key.startswith(self.index_prefix):
            return False
        name = key[len(self.index_prefix):]
        if name == REJECTS_NAME:
            return True
        match = _INDEX_FILE.fullmatch(name)
        return bool(match) and any(d.id == match.group(1) for d in self.datasets)

    def classify(self, key: str, filesize: int) -> Parsed | Reject | None:
        """key → its row (first dataset whose prefix and pattern match), a Reject, or None for the
        registry's own index objects."""
        if self.is_index_object(key):
            return None
        near = []
        for dataset in self.datasets:
            match = dataset.match(key)
            if match is None:
                if key.startswith(dataset.prefix):
                    near.append(dataset.id)
                continue
            try:
                start, stop = dataset.times(match)
            except TimeError as exc:
                return Reject(key, f"{dataset.id}: {exc}", filesize)
            row = Row(format_time(start, millis=dataset.millis), format_time(stop, millis=dataset.millis),
                      f"s3://{self.name}/{key}", filesize)
            return Parsed(dataset.id, start.year, row)
        if near:
            return Reject(key, f"under the prefix of {', '.join(near)} but does not match its pattern", filesize)
        return Reject(key, "under no dataset prefix", filesize)


def load_rules(document: dict) -> dict[str, BucketRules]:
    """The rules document (``registry`` section + instance region/contact) → {bucket: rules}."""
    region = document.get("region") or "us-east-1"
    contact = document.get("contact", "")
    return {b["name"]: BucketRules.from_config(b, region=region, contact=contact) for b in document["buckets"]}


def rules_document(registry: dict, *, region: str | None, contact: str) -> dict:
    """What the indexer needs from instance.yaml, as one JSON-able document."""
    return {"buckets": registry["buckets"], "region": region, "contact": contact}
