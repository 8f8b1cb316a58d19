"""List prices for the cost estimate, read from ``heliocloud/data/prices.yaml`` (per region,
with the date they were taken)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PRICES_FILE = Path(__file__).parent / "data" / "prices.yaml"


class PriceError(Exception):
    """The price file cannot answer (e.g. a region it has no prices for)."""


@dataclass(frozen=True)
class Prices:
    region: str
    as_of: str
    hours_per_month: float
    data: dict

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def month(self, hourly: float) -> float:
        return hourly * self.hours_per_month

    def instance(self, instance_type: str) -> dict | None:
        return self["ec2"]["instances"].get(instance_type)

    def instance_hour(self, instance_type: str, *, spot: bool = False) -> float | None:
        spec = self.instance(instance_type)
        if spec is None:
            return None
        return spec["hour"] * (self["ec2"]["spot_fraction"] if spot else 1.0)

    def ebs_gb_month(self, volume_type: str) -> float:
        table = self["ebs_gb_month"]
        return table.get(volume_type, table["gp3"])

    @property
    def ipv4_month(self) -> float:
        return self.month(self["network"]["public_ipv4_hour"])


def load_prices(region: str | None = None, path: Path = PRICES_FILE) -> Prices:
    """Prices for ``region`` (default us-east-1); PriceError names the regions the file has."""
    doc = yaml.safe_load(path.read_text())
    region = region or "us-east-1"
    regions = doc["regions"]
    if region not in regions:
        raise PriceError(
            f"no prices for region {region!r} in {path.name} (it has: {', '.join(sorted(regions))}); "
            "prices differ by region: add a section for it, or pass --region us-east-1 for an approximation"
        )
    data = regions[region]
    return Prices(region=region, as_of=str(data["as_of"]), hours_per_month=float(doc["hours_per_month"]), data=data)
