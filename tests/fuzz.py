"""Property-based fuzzing of the HTTP API with schemathesis: generated requests, valid and
invalid, for every route of the OpenAPI schema; no response may be a 5xx, and every response
must match what the schema declares (status, content type, body, headers).

``make fuzz`` (``python -m tests.fuzz --cases 5000``) runs it on the fixture knowledge base
with the real model; the test suite runs a small sample (tests/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import ASGIApp, Receive, Scope, Send

from kb.embedding import Embedder

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
FIXTURE_KB = Path(__file__).parent / "fixtures" / "kb"


@dataclass
class Report:
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    server_errors: int = 0
    seconds: Counter = field(default_factory=Counter)  # per operation

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (f"{self.cases} cases, {len(self.failures)} failures, {self.server_errors} 5xx "
                f"responses (statuses {statuses})")


# Operations fuzzed first: the gap report's cost grows with the query log every search fills.
FIRST = ("/gaps", "/articles/{article_id}/stats")


def fuzz(app: FastAPI, cases: int,
         modes: tuple[GenerationMode, ...] = tuple(GenerationMode)) -> Report:
    """Run at least ``cases`` generated requests against ``app`` (already started), valid and
    invalid in turn for every operation. Operations with fewer distinct requests than their
    share (``GET /healthz``) leave the rest to the others."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", _started(app))
    operations = sorted((result.ok() for result in schema.get_all_operations()),
                        key=lambda op: op.path not in FIRST)
    report = Report()
    for round_ in itertools.count():
        before = report.cases
        pairs = list(itertools.product(operations, modes))
        for i, (operation, mode) in enumerate(pairs):
            share = -(-(cases - report.cases) // (len(pairs) - i))  # what is left, shared out
            _run(operation, mode, round_, share, report)
        if report.cases >= cases or report.cases == before:
            return report
    return report


def _started(app: FastAPI) -> ASGIApp:
    """``app``, which its caller started, for schemathesis: its test client would run the app's
    startup a second time (a second engine and store over the first) and never its shutdown."""
    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    return asgi


def _run(operation, mode: GenerationMode, round_: int, examples: int, report: Report) -> None:
    if examples <= 0:
        return

    @seed(round_ * 1000 + sum(map(ord, operation.label + mode.value)))
    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy(generation_mode=mode))
    def one(case) -> None:
        report.cases += 1
        started = time.perf_counter()
        response = case.call()
        report.seconds[operation.label] += time.perf_counter() - started
        report.statuses[response.status_code] += 1
        if response.status_code >= 500:
            report.server_errors += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # a check failed: keep it, go on
            report.failures.append(f"{operation.label} [{mode.value}]: {exc}"[:2000])

    try:
        one()
    except Exception as exc:  # the strategy could not generate (e.g. no negative form)
        if "Unsatisfiable" not in type(exc).__name__ and "generate" not in str(exc).lower():
            raise


@contextmanager
def fixture_app(embedder: Embedder | None = None) -> Iterator[FastAPI]:
    """The service on the fixture knowledge base, started, in a temporary folder; with the
    packaged model unless given another embedder."""
    from kb.build import build_index
    from kb.config import Settings
    from kb.embedding import load_embedder
    from service.app import create_app

    embedder = embedder or load_embedder(Settings())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_index(FIXTURE_KB, root / "index", lambda: embedder, embedder.name)
        settings = Settings(index=root / "index", gap_db=root / "gaps.sqlite3",
                            reload_interval=0, accept_builds=False)
        app = create_app(settings, embedder)
        with TestClient(app):
            yield app
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with fixture_app() as app:
        report = fuzz(app, args.cases)
    print(f"{report.summary()} in {time.perf_counter() - started:.0f} s")
    for label, seconds in report.seconds.most_common():
        print(f"  {label}: {seconds:.1f} s")
    for failure in report.failures[:20]:
        print(failure, file=sys.stderr)
    return 1 if report.failures or report.server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
