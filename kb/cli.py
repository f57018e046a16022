"""The ``kb`` command: a thin shell over the library. Every option is also read from KB_*."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kb.config import Settings, load_settings
from kb.errors import EvalDataError, KBError, error_lines

if TYPE_CHECKING:
    from kb.embedding import Embedder
    from kb.search import Searcher
    from kb.storage import Store
    from kb.topics import Topic

T = TypeVar("T")

def _typer(**options: Any) -> typer.Typer:
    """A command group whose docstrings read as paragraphs, reflowed to the terminal's width
    (Typer would keep each line break of the source)."""
    return typer.Typer(rich_markup_mode="markdown", **options)


app = _typer(add_completion=False, no_args_is_help=True,
             help="Knowledge-base search: build the index, serve it, measure it, read gaps.")
err = Console(stderr=True)

IndexOpt = Annotated[Path | None, typer.Option("--index", help="Index folder [KB_INDEX].")]
ArticlesOpt = Annotated[Path | None, typer.Option("--articles", help="Articles [KB_ARTICLES].")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Embedding model [KB_MODEL].")]
QueriesOpt = Annotated[Path, typer.Option("--queries", help="Queries, JSON lines.")]
QrelsOpt = Annotated[Path, typer.Option("--qrels", help="Relevance labels, TSV.")]


def _print_version(value: bool) -> None:
    if value:
        from kb import __version__

        typer.echo(f"kb {__version__}")
        raise typer.Exit()


@app.callback()
def _setup(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.")] = False) -> None:
    # The library's notes (such as the one-time export of the model, which takes a while) go
    # to stderr, apart from a command's output.
    logger = logging.getLogger("kb")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def handled(func: Callable[..., Any]) -> Callable[..., Any]:
    """Domain errors become one message (the problems, one ``path:line: message`` each) and
    exit code 2; nothing else of the program's internals reaches the user."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KBError as exc:
            for line in error_lines(exc):
                typer.echo(line, err=True)
            raise typer.Exit(2) from None

    return wrapper


def _embedder_factory(cfg: Settings) -> Callable[[], Embedder]:
    cache: list[Embedder] = []

    def make() -> Embedder:
        if not cache:
            from kb.embedding import load_embedder

            cache.append(load_embedder(cfg))
        return cache[0]

    return make


@app.command()
@handled
def index(articles: ArticlesOpt = None, index: IndexOpt = None, model: ModelOpt = None,
          calibration: Annotated[Path | None, typer.Option(
              help="Calibration JSON for a first build [KB_CALIBRATION].")] = None,
          local: Annotated[bool, typer.Option(
              "--local", hidden=True, help="Accepted for old scripts: every build runs in "
              "this process.")] = False) -> None:
    """Parse, chunk and embed the articles; publish a new index version atomically.

    A service serving the same index folder notices the new version and serves it, and
    re-checks the open gap queries of its log; with no service, this command re-checks them.
    """
    from kb import store
    from kb.build import index_articles

    cfg = load_settings(articles=articles, index=index, model=model, calibration=calibration)
    make = _embedder_factory(cfg)
    built = index_articles(cfg, make, _progress_bar() if sys.stderr.isatty() else None)
    typer.echo(built.report.summary())
    if built.index is None:
        return
    if store.is_served(cfg.index):
        typer.echo("gap log: the service serving this index re-checks the open gap queries "
                   "against the new version ('kb gaps --all' shows those it resolves)")
        return
    # Imported only now: the query store's libraries are not needed while a service serves.
    from kb.engine import open_gaps, recheck_gaps
    from kb.search import Searcher

    if (log := open_gaps(cfg)) is None:
        return
    new_index = built.index
    audience = "public" if cfg.public_only else "internal"

    def searcher_for(query_audience: str) -> Searcher:
        return Searcher(new_index, make(), max_query_chars=cfg.max_query_chars)

    try:
        resolved = recheck_gaps(log, searcher_for, audience)
    finally:
        log.close()
    typer.echo(f"gap log: {len(resolved)} open gap queries now answered")
    for text, article in resolved[:20]:
        typer.echo(f"  resolved by {article}: {text}")


def _progress_bar() -> Callable[[int, int], None]:
    """A bar on stderr for the texts being embedded, started at the first report."""
    from rich.progress import Progress

    bar: list[tuple[Progress, Any]] = []

    def update(done: int, total: int) -> None:
        if not bar:
            progress = Progress(*Progress.get_default_columns(), console=err, transient=False)
            progress.start()
            bar.append((progress, progress.add_task("embedding", total=total)))
        progress, task = bar[0]
        progress.update(task, completed=done, total=total)
        if done >= total:
            progress.stop()

    return update


def _track(items: Iterable[T], description: str) -> Iterator[T]:
    """``items`` with a progress bar on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        yield from items
        return
    from rich.progress import track

    yield from track(items, description=description, console=err)


@app.command()
@handled
def serve(index: IndexOpt = None, host: Annotated[str | None, typer.Option(help="[KB_HOST]")] = None,
          port: Annotated[int | None, typer.Option(help="[KB_PORT]")] = None,
          model: ModelOpt = None,
          workers: Annotated[int | None, typer.Option(
              min=1, help="Worker processes on one port [KB_WORKERS].")] = None) -> None:
    """Serve the published index over HTTP (OpenAPI at /docs).

    SIGTERM (or Ctrl-C) stops accepting connections, answers the requests in flight and
    stores the queries still queued for the log before the process exits.
    """
    import os

    import uvicorn

    from kb.storage import open_store
    from service import logs
    from service.app import create_app
    from service.auth import check_startup
    from service.http import uvicorn_options
    from service.metrics import multiprocess_dir

    cfg = load_settings(index=index, host=host, port=port, model=model, workers=workers)
    store = open_store(cfg)
    try:
        check_startup(cfg, store)
    finally:
        store.close()
    log_config = logs.config(cfg.log_format, cfg.log_level)
    if cfg.workers == 1:
        from service.app import create_app

        uvicorn.run(create_app(cfg), host=cfg.host, port=cfg.port, log_level=cfg.log_level,
                    log_config=log_config, **uvicorn_options(cfg.max_url_chars))
        return
    # Each worker process makes its own app from the environment: the flags go there too.
    for name, value in (("KB_INDEX", index), ("KB_MODEL", model)):
        if value is not None:
            os.environ[name] = str(value)
    # The workers add their metrics up through files in one folder, which must be named before
    # any of them imports prometheus-client.
    with multiprocess_dir():
        uvicorn.run("service.app:create_app", factory=True, workers=cfg.workers, host=cfg.host,
                    port=cfg.port, log_level=cfg.log_level, log_config=log_config,
                    **uvicorn_options(cfg.max_url_chars))


@app.command()
@handled
def search(query: str, k: Annotated[int, typer.Option(min=1, max=50)] = 5,
           index: IndexOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False,
           audience: Annotated[str | None, typer.Option(
               help="public: as a public key sees it; internal [public when KB_PUBLIC_ONLY]")]
           = None) -> None:
    """Search the published index from the terminal (logged like any other query)."""
    from kb.engine import Engine

    cfg = load_settings(index=index)
    audience = audience or ("public" if cfg.public_only else "internal")
    if audience not in ("public", "internal"):
        raise KBError(f"--audience must be public or internal, not {audience!r}")
    engine = Engine(cfg)
    try:
        answer = engine.search(query, k, channel="cli", audience=audience)
    finally:
        engine.close()
    out = answer.outcome
    if as_json:
        typer.echo(json.dumps({"query_id": answer.query_id, "answered": out.answered,
                               "confidence": out.confidence,
                               "results": [h.__dict__ for h in out.hits]}, ensure_ascii=False))
        return
    typer.echo(f"answered: {out.answered} (confidence {out.confidence:.2f})")
    for n, hit in enumerate(out.hits, 1):
        marker = "  (internal: not for the customer)" if hit.audience != "public" else ""
        typer.echo(f"{n}. [{hit.score:.3f}] {hit.id}  {hit.title}  #{hit.anchor}{marker}")


def _load_searcher(cfg: Settings) -> Searcher:
    from kb.search import Searcher
    from kb.store import load_index

    index = load_index(cfg.index, model=cfg.model)
    return Searcher(index, _embedder_factory(cfg)(), max_query_chars=10**6)


@app.command()
@handled
def calibrate(queries: Annotated[Path | None, typer.Option(
                  "--queries", help="Queries, JSON lines.")] = None,
              qrels: Annotated[Path | None, typer.Option(
                  "--qrels", help="Relevance labels, TSV.")] = None,
              from_log: Annotated[bool, typer.Option(
                  "--from-log", help="Also learn from agents' feedback in the query log: a "
                  "query voted helpful or whose reply was copied is answered by that article; "
                  "one reported missing has no answer.")] = False,
              index: IndexOpt = None,
              max_false_gap: Annotated[float, typer.Option(
                  min=0.0, max=0.5, help="Share of answerable queries allowed to be flagged "
                  "as gaps on the calibration queries.")] = 0.08,
              output: Annotated[Path | None, typer.Option(
                  help="Also write the calibration JSON here.")] = None) -> None:
    """Fit fusion weights and the answered threshold to labelled queries (a file, the query
    log's feedback, or both); publish them."""
    from kb.calibrate import calibration_summary, check_enough, fit, prepare
    from kb.evaluation import labelled_from_feedback, read_queries, unknown_articles
    from kb.store import publish_calibration

    cfg = load_settings(index=index)
    if (queries is None) != (qrels is None):
        raise EvalDataError("--queries and --qrels go together: the queries and their labels")
    if queries is None and not from_log:
        raise EvalDataError("nothing to calibrate on: give --queries and --qrels, or --from-log")
    labelled = read_queries(queries, qrels) if queries is not None and qrels is not None else []
    searcher = _load_searcher(cfg)
    articles = set(searcher.index.article_ids)
    if qrels is not None and (unknown := unknown_articles(qrels, articles)):
        # A label the index cannot return is a false "answerable": refused, not fit to.
        raise EvalDataError("\n".join([*map(str, unknown[:20]), *(
            [f"... and {len(unknown) - 20} more"] if len(unknown) > 20 else []),
            f"{len(unknown)} label(s) name articles not in index {searcher.version}; "
            "nothing was published"]))
    if from_log:
        store = _read_log(cfg)
        try:
            logged = labelled_from_feedback(store.feedback_labels() if store else [], articles)
        finally:
            if store is not None:
                store.close()
        answered = sum(bool(q.relevant) for q in logged)
        typer.echo(f"query log: {len(logged)} labelled phrasings ({answered} answered, "
                   f"{len(logged) - answered} reported missing)")
        labelled += logged
    if not labelled:
        raise EvalDataError("no labelled queries to calibrate on")
    check_enough(labelled, articles)
    prepared = prepare(searcher, labelled, lambda xs: _track(xs, "queries"))
    cal = fit(searcher, prepared, max_false_gap)
    version = publish_calibration(cfg.index, cal, cfg.keep_versions)
    if output:
        output.write_text(json.dumps(cal.to_dict(), ensure_ascii=False, indent=1) + "\n")
    dense = {lang: round(w.get("dense", 0.0), 2) for lang, w in cal.fusion.items()}
    typer.echo(f"published {version} with calibration: dense weight per language {dense}, "
               f"answered threshold {cal.answer_threshold:.3f}, answered but doubtful below "
               f"{cal.answer_doubt:.3f} (such queries join the gap topics they are alike)")
    typer.echo(calibration_summary(cal.fitted))
    typer.echo(json.dumps(cal.fitted, ensure_ascii=False))


@app.command(name="eval")
@handled
def evaluate(queries: QueriesOpt, qrels: QrelsOpt, index: IndexOpt = None,
             as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """nDCG@10, Recall@1/5/10, MRR@10 and answered/unanswered rates on labelled queries."""
    from kb.evaluation import LabelledQuery, read_queries, unknown_articles
    from kb.evaluation import evaluate as run_eval

    cfg = load_settings(index=index)
    labelled = read_queries(queries, qrels)
    searcher = _load_searcher(cfg)
    # Measured all the same (an article removed since the labels were made is a real miss),
    # but said: a mistyped id would otherwise read as a bad ranking.
    unknown = unknown_articles(qrels, set(searcher.index.article_ids))
    for problem in unknown[:20]:
        typer.echo(f"warning: {problem}", err=True)
    if unknown:
        typer.echo(f"warning: {len(unknown)} label(s) name articles not in index "
                   f"{searcher.version}: their queries cannot find them", err=True)
    latencies: list[float] = []

    def one(q: LabelledQuery) -> tuple[list[tuple[str, float]], bool]:
        start = time.perf_counter()
        out = searcher.search(q.query, k=10)
        latencies.append(time.perf_counter() - start)
        return [(h.id, h.score) for h in out.hits], out.answered

    report = run_eval(labelled, one, lambda xs: _track(xs, "queries"))
    if as_json:
        typer.echo(json.dumps({**report.__dict__, "index_version": searcher.version},
                              indent=1))
        return
    for name, value in report.rows():
        typer.echo(f"{name:32} {value}")


gaps_app = _typer(help="The knowledge-gap report, and writers' decisions on its topics.")
app.add_typer(gaps_app, name="gaps")


def _read_log(cfg: Settings, none_yet: str = "nothing has been searched",
              what: str = "query log") -> Store | None:
    """The query log (``what`` the command reads of the database) for a command that reads
    it; None when there is none yet (said on stderr, ``none_yet`` saying what that means),
    rather than an empty one created."""
    from kb.storage import open_existing, where

    store = open_existing(cfg)
    if store is None:
        typer.echo(f"no {what} at {where(cfg)} yet: {none_yet}", err=True)
    return store


def _read_nothing(cfg: Settings) -> None:
    """Said on stderr when a log there is gave an empty answer: which log it was."""
    from kb.storage import where

    typer.echo(f"query log: {where(cfg)}", err=True)


def _gap_reporter(log: Store, cfg: Settings):
    """The report over the query log ``log``, and the index when there is one."""
    from kb.store import load_index
    from kb.topics import GapReporter

    index = None
    try:
        index = load_index(cfg.index)
    except KBError:
        pass  # without an index, topics are grouped by their text and meaning only
    return GapReporter(log), index


@gaps_app.callback(invoke_without_command=True)
@handled
def gaps(ctx: typer.Context,
         since: Annotated[str | None, typer.Option(
             help="ISO date or time, e.g. 2026-11-01: count the queries from then on")] = None,
         until: Annotated[str | None, typer.Option(
             help="ISO date: count the queries up to this day, included")] = None,
         min_count: Annotated[int, typer.Option(min=1)] = 1,
         fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
         include_resolved: Annotated[bool, typer.Option(
             "--all", help="Also topics resolved, answered or dismissed")] = False,
         width: Annotated[int | None, typer.Option(
             min=40, help="Columns of the table (default: the terminal's, 80 when piped)")] = None,
         index: IndexOpt = None) -> None:
    """The knowledge-gap report: one topic per question, most asked first, with what to write.

    `kb gaps dismiss TOPIC`, `kb gaps answered TOPIC ARTICLE` and `kb gaps reopen TOPIC` record
    a writer's decision."""
    from kb.topics import report_range, topics_csv

    if ctx.invoked_subcommand is not None:
        return
    if fmt not in ("table", "csv", "json"):
        raise KBError(f"--format must be table, csv or json, not {fmt!r}")
    cfg = load_settings(index=index)
    first, last = report_range(since, until)
    topics: list[Topic] = []
    if (log := _read_log(cfg)) is not None:
        try:
            reporter, loaded = _gap_reporter(log, cfg)
            topics = reporter.report(loaded, first, min_count, include_resolved, until=last)
        finally:
            log.close()
        if not topics:
            _read_nothing(cfg)
    if fmt == "json":
        # the shape GET /gaps sends, so one script reads both
        typer.echo(json.dumps({"topics": [t.to_dict() for t in topics]}, ensure_ascii=False,
                              indent=1))
    elif fmt == "csv":
        typer.echo(topics_csv(topics), nl=False)
    else:
        from kb.gapview import render

        columns = width or (shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty()
                            else 80)
        typer.echo(render(topics, max(40, columns)), nl=False)


def _decide(topic_id: str, action: str, article_id: str | None, index: Path | None) -> None:
    from kb.errors import UnknownArticle, UnknownTopic
    from kb.storage import open_existing, where

    cfg = load_settings(index=index)
    if (log := open_existing(cfg)) is None:
        raise UnknownTopic(f"unknown gap topic {topic_id!r}: no query log at {where(cfg)} yet, "
                           "nothing has been searched")
    try:
        reporter, loaded = _gap_reporter(log, cfg)
        if article_id is not None and loaded is not None and article_id not in loaded.articles:
            raise UnknownArticle(f"unknown article {article_id!r}")
        decision, changed = reporter.decide(loaded, topic_id, action, article_id)
    finally:
        log.close()
    by = f" by {decision.article_id}" if decision.article_id else ""
    already = "" if changed else " already"
    typer.echo(f"topic {topic_id}:{already} {decision.action}{by} at {decision.ts}")


@gaps_app.command("dismiss")
@handled
def gaps_dismiss(topic_id: str, index: IndexOpt = None) -> None:
    """Hide a topic from the report: nothing to write about."""
    _decide(topic_id, "dismissed", None, index)


@gaps_app.command("answered")
@handled
def gaps_answered(topic_id: str, article_id: str, index: IndexOpt = None) -> None:
    """Mark a topic answered by an article; it reopens if its questions keep coming."""
    _decide(topic_id, "answered", article_id, index)


@gaps_app.command("reopen")
@handled
def gaps_reopen(topic_id: str, index: IndexOpt = None) -> None:
    """Undo a dismissal or an answered mark."""
    _decide(topic_id, "reopened", None, index)


@app.command()
@handled
def stats(article_id: Annotated[str | None, typer.Argument()] = None,
          index: IndexOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Helpful / not helpful feedback counts per article."""
    cfg = load_settings(index=index)
    rows: list[dict] = []
    if (log := _read_log(cfg, "no feedback has been given")) is not None:
        try:
            rows = log.article_stats(article_id)
        finally:
            log.close()
        if not rows:
            _read_nothing(cfg)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    table = Table(title="Feedback per article")
    for column in ("article", "helpful", "not helpful", "last feedback"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["article_id"], str(r["helpful"]), str(r["not_helpful"]),
                      str(r["last_feedback"]))
    Console().print(table)


keys_app = _typer(no_args_is_help=True, help="API keys: create, list, revoke.")
app.add_typer(keys_app, name="keys")


@contextmanager
def _key_store(index: Path | None) -> Iterator[Store]:
    from kb.storage import open_store

    store = open_store(load_settings(index=index))
    try:
        yield store
    finally:
        store.close()


@keys_app.command("create")
@handled
def keys_create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the key.")],
    role: Annotated[str, typer.Option("--role", help="agent, ticket-system, writer or admin")],
    audience: Annotated[str, typer.Option(
        "--audience", help="public: never sees internal articles; internal")] = "internal",
    index: IndexOpt = None,
) -> None:
    """Create an API key and print it, once: only its hash is stored."""
    from kb.keys import create_key

    with _key_store(index) as store:
        key, secret = create_key(store, name, role, audience)
    typer.echo(secret)
    typer.echo(f"created key {key.name} (id {key.id}, role {key.role}, audience "
               f"{key.audience}); it is shown this once: store it now", err=True)


@keys_app.command("list")
@handled
def keys_list(include_revoked: Annotated[bool, typer.Option("--all", help="Also revoked keys")]
              = False, index: IndexOpt = None,
              as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The API keys (never the keys themselves: they are not stored)."""
    cfg = load_settings(index=index)
    keys = []
    if (store := _read_log(cfg, "no key has been created", what="database")) is not None:
        try:
            keys = [k for k in store.keys() if include_revoked or k.revoked is None]
        finally:
            store.close()
    if as_json:
        typer.echo(json.dumps([k.to_dict() for k in keys], ensure_ascii=False, indent=1))
        return
    table = Table(title="API keys")
    for column in ("id", "name", "role", "audience", "created", "revoked"):
        table.add_column(column)
    for k in keys:
        table.add_row(k.id, escape(k.name), k.role, k.audience, k.created, k.revoked or "")
    Console().print(table)


@keys_app.command("revoke")
@handled
def keys_revoke(name_or_id: Annotated[str, typer.Argument(help="The key's name or id")],
                index: IndexOpt = None) -> None:
    """Revoke an API key: a running service refuses it within a second."""
    from kb.keys import revoke

    with _key_store(index) as store:
        revoke(store, name_or_id)
    typer.echo(f"revoked {name_or_id}")


db_app = _typer(no_args_is_help=True,
                help="The database of queries, feedback, gap topics and keys.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@handled
def db_upgrade(index: IndexOpt = None) -> None:
    """Apply the schema migrations the database has not seen (the service also does on start)."""
    from kb.storage import database_url, open_store, shown_url

    cfg = load_settings(index=index)
    store = open_store(cfg, upgrade=False)
    try:
        before = store.revision()
        after = store.upgrade()
    finally:
        store.close()
    where = shown_url(database_url(cfg))
    if before == after:
        typer.echo(f"{where}: at revision {after}, nothing to do")
    else:
        typer.echo(f"{where}: upgraded from {before or 'no revision'} to {after}")


@db_app.command("status")
@handled
def db_status(index: IndexOpt = None) -> None:
    """Which database kb uses, its schema revision and what it holds."""
    from kb.storage import database_url, exists, open_store, shown_url
    from kb.storage.migrate import head

    cfg = load_settings(index=index)
    if not exists(cfg):
        typer.echo(f"database: {shown_url(database_url(cfg))}")
        typer.echo(f"revision: none (not created yet; 'kb serve' or 'kb db upgrade' makes it); "
                   f"latest {head()}")
        return
    store = open_store(cfg, upgrade=False)
    try:
        revision = store.revision()
        typer.echo(f"database: {shown_url(database_url(cfg))}")
        typer.echo(f"revision: {revision or 'none (empty)'}; latest {head()}")
        if revision == head():
            typer.echo(f"queries: {store.count()}, keys: {len(store.keys())}")
        else:
            typer.echo("run 'kb db upgrade' (or start 'kb serve') to bring it up to date")
    finally:
        store.close()
