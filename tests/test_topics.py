"""Gap topics: one per question across phrasings, languages and articles; kept incrementally."""

import dataclasses
import datetime as dt
import random

import numpy as np
import pytest
import sqlalchemy as sa
from rich.cells import cell_len

from kb.gapview import render
from kb.storage.base import GapEvent, LoggedQuery
from kb.storage.sql import SqlStore, engine_url
from kb.storage.sql import normalized as _norm
from kb.topics import TopicIndex, link_threshold, suggested_title, topics_csv

TODAY = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
_seq = iter(range(1, 10**9))


def event(text, ts="2026-11-20T10:00:00+00:00", vector=None, neighbours=("x",),
          channel="search", lang="en", kind="unanswered", article=None, ticket=None, qid=None):
    seq = next(_seq)
    # a vote of not helpful is on an answer the search gave
    q = LoggedQuery(id=qid or f"q{seq}", ts=ts, channel=channel, query=text,
                    norm=_norm(text), lang=lang, filters={}, ticket_id=ticket,
                    top_article=neighbours[0] if neighbours else None, top_score=None,
                    neighbours=list(neighbours), vector=vector, answered=kind == "not_helpful")
    return GapEvent(seq, kind, q, article, ts)


class FakeLog:
    """What TopicIndex.report reads besides the events."""

    def __init__(self, decisions=(), stats=(), edits=None, feedback=None):
        self._decisions, self._stats = list(decisions), list(stats)
        self._edits, self._feedback = edits or {}, feedback or {}

    def decisions(self):
        return self._decisions

    def article_stats(self):
        return self._stats

    def edits(self):
        return self._edits

    def feedback_times(self):
        return self._feedback


def report(index, log=None, **kw):
    return index.report(log or FakeLog(), {"refund-zh": "退款时效", "vpn": "VPN"}, today=TODAY,
                        **kw)


def test_traditional_simplified_and_english_are_one_topic_and_unrelated_stay_apart(
        real_embedder):
    texts = ["退款多久到賬", "退款多久到账", "how long does a refund take",
             "VPN keeps dropping at the hotel", "连不上打印机", "连不上公司邮箱"]
    langs = ["zh", "zh", "en", "en", "zh", "zh"]
    # the refund phrasings were sent to refund articles in either language, which share tags;
    # the two "连不上" questions were both sent to IT articles that share a tag too
    neighbours = [["refund-zh"], ["refund-zh"], ["refund-en"], ["vpn"], ["printer"], ["mail"]]
    tags = {"refund-zh": {"refund", "refund-timeline"}, "refund-en": {"refund", "refund-timeline"},
            "vpn": {"vpn", "remote-access"}, "printer": {"it", "printer"}, "mail": {"it", "email"}}
    # the bundled model is English-only: the calibration weighs it below BM25 on Chinese
    index = TopicIndex(link=0.6, tags=tags, untrusted=frozenset({"zh"}))
    index.add(event(t, vector=v, neighbours=n, lang=lang) for t, v, n, lang in
              zip(texts, real_embedder.embed(texts), neighbours, langs, strict=True))
    topics = report(index)
    assert sorted(t.count for t in topics) == [1, 1, 1, 3]
    refund = topics[0]
    assert set(refund.examples) == set(texts[:3])
    assert refund.languages == {"zh-Hant": 1, "zh-Hans": 1, "en": 1}
    assert refund.phrasings == 2  # Traditional and Simplified normalise alike


def test_topics_do_not_depend_on_the_order_queries_arrive_in(real_embedder):
    texts = ["how do I book a meeting room", "where can I book a meeting room",
             "book meeting room", "printer jams on tray 2", "the printer jams", "发票抬头写错了",
             "發票抬頭寫錯了", "reset my password", "i forgot my password"]
    vectors = real_embedder.embed(texts)
    events = [event(t, ts=f"2026-11-{10 + i:02d}T09:00:00+00:00", vector=v,
                    lang="zh" if not t.isascii() else "en")
              for i, (t, v) in enumerate(zip(texts, vectors, strict=True))] * 2

    def topics(order, chunks):
        index = TopicIndex(link=0.6)
        for start in range(0, len(order), chunks):
            index.add(order[start : start + chunks])
        return sorted((t.id, t.count, tuple(sorted(t.examples))) for t in report(index))

    expected = topics(events, len(events))
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    assert topics(shuffled, 1) == expected == topics(list(reversed(events)), 4)
    assert len(expected) < len(texts)  # paraphrases did meet


def test_counts_weeks_channels_tickets_and_title():
    days = [(1, "search"), (18, "search"), (20, "suggest"), (21, "suggest"), (21, "search")]
    index = TopicIndex()
    index.add(event("发票抬头写错了怎么办", ts=f"2026-11-{d:02d}T09:00:00+00:00", channel=c,
                    lang="zh", ticket=f"T-{d}") for d, c in days)
    [topic] = report(index)
    assert (topic.count, topic.last_7_days, topic.before, topic.trend) == (5, 4, 1, "rising")
    assert topic.channels == {"search": 3, "suggest": 2}
    assert topic.weekly == {"2026-W44": 1, "2026-W47": 4}
    assert topic.first_seen.startswith("2026-11-01") and topic.last_seen.startswith("2026-11-21")
    assert topic.ticket_ids == ["T-1", "T-18", "T-20", "T-21"]
    assert topic.title == "发票抬头写错了怎么办" and topic.kind == "unanswered"


def test_a_date_range_counts_only_its_queries_and_trends_as_of_its_end():
    days = [(1, "search"), (18, "search"), (20, "suggest"), (21, "suggest"), (21, "search")]
    index = TopicIndex()
    index.add(event("发票抬头写错了怎么办", ts=f"2026-11-{d:02d}T09:00:00+00:00", channel=c,
                    lang="zh") for d, c in days)
    index.add([event("how do I book a meeting room", ts="2026-11-21T08:00:00+00:00")])
    [topic] = report(index, since="2026-11-01", until="2026-11-18")
    # the 7 days up to the 18th hold one, the rest of the range one: steady, two in all
    assert (topic.count, topic.last_7_days, topic.before, topic.trend) == (2, 1, 1, "steady")
    assert topic.weekly == {"2026-W44": 1, "2026-W47": 1}
    assert topic.channels == {"search": 2} and topic.languages == {"zh-Hans": 2}
    assert (topic.first_seen, topic.last_seen) == ("2026-11-01T09:00:00+00:00",
                                                   "2026-11-18T09:00:00+00:00")
    invoice, room = report(index, since="2026-11-21", until="2026-11-21")
    assert (invoice.count, room.count) == (2, 1)
    assert invoice.channels == {"suggest": 1, "search": 1}
    assert invoice.first_seen == invoice.last_seen == "2026-11-21T09:00:00+00:00"
    assert report(index, since="2026-11-19", until="2026-11-19") == []
    assert [t.count for t in report(index, until="2026-11-20", min_count=3)] == [3]
    assert report(index, until="2026-11-20", min_count=4) == []
    # the cached whole topic is left as it was
    assert max(t.count for t in report(index)) == 5


def test_a_date_range_shows_the_wordings_asked_in_it():
    vector = np.array([1.0, 0.0, 0.0])
    index = TopicIndex(link=0.8)
    index.add([event("退款多久到账", ts="2026-11-02T09:00:00+00:00", vector=vector, lang="zh"),
               event("退款多久到賬", ts="2026-11-02T10:00:00+00:00", vector=vector, lang="zh"),
               event("how long does a refund take", ts="2026-11-20T09:00:00+00:00",
                     vector=vector, channel="suggest")])
    [whole] = report(index)
    assert whole.count == 3 and len(whole.examples) == 3
    [late] = report(index, since="2026-11-15")
    assert late.examples == ["how long does a refund take"]
    assert late.languages == {"en": 1} and late.channels == {"suggest": 1}
    [early] = report(index, until="2026-11-10")
    assert sorted(early.examples) == sorted(["退款多久到账", "退款多久到賬"])
    assert early.languages == {"zh-Hans": 1, "zh-Hant": 1}


def test_not_helpful_and_unanswered_phrasings_of_one_question_are_one_topic():
    v = np.ones(4, dtype=np.float32)
    index = TopicIndex()
    index.add([event("vpn 809 at the hotel", vector=v, neighbours=["vpn"]),
               event("vpn 809 at the hotel", vector=v, neighbours=["vpn"], kind="not_helpful",
                     article="vpn"),
               event("hotel wifi vpn error 809", vector=v, neighbours=["vpn"],
                     kind="not_helpful", article="vpn")])
    stats = [{"article_id": "vpn", "helpful": 1, "not_helpful": 7, "last_feedback": None}]
    [topic] = report(index, FakeLog(stats=stats))
    assert topic.count == 3 and topic.article_id == "vpn"
    # three queries got it (two marked it too): three times, not five
    assert topic.nearest_articles == [{"id": "vpn", "title": "VPN", "times": 3,
                                       "not_helpful": 7}]


@pytest.fixture
def log(database_url):
    """The store on SQLite and on PostgreSQL (see tests/postgres.py)."""
    store = SqlStore(database_url)
    yield store
    store.close()


def _record(log, text, answered=False, vector=None, neighbours=("x",)):
    return log.record(channel="search", query=text, lang="en", filters={}, answered=answered,
                      confidence=0.1, neighbours=list(neighbours), top_score=0.2,
                      vector=vector, index_version="v1")


def test_refresh_reads_only_what_is_new_and_leaves_filtered_queries_out(log):
    index = TopicIndex()
    _record(log, "how do I book a meeting room")
    _record(log, "answered one", answered=True)
    log.record(channel="search", query="refund under the wrong filter", lang="en", filters={
        "type": ["sop"]}, answered=False, confidence=0.1, neighbours=[], top_score=None,
        vector=None, index_version="v1", outside_filters="refund-faq")
    assert index.refresh(log) == 2  # the gap query and the answered one, not the filtered
    assert index.refresh(log) == 0
    _record(log, "how do I book a meeting room")
    assert index.refresh(log) == 1
    [topic] = index.report(log, {})
    assert topic.count == 2 and topic.examples == ["how do I book a meeting room"]


def test_a_question_mostly_answered_when_asked_is_not_a_gap():
    room, other = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    index = TopicIndex(link=0.8)
    index.add([event("where is the meeting room booking", vector=room),
               event("book a meeting room", vector=room * 0.9 + other * 0.1, kind="answered"),
               event("meeting room booking page", vector=room, kind="answered"),
               event("expense deadline", vector=other),
               event("expense deadline", vector=other),
               event("expense report deadline", vector=other, kind="answered")])
    # asked three times alike, answered twice: its one flag is the threshold's near miss
    assert [t.representative for t in report(index)] == ["expense deadline"]
    closed = {t.representative: t for t in report(index, include_closed=True)}
    assert closed["where is the meeting room booking"].status == "mostly_answered"
    assert closed["where is the meeting room booking"].answered_alike == 2
    assert closed["expense deadline"].answered_alike == 1
    # answered askings never join topics: the two gap topics stay apart
    assert len(closed) == 2


def test_two_replicas_on_one_database_report_the_same_topics(database_url):
    first, second = SqlStore(database_url), SqlStore(database_url)
    try:
        vectors = {"room": [1.0, 0.0, 0.0], "printer": [0.0, 1.0, 0.0], "mail": [0.0, 0.0, 1.0]}
        for n in range(30):
            topic = ("room", "printer", "mail")[n % 3]
            noise = np.array([0.05 * (n % 5), 0.03 * (n % 4), 0.0], dtype=np.float32)
            store = first if n % 2 else second  # each replica logs half of the traffic
            _record(store, f"{topic} question {n % 7}",
                    vector=np.array(vectors[topic], dtype=np.float32) + noise)
        for store in (first, second):  # each replica's queued writes are in the database
            store.flush(store.timeout)
        one, other = TopicIndex(link=0.8), TopicIndex(link=0.8)
        one.refresh(first)
        for _ in range(3):  # the other replica reads as the traffic arrives, in pieces
            other.refresh(second)
        shown = [[(t.id, t.count, t.examples) for t in index.report(store, {})]
                 for index, store in ((one, first), (other, second))]
        assert shown[0] == shown[1] and len(shown[0]) == 3
    finally:
        first.close()
        second.close()


def _marks(index, log):
    return sum(t.count for t in index.report(log, {}, include_closed=True))


def test_a_vote_another_replica_commits_late_is_counted_once(postgres_url):
    """PostgreSQL numbers a row when it is inserted, not when it commits: the vote of a
    replica that commits late lands behind the cursor of a reader that saw a later one."""
    log = SqlStore(postgres_url)
    engine = sa.create_engine(engine_url(postgres_url))
    try:
        slow_q, fast_q = (_record(log, "how do I book a meeting room", answered=True,
                                  neighbours=("rooms",)) for _ in range(2))
        log.flush(log.timeout)
        index = TopicIndex()
        index.refresh(log)
        with engine.connect() as slow:
            slow.execute(sa.text("INSERT INTO feedback (query_id, article_id, helpful, ts) "
                                 "VALUES (:q, 'rooms', false, :ts)"),
                         {"q": slow_q, "ts": "2026-11-20T10:00:00+00:00"})  # not committed
            log.feedback(fast_q, "rooms", False)
            index.refresh(log)  # the later vote: the cursor passes the slow one's number
            assert _marks(index, log) == 1
            slow.commit()
        for _ in range(2):  # read once, however often the reader comes back
            index.refresh(log)
            assert _marks(index, log) == 2
    finally:
        engine.dispose()
        log.close()


def test_a_changed_vote_reaches_a_reader_past_it(log):
    qid = _record(log, "how do I book a meeting room", answered=True, neighbours=("rooms",))
    log.feedback(qid, "rooms", True)
    index = TopicIndex()
    index.refresh(log)
    assert _marks(index, log) == 0
    log.feedback(qid, "rooms", False)  # the agent changes their mind
    log.feedback(qid, "rooms", False)  # and clicks again: still one vote
    index.refresh(log)
    assert _marks(index, log) == 1


def test_writers_decisions_close_topics_and_new_queries_reopen_an_answered_one(log):
    index = TopicIndex()
    _record(log, "parking permit for visitors")
    _record(log, "expense report deadline")
    index.refresh(log)
    parking, expense = sorted(index.report(log, {}), key=lambda t: t.representative)[::-1]
    log.decide(parking.id, "answered", index.norms_of(parking.id), "parking-faq")
    log.decide(expense.id, "dismissed", index.norms_of(expense.id))
    assert index.report(log, {}) == []
    closed = {t.id: t for t in index.report(log, {}, include_closed=True)}
    assert closed[parking.id].status == "answered"
    assert closed[parking.id].resolved_by == "parking-faq"
    assert closed[expense.id].status == "dismissed"
    # asked again after the writer said an article answers it: it does not
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat(timespec="seconds")
    index.add([event("parking permit for visitors", ts=later)])
    assert [t.id for t in index.report(log, {})] == [parking.id]
    log.decide(expense.id, "reopened", index.norms_of(expense.id))
    assert {t.id for t in index.report(log, {})} == {parking.id, expense.id}


def test_a_recheck_resolves_a_topic_and_says_by_which_article(log):
    index = TopicIndex()
    _record(log, "book a room")
    index.refresh(log)
    assert log.resolve("book a room", "rooms") == 1
    index.refresh(log)
    [topic] = index.report(log, {}, include_closed=True)
    assert topic.status == "resolved" and topic.resolved_by == "rooms"


def test_not_helpful_resolves_once_the_article_is_edited_and_then_found_helpful():
    index = TopicIndex()
    index.add([event("vpn drops", kind="not_helpful", article="vpn",
                     ts="2026-11-10T09:00:00+00:00")])
    edited = {"vpn": ["2026-11-12T09:00:00+00:00"]}
    helpful_before = {"vpn": [("2026-11-11T09:00:00+00:00", True)]}
    assert report(index, FakeLog(edits=edited, feedback=helpful_before))[0].status == "open"
    helpful_after = {"vpn": [("2026-11-13T09:00:00+00:00", True)]}
    assert report(index, FakeLog(feedback=helpful_after))[0].status == "open"  # not edited
    [topic] = report(index, FakeLog(edits=edited, feedback=helpful_after), include_closed=True)
    assert (topic.status, topic.resolved_by, topic.resolved_at) == (
        "resolved", "vpn", "2026-11-13T09:00:00+00:00")


def test_memory_is_bounded_keeping_the_phrasings_seen_last():
    index = TopicIndex(max_phrasings=50)
    rng = np.random.default_rng(0)
    for day in range(1, 29):
        index.add(event(f"question number {day} {k}", ts=f"2026-11-{day:02d}T09:00:00+00:00",
                        vector=rng.normal(size=16).astype(np.float32)) for k in range(3))
    assert len(index.phrasings) <= 50
    assert min(p.last_seen for p in index.phrasings) > "2026-11-10"


def test_link_threshold_follows_how_alike_the_articles_are():
    rng = np.random.default_rng(1)
    spread = rng.normal(size=(40, 32)).astype(np.float32)
    spread /= np.linalg.norm(spread, axis=1, keepdims=True)
    near = spread[:1] + 0.05 * spread  # all alike: the knowledge base tells them apart finely
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    assert link_threshold(spread) == 0.6  # the floor
    assert link_threshold(near) > 0.8


def test_report_reads_at_80_columns_and_as_csv():
    index = TopicIndex()
    long = "how do I " + "really " * 30 + "export everything from the old calendar system"
    index.add([event(long, ticket="T-9"), event(long), event("short one")])
    text = render(report(index), 80)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert text.startswith("Knowledge gaps: 2 topics, 3 queries") and "Write first:" in text
    assert "tickets: T-9" in text
    assert "1 query, 1 phrasing," in text and "(1 query)" in text  # counted in words right
    assert render(report(index)[1:]).startswith("Knowledge gaps: 1 topic, 1 query,")
    rows = topics_csv(report(index)).splitlines()
    assert len(rows) == 3 and rows[0].startswith("id,kind,status,title")


def test_chinese_lines_fit_80_terminal_columns():
    index = TopicIndex()
    long = "周末加班调休申请需要提前几天提交领导不在的时候找谁审批系统里面怎么操作才能选到正确的假期类型"
    index.add([event(long, lang="zh"), event(long, lang="zh")])
    text = render(report(index), 80)
    assert all(cell_len(line) <= 80 for line in text.splitlines())
    # folded, not cut: every character is still there
    assert long[:20] in text.replace("\n", "").replace(" ", "")


def test_suggested_titles():
    assert suggested_title("how do i export my calendar") == "How do i export my calendar?"
    assert suggested_title("  vpn error 809   at hotel ") == "Vpn error 809 at hotel"
    assert suggested_title("退款多久到账？") == "退款多久到账？"


def _answered(text, vector, confidence, **kw):
    e = event(text, vector=vector, kind="answered", **kw)
    return GapEvent(e.seq, e.kind, dataclasses.replace(e.query, answered=True,
                                                       confidence=confidence), None, e.ts)


def test_a_doubtful_answer_joins_the_gap_it_is_alike_and_a_confident_one_counts_against():
    room, other = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    index = TopicIndex(link=0.8, doubt=0.6)
    index.add([event("where is the meeting room booking", vector=room),
               _answered("book a meeting room", room * 0.9 + other * 0.1, 0.5),
               event("expense deadline", vector=other),
               _answered("expense report deadline", other, 0.9)])
    topics = {e: t for t in report(index, include_closed=True) for e in t.examples}
    room_topic = topics["where is the meeting room booking"]
    assert room_topic is topics["book a meeting room"]
    assert room_topic.count == 2 and room_topic.doubtful == 1
    assert room_topic.answered_alike == 0 and room_topic.status == "open"
    assert "2 queries (1 answered doubtfully), 2 phrasings" in render([room_topic])
    expense = topics["expense deadline"]
    assert expense.answered_alike == 1 and expense.count == 1 and expense.doubtful == 0
    assert "expense report deadline" not in topics


def test_doubtful_answers_alone_are_listed_apart_from_the_open_gaps():
    room = np.array([1.0, 0.0, 0.0])
    index = TopicIndex(link=0.8, doubt=0.6)
    index.add([_answered("book a meeting room", room, 0.5),
               _answered("meeting room booking page", room, 0.4)])
    assert report(index) == []
    [topic] = report(index, include_closed=True)
    assert topic.status == "doubtful" and topic.count == 2 and topic.doubtful == 2
    # without a doubt level (no calibration fit one) an answered query is an answer
    plain = TopicIndex(link=0.8)
    plain.add([_answered("book a meeting room", room, 0.5)])
    assert report(plain, include_closed=True) == []


def test_a_doubtful_answer_reported_as_missing_is_counted_once():
    room = np.array([1.0, 0.0, 0.0])
    index = TopicIndex(link=0.8, doubt=0.6)
    asked = _answered("book a meeting room", room, 0.5)
    index.add([asked])
    reported = dataclasses.replace(asked.query, reported=True)
    index.add([GapEvent(next(_seq), "reported", reported, None, "2026-11-20T11:00:00+00:00")])
    [topic] = report(index)
    assert topic.count == 1 and topic.doubtful == 0 and topic.status == "open"


def _confirmed(asked, ts="2026-11-20T11:00:00+00:00"):
    """An agent's helpful vote on (or copy of) the answer ``asked`` got."""
    return GapEvent(next(_seq), "confirmed", asked.query, None, ts)


@pytest.mark.parametrize("order", ["query first", "confirmation first"])
def test_a_gap_an_agent_found_answered_counts_as_answered_whatever_the_order_read(order):
    room = np.array([1.0, 0.0, 0.0])
    flagged = [event("book a meeting room", vector=room) for _ in range(2)]
    doubtful = _answered("meeting room booking", room, 0.5)
    confirmations = [_confirmed(flagged[0]), _confirmed(flagged[0]),  # a vote and a copy
                     _confirmed(doubtful)]
    index = TopicIndex(link=0.8, doubt=0.6)
    if order == "query first":
        index.add([*flagged, doubtful])
        index.add(confirmations)
    else:  # another replica committed the queries late: their feedback is read first
        index.add(confirmations)
        index.add([*flagged, doubtful])
    [topic] = report(index, include_closed=True)
    assert topic.count == 1 and topic.doubtful == 0  # the other flagged asking is left
    assert topic.answered_alike == 2 and topic.status == "mostly_answered"


def test_votes_count_each_query_once_and_read_in_either_order_make_one_report():
    room, other = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    flagged = event("book a meeting room", vector=room, neighbours=("wifi",))
    confirmed = event("meeting room booking", vector=room, neighbours=("vpn",))
    doubtful = _answered("reserve a meeting room", room, 0.5, neighbours=("wifi",))
    answered = _answered("expense deadline", other, 0.9, neighbours=("expenses",))
    queries = [flagged, confirmed, doubtful, answered]

    def vote(asked, article):
        return GapEvent(next(_seq), "not_helpful", asked.query, article,
                        "2026-11-20T12:00:00+00:00")

    feedback = [vote(flagged, "wifi"), vote(doubtful, "wifi"), _confirmed(confirmed),
                vote(answered, "expenses"), vote(answered, "refund-zh")]
    reports = []
    for first, then in ((queries, feedback), (feedback, queries)):
        index = TopicIndex(link=0.8, doubt=0.6)
        index.add(first)
        index.add(then)
        reports.append(report(index, include_closed=True))
    assert reports[0] == reports[1]
    topics = {t.representative: t for t in reports[0]}
    room_topic = topics["book a meeting room"]
    # the flagged and the doubtful asking, their votes marking articles; the confirmed one
    # answered
    assert room_topic.count == 2 and room_topic.answered_alike == 1
    # each asking once, whether it got the article first, marked it, or both
    assert {a["id"]: a["times"] for a in room_topic.nearest_articles} == {"wifi": 2}
    # two votes on one answered query: one asking of its question
    assert topics["expense deadline"].count == 1


@pytest.mark.parametrize("order", ["query first", "confirmation first"])
def test_a_confirmed_answer_does_not_outvote_a_report_that_it_is_missing(order):
    room = np.array([1.0, 0.0, 0.0])
    index = TopicIndex(link=0.8, doubt=0.6)
    asked = event("book a meeting room", vector=room)
    reported = dataclasses.replace(asked.query, reported=True)
    # read first, the vote may carry the query as it was before the report
    read = [GapEvent(asked.seq, "unanswered", reported, None, asked.ts),
            GapEvent(next(_seq), "confirmed", reported if order == "query first" else
                     asked.query, None, "2026-11-20T11:00:00+00:00")]
    for e in (read if order == "query first" else read[::-1]):
        index.add([e])
    [topic] = report(index)
    assert topic.count == 1 and topic.status == "open"


def test_doubtful_answers_that_fall_short_together_as_far_as_a_flag_are_a_gap():
    room, other = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    # threshold 0.3, doubt 0.5: a flagged query is at least 0.85 log-odds below the doubt
    index = TopicIndex(link=0.8, doubt=0.5, threshold=0.3)
    index.add([_answered("book a meeting room", room, 0.35),  # 0.62 below
               _answered("meeting room booking page", room, 0.4),  # 0.41 below
               _answered("expense deadline", other, 0.45),  # 0.20 below
               _answered("expense report deadline", other, 0.45)])
    [topic] = report(index)
    assert topic.count == 2 and topic.doubtful == 2 and "book a meeting room" in topic.examples
    [apart] = [t for t in report(index, include_closed=True) if t.status == "doubtful"]
    assert "expense deadline" in apart.examples


def test_a_doubtful_chinese_answer_joins_by_its_words_where_the_model_is_not_trusted():
    index = TopicIndex(link=0.6, untrusted=frozenset({"zh"}), doubt=0.6)
    index.add([event("退款多久到账", lang="zh", neighbours=("refund-zh",)),
               _answered("退款多久到账呢", None, 0.5, lang="zh", neighbours=("refund-zh",)),
               _answered("发票怎么开", None, 0.5, lang="zh", neighbours=("invoice",))])
    [topic] = report(index)
    assert topic.count == 2 and topic.doubtful == 1 and topic.languages == {"zh-Hans": 2}


def test_the_report_takes_its_levels_from_the_index_calibration(tmp_path):
    import types

    from kb.ranking import Calibration
    from kb.topics import GapReporter

    store = SqlStore(f"sqlite:///{tmp_path / 'g.sqlite3'}")
    calibration = Calibration(answer_threshold=0.3, answer_doubt=0.6)
    index = types.SimpleNamespace(version="v1", articles={}, chunks=[], calibration=calibration)
    topics = GapReporter(store).topics(index)
    assert topics.doubt == 0.6 and np.isclose(topics.enough, np.log(0.6 / 0.4) - np.log(0.3 / 0.7))
    assert GapReporter(store).topics(None).doubt == 0.0  # no index: nothing is doubtful
    store.close()


def test_a_flag_and_a_confident_answer_alike_tie_to_the_answer_unless_an_agent_said_otherwise():
    room, other = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    index = TopicIndex(link=0.8)
    index.add([event("where is the meeting room booking", vector=room),
               event("book a meeting room", vector=room, kind="answered")])
    [topic] = report(index, include_closed=True)
    assert topic.count == 1 and topic.answered_alike == 1
    assert topic.status == "mostly_answered" and report(index) == []
    # an agent's report outweighs the model's answer: one gap, one answer stays open
    asked = event("expense deadline", vector=other, kind="answered")
    index.add([event("expense report deadline", vector=other, kind="answered"),
               GapEvent(next(_seq), "reported", dataclasses.replace(asked.query, reported=True),
                        None, "2026-11-20T11:00:00+00:00")])
    [open_topic] = report(index)
    assert open_topic.representative == "expense deadline"
    assert open_topic.count == 1 and open_topic.answered_alike == 1


def test_a_question_asked_in_two_languages_meets_by_its_translated_words():
    from kb.bridge import Dictionary
    from kb.expansion import Lexicon

    bridge = Dictionary(
        zh_en={"显示器": (("monitor", 1.0),), "外置": (("extern", 1.0),)},
        en_zh={"signal": (("信号", 1.0),), "monitor": (("显示器", 1.0),),
               "printer": (("打印机", 1.0),)})
    # no vectors and no shared tags: only the dictionary can tell these are one question
    index = TopicIndex(link=0.6, untrusted=frozenset({"zh"}))
    index.lexicon = Lexicon(bridge=bridge)
    index.add([event("外接显示器没信号", lang="zh", neighbours=("a",)),
               event("external monitor shows no signal", neighbours=("b",)),
               event("printer shows no signal light", neighbours=("c",)),
               event("打印机卡纸", lang="zh", neighbours=("d",))])
    topics = sorted(report(index), key=lambda t: -t.count)
    assert [sorted(t.examples) for t in topics[:1]] == [
        ["external monitor shows no signal", "外接显示器没信号"]]
    # one translated word of four is not the same question
    assert [t.count for t in topics] == [2, 1, 1]


@pytest.mark.parametrize("order", ["query first", "reports first"])
@pytest.mark.parametrize("served", ["flagged", "doubtful", "answered"])
def test_a_query_reported_missing_counts_once_however_often_it_is_reported(served, order):
    room = np.array([1.0, 0.0, 0.0])
    asked = (event("book a meeting room", vector=room) if served == "flagged" else
             _answered("book a meeting room", room, 0.5 if served == "doubtful" else 0.9))
    reported = dataclasses.replace(asked.query, reported=True)
    reports = [GapEvent(next(_seq), "reported", reported, None, ts)
               for ts in ("2026-11-20T11:00:00+00:00", "2026-11-20T11:05:00+00:00")]
    index = TopicIndex(link=0.8, doubt=0.6)
    for batch in (([asked], reports) if order == "query first" else (reports, [asked])):
        index.add(batch)
    [topic] = report(index)
    assert topic.count == 1 and topic.doubtful == 0 and topic.answered_alike == 0


@pytest.mark.parametrize("order", ["query first", "vote first"])
def test_an_answer_voted_not_helpful_no_longer_counts_as_answered(order):
    room = np.array([1.0, 0.0, 0.0])
    asked = _answered("book a meeting room", room, 0.9, neighbours=("wifi",))
    vote = GapEvent(next(_seq), "not_helpful", asked.query, "wifi", "2026-11-20T12:00:00+00:00")
    index = TopicIndex(link=0.8, doubt=0.6)
    for batch in (([asked], [vote]) if order == "query first" else ([vote], [asked])):
        index.add(batch)
    [topic] = report(index)
    assert topic.count == 1 and topic.answered_alike == 0 and topic.kind == "not_helpful"


def test_answers_agents_found_not_helpful_for_a_question_do_not_outvote_it():
    """The same wrong article served confidently to other askings of a question that agents
    marked it not helpful for is no evidence that the question is answered."""
    room = np.array([1.0, 0.0, 0.0])
    voted = _answered("book a meeting room", room, 0.9, neighbours=("wifi",))
    index = TopicIndex(link=0.8, doubt=0.6)
    index.add([voted,
               GapEvent(next(_seq), "not_helpful", voted.query, "wifi", "2026-11-20T12:00:00+00:00"),
               _answered("meeting room booking", room, 0.9, neighbours=("wifi",)),
               _answered("reserve a meeting room", room, 0.9, neighbours=("wifi",))])
    [topic] = report(index)
    assert topic.status == "open" and topic.answered_alike == 0
    # answered by another article, the alike askings still count against it
    other = TopicIndex(link=0.8, doubt=0.6)
    other.add([voted,
               GapEvent(next(_seq), "not_helpful", voted.query, "wifi", "2026-11-20T12:00:00+00:00"),
               _answered("meeting room booking", room, 0.9, neighbours=("rooms",)),
               _answered("reserve a meeting room", room, 0.9, neighbours=("rooms",))])
    [closed] = report(other, include_closed=True)
    assert closed.answered_alike == 2 and closed.status == "mostly_answered"
