"""The one error type the API turns into a JSON 4xx: status, the field at fault, words for people."""
from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.code = code or {400: "bad_request", 403: "forbidden", 404: "not_found", 409: "conflict"}.get(status, "error")

    def body(self) -> dict:
        out = {"error": self.code, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


def bad(field: str, message: str) -> ApiError:
    """A 400 that names the field, e.g. ``instance_type: not in the allowed list``."""
    return ApiError(400, f"{field}: {message}", field=field)


def not_found(what: str) -> ApiError:
    # Another user's resource is reported exactly like a missing one: nothing leaks about it.
    return ApiError(404, f"{what} not found")
