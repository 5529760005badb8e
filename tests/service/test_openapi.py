"""The API docs: served with no asset from another host, and a document that says everything.

One in-process app (real pack, SQLite, API keys on) serves ``/schema`` and
``/schema/openapi.json``; the document is checked for descriptions, request examples,
problem+json responses and webhook bodies, and real error bodies are validated against the
``Problem`` schema it documents.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
from jsonschema import Draft202012Validator
from litestar.testing import TestClient

from service import schemas
from service.app import create_app
from service.openapi import ASSETS, README_REQUEST, REQUEST_EXAMPLES, WEBHOOK_PREFIX, finish_document
from service.schemas import AnalyzeRequest, AppendRequest, PolicyValidateRequest
from service.settings import Settings, hash_api_key

pytestmark = pytest.mark.pack

ROOT = Path(__file__).resolve().parents[2]
KEY = "docs-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
DOC_PAGES = ("/schema", "/schema/swagger")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, test_pack: Path) -> Iterator[TestClient[Any]]:
    env = {
        "SWITCHBOARD_API_KEYS": f"docs={hash_api_key(KEY)}",
        "SWITCHBOARD_DATA_DIR": str(tmp_path_factory.mktemp("openapi") / "var"),
        "SWITCHBOARD_PACK": str(test_pack),
        "SWITCHBOARD_RATE_LIMIT": "0",
        "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
        "SWITCHBOARD_LOG_LEVEL": "WARNING",
    }
    with TestClient(create_app(Settings.from_env(env))) as test_client:
        deadline = time.monotonic() + 60
        while test_client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, test_client.get("/readyz").text
            time.sleep(0.05)
        yield test_client


@pytest.fixture(scope="module")
def document(client: TestClient[Any]) -> dict[str, Any]:
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def _validator(document: dict[str, Any], ref: str) -> Draft202012Validator:
    """A validator for one ``$ref`` of the document, resolving references inside it."""
    return Draft202012Validator({"$ref": ref, "components": document["components"]})


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield path, method, operation


def _example(media: dict[str, Any]) -> Any:
    """A media type's ``example``, or the value of its first named ``examples`` entry."""
    if "example" in media:
        return media["example"]
    return next(iter(media["examples"].values()))["value"]


class _AssetLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("page", DOC_PAGES)
def test_the_docs_page_loads_every_asset_from_its_own_origin(client: TestClient[Any], page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    parser = _AssetLinks()
    parser.feed(response.text)
    assert len(parser.urls) == 4, parser.urls  # icon, stylesheet, two scripts
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 500, url
    assert "cdn." not in response.text and "unpkg" not in response.text
    assert {url.rsplit("/", 1)[1] for url in parser.urls} == set(ASSETS)


def test_the_assets_have_their_content_types(client: TestClient[Any]) -> None:
    types = {name: client.get(f"/schema/assets/{name}").headers["content-type"] for name in ASSETS}
    assert types["swagger-ui-bundle.js"].startswith("text/javascript")
    assert types["swagger-ui.css"].startswith("text/css")
    assert types["favicon-32x32.png"] == "image/png"
    assert client.get("/schema/assets/nothing-here.js").status_code == 404


def test_at_least_nine_in_ten_schemas_are_described(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    described = [name for name, schema in schemas.items() if schema.get("description", "").strip()]
    assert len(schemas) >= 40
    assert len(described) / len(schemas) >= 0.9, sorted(set(schemas) - set(described))
    # Docstrings, not a base class's: a request says what it is.
    assert schemas["AnalyzeRequest"]["description"].startswith("``POST /v1/analyze``")
    assert "unknown fields" not in schemas["TurnIn"]["description"]


def _described(field: dict[str, Any]) -> bool:
    """A field says what it is, or refers to a described schema."""
    return "description" in field or "$ref" in field or any(_described(b) for b in field.get("anyOf", []))


def test_every_field_of_the_service_schemas_is_described(document: dict[str, Any]) -> None:
    ours = [
        value.__name__
        for value in vars(schemas).values()
        if isinstance(value, type)
        and issubclass(value, msgspec.Struct)
        and value.__module__ == schemas.__name__
    ]
    components = document["components"]["schemas"]
    documented = [name for name in ours if name in components]
    assert len(documented) >= 20, documented
    for name in documented:
        properties = components[name].get("properties", {})
        assert all(_described(field) for field in properties.values()), (
            name,
            [field for field, schema in properties.items() if not _described(schema)],
        )


def test_every_request_body_has_an_example_that_validates(document: dict[str, Any]) -> None:
    bodies = 0
    for path, method, operation in _operations(document):
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
            assert "example" in media, f"{method} {path} {media_type}"
            _validator(document, media["schema"]["$ref"]).validate(media["example"])
            bodies += 1
    assert bodies >= 7  # analyze, turns, policy/validate and the four webhooks


def test_the_request_examples_decode_as_the_service_decodes_them() -> None:
    types = {
        "/v1/analyze": AnalyzeRequest,
        "/v1/conversations/{conversation_id}/turns": AppendRequest,
        "/v1/policy/validate": PolicyValidateRequest,
    }
    for path, type_ in types.items():
        msgspec.json.decode(json.dumps(REQUEST_EXAMPLES[path]), type=type_)


def test_the_analyze_example_is_the_readme_request() -> None:
    section = (ROOT / "README.md").read_text().split("## Try it: one request", 1)[1]
    match = re.search(r"-d '(\{.+?\})'\n```", section, re.S)
    assert match
    assert json.loads(match.group(1)) == README_REQUEST


def test_every_v1_operation_documents_its_problems(document: dict[str, Any]) -> None:
    checked = 0
    for path, method, operation in _operations(document):
        if not path.startswith("/v1/") or path.startswith(WEBHOOK_PREFIX):
            continue
        expected = {"401", "429", "503"}
        if "requestBody" in operation:
            expected |= {"400", "413", "415", "422"}
        responses = operation["responses"]
        assert expected <= set(responses), (method, path, sorted(responses))
        for status, response in responses.items():
            if int(status) >= 400:
                media = response["content"]["application/problem+json"]
                assert media["schema"] == {"$ref": "#/components/schemas/Problem"}, (method, path, status)
                assert response["description"] and _example(media)["status"] == int(status)
        checked += 1
    assert checked >= 11


def test_every_error_response_in_the_document_is_problem_json(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert set(response["content"]) == {"application/problem+json"}, (method, path, status)


def test_the_problem_schema_is_the_services_shape(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert {"instance", "request_id", "errors"} <= set(problem["properties"])
    assert problem.get("additionalProperties", True) is not False  # extension members


def test_real_problems_match_the_documented_schema(client: TestClient[Any], document: dict[str, Any]) -> None:
    validator = _validator(document, "#/components/schemas/Problem")
    unknown_field = {"turns": [{"speaker": "customer", "text": "hi"}], "speeker": "customer"}
    analyze = document["paths"]["/v1/analyze"]["post"]["responses"]
    get = document["paths"]["/v1/conversations/{conversation_id}"]["get"]["responses"]
    cases = [
        (client.post("/v1/analyze", json=README_REQUEST), analyze),  # no API key
        (client.post("/v1/analyze", json=unknown_field, headers=AUTH), analyze),
        (
            client.post("/v1/analyze", content=b"{", headers={**AUTH, "Content-Type": "application/json"}),
            analyze,
        ),
        (
            client.post("/v1/analyze", content=b"turns", headers={**AUTH, "Content-Type": "text/plain"}),
            analyze,
        ),
        (client.get("/v1/conversations/never-seen", headers=AUTH), get),
    ]
    assert [response.status_code for response, _ in cases] == [401, 422, 400, 415, 404]
    for response, documented in cases:
        assert response.headers["content-type"].startswith("application/problem+json")
        validator.validate(response.json())
        assert str(response.status_code) in documented


def test_webhook_bodies_are_documented(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    media_types = {}
    for path in ("twilio/voice", "twilio/conversations", "chatwoot", "generic"):
        body = document["paths"][f"{WEBHOOK_PREFIX}/{path}"]["post"]["requestBody"]
        assert body["description"]
        ((media_type, media),) = body["content"].items()
        media_types[path] = media_type
        schema = schemas[media["schema"]["$ref"].rsplit("/", 1)[1]]
        assert schema["description"]
        if path != "generic":  # the generic body is the adapter's own type (its fields are the API's)
            assert all("description" in f or "$ref" in f for f in schema["properties"].values()), path
    assert media_types == {
        "twilio/voice": "application/x-www-form-urlencoded",
        "twilio/conversations": "application/x-www-form-urlencoded",
        "chatwoot": "application/json",
        "generic": "application/json",
    }
    assert "CallSid" in schemas["TwilioTranscriptionEvent"]["required"]


def test_untagged_unions_are_any_of(document: dict[str, Any]) -> None:
    assert '"oneOf"' not in json.dumps(document)
    customer = _validator(document, "#/components/schemas/CustomerIn")
    customer.validate({"attributes": {"plan": "pro", "seats": 3, "mrr": 99.5, "vip": True}})
    assert not customer.is_valid({"attributes": {"plan": ["pro"]}})


def test_finish_document_is_pure_and_idempotent(document: dict[str, Any]) -> None:
    again = finish_document(document)
    assert again == document and again is not document


@pytest.mark.parametrize(
    ("customer", "field"),
    [
        ({"tenure_months": "40"}, "customer.tenure_months"),  # Litestar's lax conversion took these
        ({"lifetime_value": "12.5"}, "customer.lifetime_value"),
        ({"contacts_last_30d": True}, "customer.contacts_last_30d"),
        ({"attributes": {"plan": ["pro"]}}, "customer.attributes[...]"),  # msgspec names no dict key
    ],
)
def test_bodies_are_decoded_as_strictly_as_documented(
    client: TestClient[Any], document: dict[str, Any], customer: dict[str, Any], field: str
) -> None:
    body = {"turns": [{"speaker": "customer", "text": "hi"}], "customer": customer}
    assert not _validator(document, "#/components/schemas/AnalyzeRequest").is_valid(body)
    response = client.post("/v1/analyze", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == [field]


def test_a_valid_body_with_every_scalar_attribute_type_is_accepted(client: TestClient[Any]) -> None:
    customer = {
        "tenure_months": 40,
        "lifetime_value": 12,
        "attributes": {"plan": "pro", "seats": 3, "vip": True},
    }
    body = {"turns": [{"speaker": "customer", "text": "hi"}], "customer": customer}
    assert client.post("/v1/analyze", json=body, headers=AUTH).status_code == 200
