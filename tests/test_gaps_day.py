"""A day of mixed traffic on the sample knowledge base, as `kb index` serves it: the gap report
puts the three questions it has no article for first, one row each."""

import json
import random
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kb.build import build_index
from kb.cli import app as cli
from kb.config import Settings
from kb.ranking import Calibration
from service.app import create_app

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "queries.jsonl"
# Asked as agents would, in Simplified, Traditional and English; no sample article answers them.
UNCOVERED = {
    "address": ["下单后怎么修改收货地址", "订单地址填错了能改吗", "下單後怎麼修改收貨地址",
                "how do I change the delivery address after ordering",
                "wrong shipping address on my order, can I change it"],
    "coupon": ["优惠券用不了怎么回事", "结算时优惠券不能用", "優惠券結帳時用不了",
               "coupon code not working at checkout", "my discount coupon is not applied"],
    "monitor": ["外接显示器没信号", "笔记本接显示器黑屏没反应", "外接顯示器沒有訊號",
                "external monitor shows no signal",
                "second screen not detected when I plug in the laptop"],
}


def test_after_a_day_the_report_says_which_three_articles_to_write_first(
        tmp_path, real_embedder, monkeypatch):
    index = tmp_path / "index"
    build_index(ROOT / "articles", index, lambda: real_embedder, real_embedder.name,
                calibration=Calibration.load(ROOT / "articles" / "calibration.json"))
    # every golden query once (120 with an article, 21 one-off questions without), and each
    # uncovered question five times, interleaved
    day = [json.loads(line)["query"] for line in GOLDEN.read_text("utf-8").splitlines()]
    day += [q for asked in UNCOVERED.values() for q in asked]
    random.Random(7).shuffle(day)
    settings = Settings(index=index, gap_db=tmp_path / "gaps.sqlite3")
    with TestClient(create_app(settings, real_embedder)) as client:
        for query in day:
            assert client.post("/search", json={"query": query}).status_code == 200
        # every query of the day stored, however long the writer takes on a busy machine (a
        # report reads what is stored once its wait of KB_DB_TIMEOUT is up)
        assert client.app.state.engine.log.flush(timeout=120)
        topics = client.get("/gaps", params={"min_count": 1}).json()["topics"]
    which = {q: name for name, asked in UNCOVERED.items() for q in asked}
    # the largest topics are those three questions, each topic one of them, before any other
    lead = []
    for t in topics:
        names = {which.get(e) for e in t["examples"]}
        if len(names) != 1 or None in names:
            break
        lead.append((names.pop(), t["count"]))
    assert {name for name, _ in lead} == set(UNCOVERED), [t["examples"] for t in topics[:5]]
    assert len(lead) <= 4  # a question in two rows at most
    assert topics[len(lead)]["count"] < min(count for _, count in lead)
    # the three monitor askings in Chinese and English are one row
    assert lead[0][0] == "monitor" and lead[0][1] == 3

    monkeypatch.setenv("KB_INDEX", str(index))
    monkeypatch.setenv("KB_GAP_DB", str(settings.gap_path))
    out = CliRunner().invoke(cli, ["gaps"]).output
    lines = out.splitlines()
    write_first = lines[lines.index("Write first:") + 1:][:3]
    assert [line.split(". ", 1)[1].rsplit(" (", 1)[0] for line in write_first] == [
        t["title"] for t in topics[:3]]
