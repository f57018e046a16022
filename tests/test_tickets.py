from kb.search import Filters, Searcher
from kb.store import load_index
from kb.text import tokenize
from kb.tickets import begin_ticket, derived_subject, key_sentences, ticket_query


def test_subject_leads_and_counts_twice():
    tq = ticket_query("VPN error 809", "Hi team, please help with the VPN.")
    assert tq.dense.startswith("VPN error 809")
    assert tq.tokens.count("vpn") == 2  # in subject and description: still twice, not three times
    assert tq.tokens.count("809") == 2
    assert tq.tokens.count("team") == 1


def test_a_description_counts_each_token_once():
    # A long description repeats its topic words; each repetition must not count again.
    tq = ticket_query("", "打印机显示离线。打印机还是离线。我重启了打印机，打印机仍然离线。")
    assert tq.tokens.count("打印机") == 1
    assert tq.tokens.count("离线") == 1


def test_identifiers_in_the_description_count_as_much_as_the_subject():
    desc = "您好。我昨天申请了退款，一直没有到账。订单号 ORD-20260915-0042，麻烦查一下。"
    tq = ticket_query("退款没到账", desc)
    order = tokenize("ORD-20260915-0042")[0]
    assert tq.tokens.count(order) == 2
    assert tq.tokens.count("退款") == 2  # a subject token
    assert tq.tokens.count("申请") == 1  # a description token


def test_long_description_keeps_relevant_sentences_not_the_first_characters():
    filler = "Thank you for your continued support of our services. " * 40
    description = filler + "The client shows error 809 after I connect from the hotel. " + filler
    kept = " ".join(key_sentences("VPN fails", description))
    assert "809" in kept
    assert len(kept) <= 400


def test_chinese_description_sentences():
    desc = "您好。我昨天申请了退款。订单号 ORD-20260915-0042 退款一直没有到账。谢谢！"
    kept = key_sentences("退款没到账", desc)
    assert any("ORD-20260915-0042" in s for s in kept)


def test_empty_subject_uses_description():
    tq = ticket_query("", "打印机显示离线")
    assert "打印机" in tq.dense and tq.display
    assert "打印机" in tq.tokens


def test_derived_subject_is_the_first_clause():
    assert derived_subject("前段时间我去体检，查出甲状腺结节。怎么办？") == "前段时间我去体检"
    assert derived_subject("Outlook fails. It shows 0x800CCC0E") == "Outlook fails"
    assert derived_subject("v6.2.1 crashes on start") == "v6.2.1 crashes on start"
    assert len(derived_subject("很" * 100)) == 30


def test_an_error_code_deep_in_a_long_description_finds_its_article(fake_index, fake_embedder):
    # Many words point at the VPN article; the one error code points at Outlook's, and wins.
    searcher = Searcher(load_index(fake_index), fake_embedder)
    filler = "I am working from home and the connection to the office is slow today. " * 8
    description = filler + "Outlook then stops with 0x800CCC0E when I send mail."
    started = begin_ticket(searcher, "", description, Filters(), 3, wait=True)
    outcome = searcher.finish(started, started.vector.result())
    assert outcome.hits[0].id == "outlook-0x800ccc0e"


def test_a_description_of_one_clause_is_read_as_a_search_query():
    desc = "花呗还款还款失败怎么办"
    assert ticket_query("", desc).tokens == tokenize(desc)
