"""Property-based: schemathesis generates requests from the service's own OpenAPI schema (multipart bodies
with odd files and demographic values, odd query strings); none may get a 5xx, every 4xx is one JSON line."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from elvmass.serve import ServiceConfig, create_app


@pytest.fixture(scope="module")
def api_schema(trained_bundle, tmp_path_factory):
    app = create_app(ServiceConfig(trained_bundle, tmp_root=tmp_path_factory.mktemp("schema-requests"),
                                   max_wait_ms=1))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_server_errors(api_schema):
    """Every operation in the schema, 30 generated requests each (hypothesis, driven directly)."""
    from hypothesis import given

    ops = [result.ok() for result in api_schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in ops} >= {"POST /v1/predict", "POST /v1/predict/batch",
                                                             "GET /v1/health", "GET /v1/model"}
    seen: dict[str, set[int]] = {}
    for op in ops:
        @given(case=op.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call()
            seen.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
            assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
            if 400 <= response.status_code < 500:
                body = response.json()
                assert isinstance(body.get("error"), str) and "\n" not in body["error"], body

        check()
    print(seen)
    # the generated multipart bodies reach the handlers (they are parsed and judged, not all refused as non-forms)
    assert seen["POST /v1/predict"] & {200, 413, 415, 422} and seen["GET /v1/health"] == {200}
