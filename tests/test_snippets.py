from kb.snippets import flatten, match_order, snippet, window
from kb.text import content_terms, normalize


def test_marks_stemmed_english_terms_and_escapes_html():
    text = "Run the <installer> again. Installation needs admin rights."
    out = snippet(text, {"instal"})
    assert "<mark>installer</mark>" in out and "<mark>Installation</mark>" in out
    assert "&lt;" in out and "<installer>" not in out


def test_traditional_text_is_marked_for_simplified_terms():
    out = snippet("請先確認印表機是否離線，再重新安裝驅動程式。", {"打印机"})
    assert "<mark>印表機</mark>" in out or "<mark>印表</mark>" in out


def test_window_moves_to_the_matches():
    text = "intro " * 100 + "the VPN error 809 appears " + "outro " * 100
    out = snippet(text, {"809"}, width=80)
    assert "<mark>809</mark>" in out and len(out) < 200
    assert snippet(text, set(), width=80).startswith("intro")


def test_query_terms_from_the_tokenizer_are_found():
    out = snippet("Outlook 报错 0x800CCC0E 无法连接服务器", content_terms("0x800ccc0e 报错"))
    assert "<mark>0x800CCC0E</mark>" in out


def test_stems_are_marked_only_from_a_word_start():
    out = snippet("Reinstall first, then install the printer driver.", {"instal"})
    assert out == "Reinstall first, then <mark>install</mark> the printer driver."


def test_a_stem_that_recurs_inside_its_own_match_is_marked_once():
    assert snippet("a-a-a", {"a-a"}) == "<mark>a-a</mark>-a"


def test_marked_terms_are_escaped_and_stray_control_characters_cannot_forge_marks():
    out = snippet("a <b>&\x02 tag\x03 here", {"<b>&", "tag"})
    assert out == "a <mark>&lt;b&gt;&amp;</mark> <mark>tag</mark> here"


def test_text_folded_in_advance_gives_the_same_snippet():
    # 記憶體 → 内存 shortens the text: marks then fall back to positions in the unconverted text.
    for text, terms in [("請先確認印表機是否離線，\n再重新安裝驅動程式。", {"打印机", "驱动"}),
                        ("升級記憶體後  印表機離線", {"印表机", "离线"}),
                        ("Run the  installer\nagain.", {"instal"})]:
        flat = flatten(text)
        assert window(flat, normalize(flat), match_order(terms)) == snippet(text, terms)


def test_terms_of_equal_length_are_looked_for_in_one_order_whatever_the_set_order():
    terms = {"vpn", "809", "err", "wifi", "sso", "pin"}
    assert [t for t, _ in match_order(terms)] == ["wifi", "809", "err", "pin", "sso", "vpn"]
