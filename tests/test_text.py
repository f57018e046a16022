from kb.text import (
    analyze,
    content_terms,
    detect_lang,
    is_traditional,
    normalize,
    normalize_lines,
    starts_a_word,
    tokenize,
)


def test_normalize_folds_width_case_and_traditional_phrases():
    assert normalize("ＶＰＮ　連線") == "vpn 连接"  # Taiwanese 連線 is mainland 连接
    # Phrase-level conversion: the Taiwanese word becomes the mainland word, not just its glyphs.
    assert normalize("印表機") == "打印机"
    assert normalize("軟體") == "软件"


def test_identifiers_stay_whole():
    tokens = tokenize("Outlook 报错 0x800CCC0E，订单 ORD-20260915-0042，版本 v2.3.1，outlook.pst")
    for ident in ("0x800ccc0e", "ord-20260915-0042", "v2.3.1", "outlook.pst"):
        assert ident in tokens
    # ... and their parts match partial input too.
    assert "20260915" in tokens


def test_english_is_stemmed_without_stop_words():
    tokens = tokenize("How do I install the printers?")
    assert "printer" in tokens and "instal" in tokens
    assert "the" not in tokens and "how" not in tokens


def test_chinese_words_and_bigram_fallback():
    tokens = tokenize("花呗分期提前还款")
    assert "分期" in tokens and "还款" in tokens
    assert "花呗" in tokens  # unknown to jieba's dictionary, caught by a bigram


def test_traditional_and_simplified_queries_tokenize_alike():
    assert tokenize("退款多久到賬") == tokenize("退款多久到账")


def test_content_terms_drop_function_words():
    assert content_terms("请问退款怎么还没到账") >= {"退款"}
    assert "怎么" not in content_terms("请问退款怎么还没到账")


def test_analyze_gives_the_tokens_and_terms_of_one_text():
    for text in ("Outlook 報錯 0x800CCC0E 无法发送邮件", "How do I reset my VPN password?",
                 "请问退款怎么还没到账", "花呗分期 wi-fi v2.3.1", ""):
        assert analyze(text) == (tokenize(text), content_terms(text))


def test_detect_lang():
    assert detect_lang("outlook 收不到邮件") == "zh"
    assert detect_lang("VPN error 809") == "en"
    assert detect_lang("印表機離線") == "zh"


def test_starts_a_word_finds_stems_only_at_word_starts():
    assert starts_a_word("please install the driver", "instal")
    assert starts_a_word("pre-install checks", "instal")
    assert not starts_a_word("reinstall the driver", "instal")
    # A later occurrence counts when an earlier one sits inside a word.
    assert starts_a_word("reinstall, then install", "instal")
    assert not starts_a_word("", "instal")


def test_tokens_never_hold_whitespace():
    # The index stores each chunk's tokens as one space-separated line.
    text = ("打印机　离线 (Printer\u3000offline)\tERR-1024\u00a0v2.3.1 wi-fi 退款\u2028到賬 "
            "e-mail\x1cx outlook.pst ｆｕｌｌ　ｗｉｄｔｈ")
    tokens = tokenize(text)
    assert tokens and all(t and t == "".join(t.split()) for t in tokens)


def test_many_lines_fold_as_each_would_alone():
    lines = ["印表機無法列印", "記憶體不足", "Ｗｉ－Ｆｉ PASSWORD", "", "軟體 更新", "滑鼠"]
    assert normalize_lines(lines) == [normalize(line) for line in lines]
    with_break = ["第一行\n第二行", "印表機"]  # not one line each: folded one by one
    assert normalize_lines(with_break) == [normalize(line) for line in with_break]


def test_traditional_is_told_by_characters_not_by_taiwanese_phrasing():
    # tw2sp rewrites 外接 as 外置 and 印表機 as 打印机: phrasing, not script
    assert not is_traditional("外接显示器没信号")
    assert not is_traditional("打印机脱机了")
    assert is_traditional("外接顯示器沒有訊號")
    assert is_traditional("帳號被鎖")
    assert not is_traditional("vpn 809")
