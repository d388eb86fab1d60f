"""The OpenAPI contract validator must both pass correct requests and catch broken ones."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.contract.openapi import ENV_VAR, ContractViolation, spec_dir, validate_request

PLACE_ORDER = "/api/fulfillment/pvt/orders"
SIMULATION = "/api/checkout/pub/orderForms/simulation"
JSON_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}
AUTH = {"X-VTEX-API-AppKey": "vtexappkey-test-ABC", "X-VTEX-API-AppToken": "secret"}
HEADERS = {**JSON_HEADERS, **AUTH}
PLACE_QUERY = {"affiliateId": "MKP", "sc": "1"}

# Every field `placeFulfillmentOrderRequest` (External Marketplace Orders spec) requires, at every level.
PLACE_BODY: dict[str, Any] = {
    "marketplaceOrderId": "1138",
    "marketplaceServicesEndpoint": "https://marketplace.example.com/vtex",
    "marketplacePaymentValue": 12990,
    "isCreatedAsync": False,
    "items": [{"id": "2001773", "quantity": 1, "seller": "1", "price": 11990}],
    "clientProfileData": {
        "email": "buyer@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "documentType": "cpf",
        "document": "12345678900",
        "corporateName": "Analytical Engines Ltd",
    },
    "shippingData": {
        "address": {
            "addressType": "residential",
            "receiverName": "Ada Lovelace",
            "postalCode": "22250040",
            "city": "Rio de Janeiro",
            "state": "RJ",
            "country": "BRA",
            "street": "Praia de Botafogo",
            "number": "300",
        },
        "logisticsInfo": [{"itemIndex": 0, "selectedSla": "Normal", "price": 1000, "lockTTL": "1d"}],
    },
    "paymentData": None,
}


def place_body(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(PLACE_BODY)
    body.update(changes)
    return body


def violation(
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    body: object | None,
    *,
    spec: str | None = None,
) -> ContractViolation:
    with pytest.raises(ContractViolation) as caught:
        validate_request(method, path, query, headers, body, spec=spec)
    return caught.value


def test_spec_dir_defaults_to_shared_folder_beside_repo() -> None:
    assert spec_dir().is_dir()
    assert any(spec_dir().glob("*External Marketplace Orders.json"))


def test_missing_spec_dir_is_an_error_not_a_skip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=ENV_VAR):
        validate_request("GET", "/anything", {}, {}, None)


# --- Place fulfillment order -------------------------------------------------------------------


def test_valid_place_fulfillment_order_passes() -> None:
    assert validate_request("POST", PLACE_ORDER, PLACE_QUERY, HEADERS, place_body()) == "PlaceFulfillmentOrder"


def test_header_names_are_case_insensitive() -> None:
    headers = {name.lower(): value for name, value in HEADERS.items()}
    assert validate_request("POST", PLACE_ORDER, PLACE_QUERY, headers, place_body()) == "PlaceFulfillmentOrder"


def test_missing_affiliate_id_fails() -> None:
    error = violation("POST", PLACE_ORDER, {"sc": "1"}, HEADERS, place_body())
    assert error.problems == ("query parameter 'affiliateId': required but missing",)


def test_missing_required_body_field_fails() -> None:
    body = place_body()
    del body["marketplaceOrderId"]
    error = violation("POST", PLACE_ORDER, PLACE_QUERY, HEADERS, body)
    assert error.problems == ("body: 'marketplaceOrderId' is a required property",)


def test_missing_nested_required_field_fails() -> None:
    body = place_body()
    del body["shippingData"]["address"]["postalCode"]
    error = violation("POST", PLACE_ORDER, PLACE_QUERY, HEADERS, body)
    assert error.problems == ("body.shippingData.address: 'postalCode' is a required property",)


def test_string_payment_value_fails() -> None:
    error = violation("POST", PLACE_ORDER, PLACE_QUERY, HEADERS, place_body(marketplacePaymentValue="129.90"))
    assert error.problems == ("body.marketplacePaymentValue: '129.90' is not of type 'integer'",)


def test_null_in_non_nullable_field_fails() -> None:
    body = place_body()
    body["clientProfileData"]["email"] = None
    error = violation("POST", PLACE_ORDER, PLACE_QUERY, HEADERS, body)
    assert error.problems == ("body.clientProfileData.email: null is not allowed (type 'string', not nullable)",)


def test_null_in_nullable_field_passes() -> None:
    body = place_body()
    body["clientProfileData"].update(corporateName=None, tradeName=None, isCorporate=None)
    assert validate_request("POST", PLACE_ORDER, PLACE_QUERY, HEADERS, body) == "PlaceFulfillmentOrder"


def test_missing_auth_headers_fail() -> None:
    error = violation("POST", PLACE_ORDER, PLACE_QUERY, JSON_HEADERS, place_body())
    [problem] = error.problems
    assert "X-VTEX-API-AppKey" in problem and "X-VTEX-API-AppToken" in problem


def test_half_of_the_api_key_is_not_enough() -> None:
    headers = {**JSON_HEADERS, "X-VTEX-API-AppKey": "vtexappkey-test-ABC", "X-VTEX-API-AppToken": ""}
    [problem] = violation("POST", PLACE_ORDER, PLACE_QUERY, headers, place_body()).problems
    assert "X-VTEX-API-AppToken" in problem and "X-VTEX-API-AppKey" not in problem


def test_missing_json_headers_fail() -> None:
    error = violation("POST", PLACE_ORDER, PLACE_QUERY, AUTH, place_body())
    assert set(error.problems) == {
        "header parameter 'Accept': required but missing",
        "header parameter 'Content-Type': required but missing",
    }


def test_every_problem_is_reported_at_once() -> None:
    body = place_body(marketplacePaymentValue="x", marketplaceServicesEndpoint=None)
    del body["marketplaceOrderId"]
    error = violation("POST", PLACE_ORDER, {}, {"Accept": "application/json"}, body)
    joined = "\n".join(error.problems)
    for expected in (
        "'affiliateId'",
        "'Content-Type'",
        "X-VTEX-API-AppKey",
        "'marketplaceOrderId' is a required property",
        "body.marketplacePaymentValue",
        "body.marketplaceServicesEndpoint: null is not allowed",
    ):
        assert expected in joined
    assert len(error.problems) == 6
    assert "PlaceFulfillmentOrder" in str(error)


# --- other operations ----------------------------------------------------------------------------


def test_authorize_dispatch_matches_its_path_template() -> None:
    path = "/api/fulfillment/pvt/orders/MKP-1138/fulfill"
    body = {"marketplaceOrderId": "1138"}
    assert validate_request("POST", path, PLACE_QUERY, HEADERS, body) == "AuthorizeDispatchForFulfillmentOrder"
    error = violation("POST", path, PLACE_QUERY, HEADERS, {"marketplaceOrderId": 1138})
    assert error.problems == ("body.marketplaceOrderId: 1138 is not of type 'string'",)


def test_get_sku_and_context_passes() -> None:
    path = "/api/catalog_system/pvt/sku/stockkeepingunitbyid/1"
    assert validate_request("GET", path, {"sc": "1"}, HEADERS, None) == "SkuContext"


def test_get_sku_and_context_checks_integer_parameters() -> None:
    error = violation("GET", "/api/catalog_system/pvt/sku/stockkeepingunitbyid/ABC", {"sc": "one"}, HEADERS, None)
    assert set(error.problems) == {
        "path parameter 'skuId': 'ABC' is not of type 'integer'",
        "query parameter 'sc': 'one' is not of type 'integer'",
    }


def test_catalog_accepts_a_user_token_instead_of_an_api_key() -> None:
    # Catalog security is [appKey AND appToken] OR [VtexIdclientAutCookie].
    headers = {**JSON_HEADERS, "VtexIdclientAutCookie": "eyJhbGciOi..."}
    path = "/api/catalog_system/pvt/sku/stockkeepingunitbyid/1"
    assert validate_request("GET", path, {}, headers, None) == "SkuContext"


def test_unknown_path_and_method_fail() -> None:
    assert "no path template matches" in violation("GET", "/api/nowhere", {}, HEADERS, None).problems[0]
    [problem] = violation("DELETE", PLACE_ORDER, PLACE_QUERY, HEADERS, None).problems
    assert "DELETE" in problem and "allows POST" in problem


def test_required_request_body_must_be_sent() -> None:
    error = violation("POST", "/api/order-integration/orders", {"affiliateId": "MKP"}, HEADERS, None)
    assert error.problems == ("body: required by the spec but none was sent",)


def test_body_on_a_bodiless_operation_fails() -> None:
    path = "/api/catalog_system/pvt/sku/stockkeepingunitbyid/1"
    error = violation("GET", path, {}, HEADERS, {"unexpected": True})
    assert error.problems == ("body: the operation declares no request body, but one was sent",)


# --- simulation: several specs define this path --------------------------------------------------

SIMULATION_BODY: dict[str, Any] = {
    "items": [{"id": "2001773", "quantity": 1, "seller": "1"}],
    "postalCode": "22250040",
    "country": "BRA",
    "geoCoordinates": [],
    "isCheckedIn": False,
    "storeId": None,
}


def test_simulation_is_validated_against_the_external_marketplace_spec() -> None:
    query = {"sc": "1", "affiliateId": "MKP"}
    operation = validate_request("POST", SIMULATION, query, HEADERS, SIMULATION_BODY)
    assert operation == "fulfillment-simulation-external-marketplace"
    # That spec inherits the global appKey/appToken security; Checkout's CartSimulation declares
    # `security: []`, so this failure proves which spec was used.
    [problem] = violation("POST", SIMULATION, query, JSON_HEADERS, SIMULATION_BODY).problems
    assert "X-VTEX-API-AppKey" in problem
    checkout_body = {**SIMULATION_BODY, "allowedOutdatedData": []}
    assert validate_request("POST", SIMULATION, {}, JSON_HEADERS, checkout_body, spec="Checkout") == "CartSimulation"


def test_simulation_requires_sku_fields_per_item() -> None:
    # The spec puts `required: [id, quantity, seller]` on the body root; the validator moves it to
    # the items, where Checkout has it (see `_apply_errata`).
    body = {**SIMULATION_BODY, "items": [{"id": "2001773", "quantity": "1"}]}
    error = violation("POST", SIMULATION, {"sc": "1"}, HEADERS, body)
    assert set(error.problems) == {
        "body.items[0]: 'seller' is a required property",
        "body.items[0].quantity: '1' is not of type 'integer'",
    }


def test_unknown_spec_name_is_a_usage_error() -> None:
    with pytest.raises(ValueError, match="no VTEX spec file"):
        validate_request("POST", SIMULATION, {}, HEADERS, SIMULATION_BODY, spec="Pricing")


# --- generic OpenAPI rules, on a tiny spec (the VTEX specs have no enum or typed header params) ---

TINY_SPEC: dict[str, Any] = {
    "openapi": "3.0.0",
    "info": {"title": "tiny", "version": "1"},
    "security": [{"appKey": []}],
    "paths": {
        "/orders/{orderId}": {
            "parameters": [{"$ref": "#/components/parameters/Status"}],
            "put": {
                "operationId": "UpdateOrder",
                "parameters": [
                    {"name": "orderId", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "X-Attempt", "in": "header", "required": True, "schema": {"type": "integer"}},
                    {"name": "ids", "in": "query", "schema": {"type": "array", "items": {"type": "integer"}}},
                ],
                "requestBody": {"$ref": "#/components/requestBodies/Order"},
            },
        },
        "/orders/status": {"get": {"security": [], "responses": {}}},
    },
    "components": {
        "securitySchemes": {"appKey": {"type": "apiKey", "in": "header", "name": "X-Key"}},
        "parameters": {
            "Status": {
                "name": "status",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "enum": ["new", "approved"]},
            }
        },
        "requestBodies": {
            "Order": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}},
            }
        },
        "schemas": {
            "Order": {
                "type": "object",
                "required": ["id", "kind"],
                "properties": {
                    "id": {"type": "string", "readOnly": True},
                    "kind": {"type": "string", "enum": ["a", "b"], "nullable": True},
                    "note": {"$ref": "#/components/schemas/Note"},
                },
            },
            "Note": {"type": "string", "maxLength": 5},
        },
    },
}


@pytest.fixture
def tiny_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_SPEC), encoding="utf-8")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))


@pytest.mark.usefixtures("tiny_spec")
def test_tiny_spec_valid_request_passes() -> None:
    headers = {"x-attempt": "2", "X-Key": "k", "Content-Type": "application/json"}
    # `id` is required but readOnly, so a request may (and must) leave it out.
    body = {"kind": "a", "note": "hi"}
    assert validate_request("PUT", "/orders/A-1", {"status": "new", "ids": "1,2"}, headers, body) == "UpdateOrder"


@pytest.mark.usefixtures("tiny_spec")
def test_tiny_spec_reports_enum_header_type_array_and_ref_problems() -> None:
    headers = {"X-Attempt": "second", "Content-Type": "application/json"}
    body = {"id": "A-1", "kind": "c", "note": "too long"}
    error = violation("PUT", "/orders/A-1", {"status": "old", "ids": "1,x"}, headers, body)
    assert set(error.problems) == {
        "query parameter 'status': 'old' is not one of ['new', 'approved']",
        "header parameter 'X-Attempt': 'second' is not of type 'integer'",
        "query parameter 'ids'[1]: 'x' is not of type 'integer'",
        "missing credentials: send [header 'X-Key']",
        "body.id: Tried to write read-only property with A-1",
        "body.kind: 'c' is not one of ['a', 'b']",
        "body.note: 'too long' is too long",
    }


@pytest.mark.usefixtures("tiny_spec")
def test_tiny_spec_prefers_concrete_paths_and_honours_empty_security() -> None:
    assert validate_request("GET", "/orders/status", {}, {}, None) == "GET /orders/status"


@pytest.mark.usefixtures("tiny_spec")
def test_tiny_spec_content_type_must_match_request_body() -> None:
    headers = {"X-Attempt": "1", "X-Key": "k", "Content-Type": "text/plain"}
    error = violation("PUT", "/orders/A-1", {"status": "new"}, headers, {"kind": "a"})
    assert error.problems == ("body: Content-Type 'text/plain' not accepted; the spec lists application/json",)
