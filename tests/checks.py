"""Assertions several test modules share."""


def assert_error(response, status: int, code: str) -> None:
    """The one JSON error shape: ``{"error": {"code", "message"}}`` with the expected status."""
    assert response.status_code == status, (response.request.url, response.text)
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
