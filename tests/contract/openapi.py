"""Check outgoing VTEX requests against VTEX's official OpenAPI 3.0 specs.

`validate_request` finds the operation a request targets and reports every way the request breaks
that operation's contract: query, header and path parameters, security (API key headers) and the
JSON request body. It checks what the specs say, not what VTEX happens to accept.

The specs live beside the repository (`<repo>/../shared/vtex-openapi`) unless `VTEX_OPENAPI_DIR`
points elsewhere. Each file is parsed once per process.

Spec defects that would make every correct request fail are repaired in memory (`_apply_errata`);
everything else is checked as written.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from jsonschema.exceptions import ValidationError, best_match
from openapi_schema_validator import OAS30WriteValidator, oas30_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT4

ENV_VAR: Final = "VTEX_OPENAPI_DIR"
# Several files define the simulation path; the connector calls it as an external marketplace.
PREFERRED_SPEC: Final = "External Marketplace Orders"

_HTTP_METHODS: Final = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
# Server variables (`https://{accountName}.{environment}.com.br`) that these specs also declare as
# path parameters although they never appear in a path template.
_SERVER_VARIABLES: Final = frozenset({"accountname", "environment"})
_MAX_MESSAGE: Final = 240

JsonObject = dict[str, Any]


class ContractViolation(AssertionError):
    """A request that does not fit its OpenAPI operation; `problems` lists every finding."""

    def __init__(self, request: str, problems: Sequence[str]) -> None:
        self.request = request
        self.problems: tuple[str, ...] = tuple(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{request} violates the VTEX OpenAPI contract:\n{lines}")


def spec_dir() -> Path:
    """The folder holding the VTEX OpenAPI JSON files; raises if it is missing."""
    override = os.environ.get(ENV_VAR)
    # <repo>/tests/contract/openapi.py: parents[3] is the folder holding the repo and `shared/`.
    default = Path(__file__).resolve().parents[3] / "shared" / "vtex-openapi"
    directory = Path(override) if override else default
    if not directory.is_dir():
        raise FileNotFoundError(
            f"VTEX OpenAPI specs not found: {directory} is not a folder. Put the spec JSON files in "
            f"<repo>/../shared/vtex-openapi or set {ENV_VAR} to their folder."
        )
    return directory


def validate_request(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: object | None,
    *,
    spec: str | None = None,
) -> str:
    """Raise ContractViolation listing every problem; return the operationId (or "METHOD template").

    `path` may be a full URL and may carry a query string (merged under `query`). `body` is the
    decoded JSON value (bytes are decoded as JSON); None means no body. `spec` restricts the search
    to spec files whose name contains it (case-insensitive).
    """
    split = urlsplit(path)
    query = {**dict(parse_qsl(split.query, keep_blank_values=True)), **query}
    operation = _find_operation(method.lower(), split.path, spec)
    headers_lower = {name.lower(): value for name, value in headers.items()}
    problems = [
        *_parameter_problems(operation, query, headers_lower),
        *_security_problems(operation, query, headers_lower),
        *_body_problems(operation, headers_lower, body),
    ]
    if problems:
        request = f"{method.upper()} {split.path} ({operation.operation_id} in {operation.spec.file.name})"
        raise ContractViolation(request, problems)
    return operation.operation_id


# --- loading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    template: str
    pattern: re.Pattern[str]
    variables: tuple[str, ...]
    # OpenAPI: concrete paths win over templated ones (`/orders/status` beats `/orders/{id}`).
    literal_segments: int
    item: JsonObject


# eq=False: hashed by identity, so it can key functools caches.
@dataclass(frozen=True, eq=False)
class _Spec:
    file: Path
    doc: JsonObject
    uri: str
    registry: Registry[Any]
    routes: tuple[_Route, ...]

    def resolve(self, node: Any, pointer: str) -> tuple[Any, str]:
        """Follow local `$ref`s; return the target and its JSON pointer (validators need both)."""
        seen: set[str] = set()
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref: str = node["$ref"]
            if not ref.startswith("#/") or ref in seen:
                raise ValueError(f"{self.file.name}: cannot follow $ref {ref!r} at {pointer}")
            seen.add(ref)
            pointer = unquote(ref[1:])
            node = self.doc
            for segment in pointer[1:].split("/"):
                node = node[segment.replace("~1", "/").replace("~0", "~")]
        return node, pointer


@dataclass(frozen=True)
class _Operation:
    spec: _Spec
    method: str
    template: str
    path_values: Mapping[str, str]
    node: JsonObject
    pointer: str

    @property
    def operation_id(self) -> str:
        operation_id = self.node.get("operationId")
        return operation_id if isinstance(operation_id, str) else f"{self.method.upper()} {self.template}"


def _pointer(*segments: str) -> str:
    return "".join("/" + segment.replace("~", "~0").replace("/", "~1") for segment in segments)


def _route(template: str, item: JsonObject) -> _Route:
    # re.split with a group alternates literal text and variable names.
    pieces = re.split(r"\{([^{}/]+)\}", template)
    regex = "".join(re.escape(piece) if index % 2 == 0 else "([^/]+)" for index, piece in enumerate(pieces))
    literal_segments = sum(1 for segment in template.split("/") if segment and "{" not in segment)
    return _Route(template, re.compile(regex), tuple(pieces[1::2]), literal_segments, item)


def _apply_errata(file_name: str, doc: JsonObject) -> None:
    """Repair spec defects that reject every correct request; each one only if still present."""
    if PREFERRED_SPEC in file_name:
        post = doc.get("paths", {}).get("/api/checkout/pub/orderForms/simulation", {}).get("post", {})
        schema = post.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        required = schema.get("required")
        item = schema.get("properties", {}).get("items", {}).get("items")
        # The simulation body requires the *item* fields id/quantity/seller at its root (copied from
        # the item schema), which no real request has. Require them per item, as the Checkout spec
        # does for the same endpoint.
        if required == ["id", "quantity", "seller"] and isinstance(item, dict) and "required" not in item:
            item["required"] = schema.pop("required")


@cache
def _load_spec(file: Path) -> _Spec:
    with file.open(encoding="utf-8") as handle:
        doc: JsonObject = json.load(handle)
    _apply_errata(file.name, doc)
    uri = f"urn:vtex-openapi:{quote(file.name)}"
    # OAS 3.0 schemas are draft-04 flavoured, the dialect OAS30Validator is built on.
    registry: Registry[Any] = Registry().with_resource(uri, DRAFT4.create_resource(doc))
    routes = tuple(_route(template, item) for template, item in doc.get("paths", {}).items())
    return _Spec(file, doc, uri, registry, routes)


def _spec_files(spec: str | None) -> list[Path]:
    directory = spec_dir()
    files = sorted(directory.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no *.json OpenAPI specs in {directory} (see {ENV_VAR})")
    if spec is None:
        # Stable sort: the preferred file first, then alphabetical.
        return sorted(files, key=lambda file: PREFERRED_SPEC not in file.name)
    chosen = [file for file in files if spec.lower() in file.name.lower()]
    if not chosen:
        names = ", ".join(file.name for file in files)
        raise ValueError(f"no VTEX spec file name contains {spec!r}; available: {names}")
    return chosen


def _find_operation(method: str, path: str, spec: str | None) -> _Operation:
    request = f"{method.upper()} {path}"
    files = _spec_files(spec)
    matches: list[tuple[int, int, _Spec, _Route, tuple[str, ...]]] = []
    for rank, file in enumerate(files):
        loaded = _load_spec(file)
        for route in loaded.routes:
            found = route.pattern.fullmatch(path)
            if found:
                matches.append((route.literal_segments, -rank, loaded, route, found.groups()))
    if not matches:
        scope = ", ".join(file.name for file in files)
        raise ContractViolation(request, [f"no path template matches {path!r} in {scope}"])
    with_method = [match for match in matches if isinstance(match[3].item.get(method), dict)]
    if not with_method:
        offered = [
            f"{route.template} [{loaded.file.name}] allows "
            + ", ".join(sorted(key.upper() for key in route.item if key in _HTTP_METHODS))
            for _, _, loaded, route, _ in matches
        ]
        raise ContractViolation(request, [f"method {method.upper()} not defined; " + "; ".join(offered)])
    _, _, loaded, route, values = max(with_method, key=lambda match: (match[0], match[1]))
    return _Operation(
        spec=loaded,
        method=method,
        template=route.template,
        path_values=dict(zip(route.variables, values, strict=True)),
        node=route.item[method],
        pointer=_pointer("paths", route.template, method),
    )


# --- checks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parameter:
    name: str
    location: str
    required: bool
    node: JsonObject
    pointer: str


def _parameters(operation: _Operation) -> list[_Parameter]:
    spec = operation.spec
    path_item_pointer = operation.pointer.rsplit("/", 1)[0]
    path_item = spec.doc["paths"][operation.template]
    by_key: dict[tuple[str, str], _Parameter] = {}
    # Operation-level parameters override path-level ones with the same name and location.
    for owner, owner_pointer in ((path_item, path_item_pointer), (operation.node, operation.pointer)):
        for index, raw in enumerate(owner.get("parameters", [])):
            node, pointer = spec.resolve(raw, f"{owner_pointer}/parameters/{index}")
            location = node["in"]
            name = node["name"]
            key = (location, name.lower() if location == "header" else name)
            by_key[key] = _Parameter(name, location, bool(node.get("required")), node, pointer)
    return list(by_key.values())


def _parameter_problems(
    operation: _Operation, query: Mapping[str, str], headers_lower: Mapping[str, str]
) -> Iterable[str]:
    cookies = _cookies(headers_lower)
    for parameter in _parameters(operation):
        if parameter.name.lower() in _SERVER_VARIABLES:
            continue
        value: str | None
        if parameter.location == "path":
            if parameter.name not in operation.path_values:
                continue  # a server variable or a stale declaration, not part of this path
            value = unquote(operation.path_values[parameter.name])
        elif parameter.location == "query":
            value = query.get(parameter.name)
        elif parameter.location == "header":
            # OAS says to ignore Accept/Content-Type/Authorization header parameters; VTEX declares
            # them required on purpose, so they are checked like any other header.
            value = headers_lower.get(parameter.name.lower())
        else:
            value = cookies.get(parameter.name)
        where = f"{parameter.location} parameter {parameter.name!r}"
        if value is None:
            if parameter.required:
                yield f"{where}: required but missing"
            continue
        if "schema" not in parameter.node:
            continue  # `content`-style parameters: presence is all we check
        schema, schema_pointer = operation.spec.resolve(parameter.node["schema"], parameter.pointer + "/schema")
        instance = _coerce(operation.spec, schema, schema_pointer, value)
        yield from _schema_problems(operation.spec, schema_pointer, instance, where)


def _coerce(spec: _Spec, schema: Any, pointer: str, raw: str) -> object:
    """Turn a query/header/path string into the type its schema wants; leave it alone if it can't.

    A string that cannot be converted stays a string, so the schema check reports the mismatch.
    """
    if not isinstance(schema, dict):
        return raw
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"[+-]?\d+", raw):
        return int(raw)
    if kind == "number":
        try:
            number = float(raw)
        except ValueError:
            return raw
        return number if math.isfinite(number) else raw
    if kind == "boolean" and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if kind == "array":
        # style form / simple with explode=false: comma-separated values.
        items, items_pointer = spec.resolve(schema.get("items", {}), pointer + "/items")
        return [_coerce(spec, items, items_pointer, part) for part in raw.split(",")] if raw else []
    return raw


def _cookies(headers_lower: Mapping[str, str]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers_lower.get("cookie", ""))
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def _security_problems(
    operation: _Operation, query: Mapping[str, str], headers_lower: Mapping[str, str]
) -> Iterable[str]:
    spec = operation.spec
    # Operation-level security replaces the global one; `[]` means anonymous access.
    requirements = operation.node.get("security", spec.doc.get("security", []))
    if not requirements:
        return []
    schemes: JsonObject = spec.doc.get("components", {}).get("securitySchemes", {})
    cookies = _cookies(headers_lower)
    alternatives: list[str] = []
    # A security list is OR of requirements; each requirement is AND of its schemes.
    for requirement in requirements:
        missing: list[str] = []
        for name in requirement:
            if name not in schemes:
                missing.append(f"scheme {name!r} (not declared in securitySchemes)")
                continue
            scheme, _ = spec.resolve(schemes[name], _pointer("components", "securitySchemes", name))
            if not _has_credential(scheme, query, headers_lower, cookies):
                missing.append(_credential_name(scheme))
        if not missing:
            return []
        alternatives.append(" + ".join(missing))
    return ["missing credentials: send " + " or ".join(f"[{option}]" for option in alternatives)]


def _has_credential(
    scheme: JsonObject,
    query: Mapping[str, str],
    headers_lower: Mapping[str, str],
    cookies: Mapping[str, str],
) -> bool:
    value: str | None
    if scheme.get("type") == "apiKey":
        name = str(scheme.get("name", ""))
        sources: dict[str, Mapping[str, str]] = {"header": headers_lower, "query": query, "cookie": cookies}
        source = sources.get(str(scheme.get("in")), {})
        value = source.get(name.lower() if scheme.get("in") == "header" else name)
        return bool(value and value.strip())  # an empty key is as good as none
    authorization = headers_lower.get("authorization", "").strip()
    if scheme.get("type") == "http":
        return authorization.lower().startswith(str(scheme.get("scheme", "")).lower() + " ")
    return bool(authorization)  # oauth2 / openIdConnect: a token of some kind


def _credential_name(scheme: JsonObject) -> str:
    if scheme.get("type") == "apiKey":
        return f"{scheme.get('in')} {scheme.get('name')!r}"
    if scheme.get("type") == "http":
        return f"Authorization: {scheme.get('scheme')} header"
    return "Authorization header"


def _body_problems(operation: _Operation, headers_lower: Mapping[str, str], body: object | None) -> list[str]:
    spec = operation.spec
    if "requestBody" not in operation.node:
        return [] if body is None else ["body: the operation declares no request body, but one was sent"]
    request_body, pointer = spec.resolve(operation.node["requestBody"], operation.pointer + "/requestBody")
    if body is None:
        return ["body: required by the spec but none was sent"] if request_body.get("required") else []
    content: JsonObject = request_body.get("content", {})
    content_type = headers_lower.get("content-type")
    media_type = _pick_media_type(content, content_type)
    if media_type is None:
        return [f"body: Content-Type {content_type!r} not accepted; the spec lists {', '.join(content)}"]
    media = content[media_type]
    if "schema" not in media:
        return []
    if "json" in media_type:
        try:
            # Round-trip so bytes are parsed and tuples etc. look like what goes on the wire.
            raw = body if isinstance(body, bytes | bytearray) else json.dumps(body)
            body = json.loads(raw)
        except (TypeError, ValueError) as exc:
            return [f"body: not JSON ({exc})"]
    schema_pointer = f"{pointer}/content{_pointer(media_type)}/schema"
    return list(_schema_problems(spec, schema_pointer, body, "body"))


def _pick_media_type(content: Mapping[str, Any], content_type: str | None) -> str | None:
    if not content:
        return None
    if content_type is None:
        # Missing Content-Type is reported by the header check; validate as JSON anyway.
        return "application/json" if "application/json" in content else next(iter(content))
    wanted = content_type.split(";", 1)[0].strip().lower()
    by_lower = {key.lower(): key for key in content}
    for candidate in (wanted, wanted.split("/", 1)[0] + "/*", "*/*"):
        if candidate in by_lower:
            return by_lower[candidate]
    return None


# --- schema validation -------------------------------------------------------------------------


@cache
def _validator(spec: _Spec, schema_pointer: str) -> Any:
    # Referencing the schema by pointer into the registered document lets its own
    # `#/components/...` refs resolve against the same file. The write validator applies request
    # semantics: readOnly properties are neither required nor allowed.
    root = {"$ref": f"{spec.uri}#{quote(schema_pointer, safe='/~')}"}
    return OAS30WriteValidator(root, registry=spec.registry, format_checker=oas30_format_checker)


def _schema_problems(spec: _Spec, schema_pointer: str, instance: object, where: str) -> Iterable[str]:
    errors: list[ValidationError] = list(_validator(spec, schema_pointer).iter_errors(instance))
    errors.sort(key=lambda error: [str(part) for part in error.absolute_path])
    reported_nulls: set[tuple[object, ...]] = set()
    for error in errors:
        location = _location(where, error.absolute_path)
        if error.validator == "type" and error.instance is None:
            # OAS30 `type` yields two errors for a null ("None for not nullable" and "None is not
            # of type"); say it once, in JSON terms.
            key = (*error.absolute_path, *error.absolute_schema_path)
            if key not in reported_nulls:
                reported_nulls.add(key)
                yield f"{location}: null is not allowed (type {error.validator_value!r}, not nullable)"
            continue
        message = _shorten(error.message)
        if error.context:
            # anyOf/oneOf: point at the most relevant branch failure.
            closest = best_match(error.context)
            message += f" (closest: {_location(where, closest.absolute_path)}: {_shorten(closest.message)})"
        yield f"{location}: {message}"


def _location(where: str, path: Iterable[object]) -> str:
    text = where
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_$][\w$-]*", part):
            text += f".{part}"
        else:
            text += f"[{json.dumps(part)}]"
    return text


def _shorten(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"
