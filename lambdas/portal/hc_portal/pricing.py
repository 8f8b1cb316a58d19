"""On-demand Linux prices from the AWS Price List (Pricing API) for the portal's price table."""
from __future__ import annotations

import json

PRICING_REGION = "us-east-1"  # the Pricing API's own endpoint; it answers for every region


def product_filters(instance_type: str, region: str) -> list[dict]:
    """Shared-tenancy, Linux, no pre-installed software, on-demand capacity: the price a VM pays."""
    fields = {"instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux", "tenancy": "Shared",
              "preInstalledSw": "NA", "capacitystatus": "Used", "licenseModel": "No License required"}
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fields.items()]


def on_demand_usd(price_list: list[str | dict]) -> float | None:
    """The hourly USD price in a GetProducts PriceList, or None if it has none."""
    for entry in price_list:
        product = json.loads(entry) if isinstance(entry, str) else entry
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                usd = dimension.get("pricePerUnit", {}).get("USD")
                if usd is not None and dimension.get("unit", "Hrs").lower().startswith("hr"):
                    return round(float(usd), 6)
    return None


def lookup(pricing, instance_type: str, region: str) -> float | None:
    response = pricing.get_products(ServiceCode="AmazonEC2", Filters=product_filters(instance_type, region), MaxResults=10)
    return on_demand_usd(response.get("PriceList", []))


def refreshed(instance_types: list[dict], prices: dict[tuple[str, str], float | None]) -> list[dict]:
    """The allow list with each (type, region) price replaced by the looked-up one; a region the
    Price List does not know keeps its configured price."""
    out = []
    for entry in instance_types:
        new = {**entry, "prices": dict(entry["prices"])}
        for (instance_type, region), usd in prices.items():
            if instance_type == entry["type"] and usd is not None:
                new["prices"][region] = usd
        out.append(new)
    return out
