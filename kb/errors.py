"""Domain errors. The CLI turns them into one line and an exit code, the API into one JSON shape."""

from __future__ import annotations

from dataclasses import dataclass


class KBError(Exception):
    """Base class: ``code`` is machine-readable, ``status`` the HTTP status it maps to."""

    code = "kb_error"
    status = 400
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Problem:
    """One problem in one article file, reported as ``path:line: message``."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class ArticleError(KBError):
    code = "invalid_articles"
    status = 422

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.path, p.line))
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{self.summary()}:\n{lines}")

    def summary(self) -> str:
        """How many problems, and where: the file when there is one (the glossary is no
        article), else how many files."""
        files = {p.path for p in self.problems}
        where = next(iter(files)) if len(files) == 1 else f"{len(files)} files"
        return f"{len(self.problems)} problem(s) in {where}"


class ConfigError(KBError):
    """A config file that cannot be used; the message carries ``path:line``."""

    code = "invalid_config"
    status = 500


def error_lines(exc: KBError) -> list[str]:
    """What a command prints, on stderr, for a domain error."""
    if isinstance(exc, ConfigError):
        return [exc.message]
    if isinstance(exc, ArticleError):
        return [*map(str, exc.problems), f"error: {exc.summary()}; nothing was published"]
    return [f"error: {exc.message}"]


class IndexNotFound(KBError):
    code = "index_not_found"
    status = 503


class IndexMismatch(KBError):
    """The index was built with another model, or its files disagree with its manifest."""

    code = "index_mismatch"
    status = 500


class ModelError(KBError):
    code = "model_unavailable"
    status = 500


class InvalidQuery(KBError):
    code = "invalid_query"
    status = 422


class UnknownFilter(KBError):
    code = "unknown_filter"
    status = 422


class UnknownQuery(KBError):
    code = "unknown_query_id"
    status = 404


class UnknownArticle(KBError):
    code = "unknown_article"
    status = 404


class EvalDataError(KBError):
    """A queries or qrels file that cannot be read; the message carries ``path:line``."""

    code = "invalid_eval_data"
    status = 422


class Unauthorized(KBError):
    """No API key, or one that is unknown or revoked."""

    code = "unauthorized"
    status = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(KBError):
    """A valid key whose role does not allow the route."""

    code = "forbidden"
    status = 403


class CalibrationError(KBError):
    """A calibration file that cannot be used; the message carries ``path:line``."""

    code = "invalid_calibration"
    status = 500


class NotAResult(KBError):
    """Feedback names an article the query did not return."""

    code = "not_a_result"
    status = 422


class KeyExists(KBError):
    code = "key_exists"
    status = 409


class StorageBusy(KBError):
    """The database is locked or unreachable: the request may be retried in a moment."""

    code = "storage_busy"
    status = 503
    retry_after = 2  # seconds, for the Retry-After header


class StorageUnusable(KBError):
    """The database cannot be used as configured (a folder, a file that is not a database):
    unlike StorageBusy, trying again will not help until the setting or the file changes."""

    code = "storage_unusable"
    status = 500


class NotReady(KBError):
    """What /readyz answers while the service cannot serve: no index, or no database."""

    code = "not_ready"
    status = 503


class UnknownTopic(KBError):
    code = "unknown_topic"
    status = 404
