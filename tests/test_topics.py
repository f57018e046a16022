import datetime as dt

import numpy as np

from kb.gaps import LoggedQuery, _norm
from kb.topics import build_topics, topics_csv


def q(text, ts="2026-11-20T10:00:00+00:00", vector=None, neighbours=("x",), channel="search"):
    return LoggedQuery(id=text, ts=ts, channel=channel, query=text, norm=_norm(text), lang="zh",
                       filters={}, ticket_id=None, top_article=None, top_score=None,
                       neighbours=list(neighbours), vector=vector)


TODAY = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)


def test_traditional_simplified_and_english_share_a_topic_through_tags(real_embedder):
    texts = ["退款多久到賬", "退款多久到账", "how long does a refund take",
             "VPN keeps dropping at the hotel"]
    vectors = real_embedder.embed(texts)
    neighbours = [["refund-zh"], ["refund-zh"], ["refund-en"], ["vpn-809"]]
    tags = {"refund-zh": {"refund", "refund-timeline"}, "refund-en": {"refund", "refund-timeline"},
            "vpn-809": {"vpn", "remote-access"}}
    entries = [(q(t, vector=v, neighbours=n), None)
               for t, v, n in zip(texts, vectors, neighbours, strict=True)]
    topics = build_topics(entries, "unanswered", tags, TODAY)
    assert sorted(t.count for t in topics) == [1, 3]
    refund = next(t for t in topics if t.count == 3)
    assert set(refund.examples) == set(texts[:3])


def test_unrelated_queries_stay_apart(real_embedder):
    texts = ["how do I book a meeting room", "where can I book a meeting room",
             "员工食堂几点开饭", "printer jams on tray 2"]
    vectors = real_embedder.embed(texts)
    entries = [(q(t, vector=v, neighbours=(f"n{i}",)), None)
               for i, (t, v) in enumerate(zip(texts, vectors, strict=True))]
    topics = build_topics(entries, "unanswered", {}, TODAY)
    assert sorted(t.count for t in topics) == [1, 1, 2]


def test_counts_trend_channels_and_representative():
    entries = [(q("发票抬头写错了", ts=f"2026-11-{d:02d}T09:00:00+00:00", channel=c), None)
               for d, c in [(1, "search"), (18, "search"), (20, "suggest"), (21, "suggest"),
                            (21, "search")]]
    [topic] = build_topics(entries, "unanswered", {}, TODAY)
    assert (topic.count, topic.last_7_days, topic.before) == (5, 4, 1)
    assert topic.trend == "rising"
    assert topic.channels == {"search": 3, "suggest": 2}
    assert topic.first_seen.startswith("2026-11-01") and topic.last_seen.startswith("2026-11-21")
    assert topic.representative == "发票抬头写错了"


def test_not_helpful_topics_carry_the_article():
    entries = [(q("vpn 809 hotel"), "vpn-809"), (q("vpn 809 hotel"), "vpn-809"),
               (q("printer offline"), "printer")]
    topics = build_topics(entries, "not_helpful", {}, TODAY)
    assert {(t.article_id, t.count) for t in topics} == {("vpn-809", 2), ("printer", 1)}
    assert all(t.kind == "not_helpful" for t in topics)


def test_resolved_when_every_query_is_resolved():
    resolved = q("book a room")
    resolved.resolved_by, resolved.resolved_at = "rooms", "2026-11-21T00:00:00+00:00"
    [topic] = build_topics([(resolved, None)], "unanswered", {}, TODAY)
    assert topic.status == "resolved" and topic.resolved_by == "rooms"


def test_csv_has_one_row_per_topic():
    topics = build_topics([(q("a b c", vector=np.ones(3, dtype=np.float32)), None)],
                          "unanswered", {}, TODAY)
    lines = topics_csv(topics).splitlines()
    assert len(lines) == 2 and lines[0].startswith("id,kind,status")
