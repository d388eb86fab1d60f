"""What a step of OrderLifecycle can come back with besides its result.

In a module of their own, imported passed through the workflow sandbox: the sandbox runs the workflow's
own module again for every new order, and building a dataclass there cost about a millisecond each time.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.failures import Disposition


@dataclass(frozen=True)
class Failure:
    step: str
    disposition: Disposition
    code: str
    reason: str
    # The ApplicationError type ("VtexTransient", "VtexBusiness", ...); "" when there was none.
    kind: str = ""


class Restart(Exception):
    """The history is long: continue as new at this safe point (raised only from `_pause`)."""


class Interrupted:
    """A step given up because the order is being canceled."""


INTERRUPTED = Interrupted()
