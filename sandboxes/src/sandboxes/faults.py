"""The fault rule both sandboxes inject failures with: which requests it answers, with what status, how
often, how late, and whether the real operation happens first. Each sandbox adds what its own error
answers carry (VTEX: code and message; Mercado Libre: a body)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

JSON = dict[str, Any]


@dataclass
class FaultRule:
    """An injected failure for requests whose method (None: any) and path match.

    `times` counts the matching requests it answers (-1: forever). With `after_effect` the real operation
    runs first and only its answer is replaced, as when the service did the work but the response never
    reached the caller. `probability` below 1 answers only that share of the matching requests, drawn from
    the sandbox's seeded generator; a request the rule lets pass is offered to the next matching rule and
    does not count against `times`.
    """

    method: str | None
    path_contains: str
    status: int
    times: int = 1
    retry_after: int | None = None
    delay_seconds: float = 0.0
    after_effect: bool = False
    probability: float = 1.0

    def __post_init__(self) -> None:
        if self.method is not None:
            self.method = self.method.upper()
        if not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code (100-599)")
        if self.times == 0 or self.times < -1:
            raise ValueError("times must be positive, or -1 for forever")
        if self.delay_seconds < 0:
            raise ValueError("delay_seconds must not be negative")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must not be negative")
        if not 0 < self.probability <= 1:
            raise ValueError("probability must be above 0 and at most 1")

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method.upper()) and self.path_contains in path

    def to_json(self) -> JSON:
        return asdict(self)


# The JSON types of FaultRule's own fields, for the admin APIs.
FIELD_TYPES: Mapping[str, tuple[type, ...]] = {
    "method": (str, type(None)),
    "path_contains": (str,),
    "status": (int,),
    "times": (int,),
    "retry_after": (int, type(None)),
    "delay_seconds": (int, float),
    "after_effect": (bool,),
    "probability": (int, float),
}

R = TypeVar("R", bound=FaultRule)


def rule_from_json(
    rule: type[R], data: object, *, types: Mapping[str, tuple[type, ...]], required: Collection[str]
) -> R:
    """A rule from an admin API's JSON (`types`: each field's JSON types); ValueError says what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object with FaultRule fields")
    unknown = sorted(set(data) - {f.name for f in fields(rule)})
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(unknown)}")
    for name in required:
        if name not in data:
            raise ValueError(f"{name} is required")
    for name, value in data.items():
        # bool is an int in Python; only after_effect may be one.
        if not isinstance(value, types[name]) or (isinstance(value, bool) and name != "after_effect"):
            raise ValueError(f"{name} has the wrong type")
    return rule(**{"method": None, **data})
