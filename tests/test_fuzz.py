"""A small sample of the property-based fuzz, 2 cases per operation and mode (``make fuzz`` runs
5,000), and the OpenAPI error declarations it checks responses against."""

from tests.fuzz import fixture_app, fuzz


def test_fuzz_sample_finds_no_5xx_and_nothing_outside_the_schema(real_embedder):
    with fixture_app(real_embedder) as app:  # what make fuzz runs
        report = fuzz(app, 32)
    assert report.cases >= 32
    assert report.server_errors == 0 and report.failures == [], report.failures[:3]
    assert report.statuses[200] and report.statuses[422]  # both valid and invalid requests ran


def test_openapi_declares_every_routes_errors_with_the_error_model(client):
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert "HTTPValidationError" not in components and "ErrorResponse" in components
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            errors = {s for s in responses if int(s) >= 400}
            assert {"400", "414", "500"} <= errors, (method, path)
            for status in errors:
                assert responses[status]["content"]["application/json"]["schema"] == ref
            if "requestBody" in operation:
                assert {"413", "422"} <= errors, (method, path)
    paths = schema["paths"]
    assert "404" in paths["/feedback"]["post"]["responses"]
    assert "404" in paths["/articles/{article_id}/stats"]["get"]["responses"]
    assert "503" in paths["/search"]["post"]["responses"]  # no index yet, from get_engine
    assert "422" in paths["/search"]["get"]["responses"]
