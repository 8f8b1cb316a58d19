"""Portal settings the JSON Schema cannot check on its own."""
from __future__ import annotations

from heliocloud.config import semantic_check


@semantic_check
def _portal_checks(cfg: dict):
    """What the schema cannot say: bounds in order, unique names."""
    portal = cfg["portal"]
    vol = portal["volume_gb"]
    if not vol["min"] <= vol["default"] <= vol["max"]:
        yield ["portal", "volume_gb"], f"needs min <= default <= max (got {vol['min']}, {vol['default']}, {vol['max']})"
    for key, field in (("images", "name"), ("instance_types", "type")):
        seen = set()
        for index, entry in enumerate(portal[key]):
            if entry[field] in seen:
                yield ["portal", key, index, field], f"{entry[field]!r} is listed twice"
            seen.add(entry[field])
