import logging

from service.access_log import RedactingFilter


def test_access_log_request_line_is_redacted():
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/search?q=%E6%89%8B%E6%9C%BA+13812345678+a%40b.com&k=5", "1.1",
         200), None)
    assert RedactingFilter().filter(record)
    line = record.getMessage()
    assert "13812345678" not in line and "a@b.com" not in line and "%40" not in line
    assert "/search?q=手机 [PHONE] [EMAIL]&k=5" in line
