from kb.tickets import key_sentences, ticket_query


def test_subject_leads_and_counts_twice():
    tq = ticket_query("VPN error 809", "Hi team, please help.")
    assert tq.dense.startswith("VPN error 809")
    assert tq.lexical.count("VPN error 809") == 2


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
