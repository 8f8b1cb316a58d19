"""Who is calling: only ever the claims API Gateway's JWT authorizer verified."""
from __future__ import annotations

from dataclasses import dataclass

from hc_portal.errors import ApiError

ADMINS_GROUP = "admins"


@dataclass(frozen=True)
class Caller:
    sub: str
    email: str
    groups: tuple[str, ...]

    @property
    def admin(self) -> bool:
        return ADMINS_GROUP in self.groups


def groups_of(value) -> tuple[str, ...]:
    """HTTP APIs pass array claims flattened to a string like ``[admins staff]``."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return tuple(g.strip().strip('"') for g in text.replace(",", " ").split() if g.strip())


def caller(event: dict) -> Caller:
    claims = (((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
    sub = claims.get("sub")
    if not sub:
        # Unreachable behind the authorizer; refuse rather than guess an owner.
        raise ApiError(401, "not signed in", code="unauthorized")
    email = claims.get("email") or claims.get("cognito:username") or claims.get("username") or sub
    return Caller(sub=sub, email=email, groups=groups_of(claims.get("cognito:groups")))
