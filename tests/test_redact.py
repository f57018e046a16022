"""The redaction table: each case is the text and what it must become, so it pins both what is
redacted and what must stay (order numbers, ticket ids, dates, error codes, model numbers)."""

import re
from re import _constants as sre_constants
from re import _parser as sre_parse

import pytest

from kb import redact as redact_module
from kb.redact import find_pii, redact, redact_identifier, redact_values

CASES = [
    # Mainland mobiles in the shapes people type them.
    ("客户手机13812345678打不通", "客户手机[PHONE]打不通"),
    ("电话 138 1234 5678 回电", "电话 [PHONE] 回电"),
    ("call 138-1234-5678 please", "call [PHONE] please"),
    ("+86 139 1234 5678 退款", "[PHONE] 退款"),
    ("+86-13912345678", "[PHONE]"),
    ("+8613912345678 没收到验证码", "[PHONE] 没收到验证码"),
    ("008615012345678", "[PHONE]"),
    ("(+86)18612345678 账号被锁", "[PHONE] 账号被锁"),
    ("86-13512345678", "[PHONE]"),
    ("86 13512345678 的用户", "[PHONE] 的用户"),
    ("13812345670/13912345671", "[PHONE]/[PHONE]"),
    ("号码13812345673abc", "号码[PHONE]abc"),
    ("138.1234.5679", "[PHONE]"),
    ("手机1\u200b3\u200b8\u200b1234\u200b5678收不到短信", "手机[PHONE]收不到短信"),
    ("1\u200c38\u200d1234\u20605678", "[PHONE]"),
    ("\u200b13812345678\u200b", "\u200b[PHONE]\u200b"),
    ("１３８１２３４５６７８ 打不通", "[PHONE] 打不通"),
    ("请回拨１３９－１２３４－５６７８", "请回拨[PHONE]"),
    ("客户13812345678说没收到货", "客户[PHONE]说没收到货"),
    ("tel13812345678", "tel[PHONE]"),
    ("Tel: 13812345678", "Tel: [PHONE]"),
    ("手机号是13812345678，订单SO-20260312-0042", "手机号是[PHONE]，订单SO-20260312-0042"),
    ("联系方式 15012345678 或 15112345679", "联系方式 [PHONE] 或 [PHONE]"),
    ("幺三八一二三四五六七八", "[PHONE]"),
    # Taiwan and Hong Kong.
    ("手機號碼：0912-345-678", "手機號碼：[PHONE]"),
    ("my number is 0912 345 678", "my number is [PHONE]"),
    ("+886 912 345 678 台灣客戶", "[PHONE] 台灣客戶"),
    ("+852 9123 4567 香港客户", "[PHONE] 香港客户"),
    ("電話 9123 4567 請回電", "電話 [PHONE] 請回電"),
    ("联系电话：2345 6789", "联系电话：[PHONE]"),
    # Landlines.
    ("座机 010-62345678 转人工", "座机 [PHONE] 转人工"),
    ("(021) 5888 1234", "[PHONE]"),
    ("0755-8765432 无人接听", "[PHONE] 无人接听"),
    ("office 020-87654321 ext 802", "office [PHONE]"),
    ("公司电话02087654321", "公司电话[PHONE]"),
    ("02087654321 打不通", "[PHONE] 打不通"),
    ("010-62345678转8021", "[PHONE]"),
    # International.
    ("+1 (415) 555-0132 US customer", "[PHONE] US customer"),
    ("+44 20 7946 0958", "[PHONE]"),
    ("0044 20 7946 0958 UK", "[PHONE] UK"),
    ("+33 1 23 45 67 89 Paris", "[PHONE] Paris"),
    ("+65 6123 4567 新加坡", "[PHONE] 新加坡"),
    ("customer at (415) 555-0132", "customer at [PHONE]"),
    ("call 415-555-0132 after 5pm", "call [PHONE] after 5pm"),
    ("phone number: 415.555.0132", "phone number: [PHONE]"),
    ("Mobile no. 9123 4567", "Mobile no. [PHONE]"),
    ("WhatsApp +852 6123 4567", "WhatsApp [PHONE]"),
    # E-mail addresses, including non-ASCII local parts and fullwidth @.
    ("zhang.san@example.com 收不到邮件", "[EMAIL] 收不到邮件"),
    ("reset for j.doe+shop@mail.co.uk", "reset for [EMAIL]"),
    ("邮箱是wang_wei99@163.com吗", "邮箱是[EMAIL]吗"),
    ("Email: Li.Na@Example.ORG.", "Email: [EMAIL]."),
    ("张三@example.cn 收不到验证邮件", "[EMAIL] 收不到验证邮件"),
    ("发到 李四@公司.中国 了", "发到 [EMAIL] 了"),
    ("müller@example.de cannot log in", "[EMAIL] cannot log in"),
    ("иван@почта.рф".replace("почта.рф", "mail.ru"), "[EMAIL]"),
    ("wang＠qq．com 邮件退回", "[EMAIL] 邮件退回"),
    ("ｌｉｎａ＠ｅｘａｍｐｌｅ．ｃｏｍ", "[EMAIL]"),
    ("a@b.co 和 c.d@e.com.cn", "[EMAIL] 和 [EMAIL]"),
    ("zs\u200b@qq.com", "[EMAIL]"),
    ("12345@qq.com 是QQ邮箱", "[EMAIL] 是QQ邮箱"),
    # Chinese ID numbers, including the X check character and split or fullwidth digits.
    ("身份证号11010519491231002X实名认证失败", "身份证号[ID]实名认证失败"),
    ("ID 110105194912310021 failed", "ID [ID] failed"),
    ("ID110105194912310022", "ID[ID]"),
    ("身份證 44030419900307123x", "身份證 [ID]"),
    ("实名 320102198801011234 通过不了", "实名 [ID] 通过不了"),
    ("440304198511201236", "[ID]"),
    ("身份证 310104 19780523 4563", "身份证 [ID]"),
    ("证件号３１０１０４１９７８０５２３４５６３", "证件号[ID]"),
    ("3101041978\u200b05234563 核验失败", "[ID] 核验失败"),
    # Bank cards (Luhn-valid), grouped or not, including next to the word 订单.
    ("卡号 6222 0212 3456 7890 128 退款没到", "卡号 [CARD] 退款没到"),
    ("card 4111 1111 1111 1111 declined", "card [CARD] declined"),
    ("4111-1111-1111-1111", "[CARD]"),
    ("refund to 5500005555555559 please", "refund to [CARD] please"),
    ("银行卡6217000010001234569扣款两次", "银行卡[CARD]扣款两次"),
    ("订单退款到 6228480012345678903 了吗", "订单退款到 [CARD] 了吗"),
    ("6228480012345678903 订单没退款", "[CARD] 订单没退款"),
    ("订单 4111 1111 1111 1111 付款失败", "订单 [CARD] 付款失败"),
    ("订单用卡号4111111111111111支付", "订单用卡号[CARD]支付"),
    ("Amex 3782 822463 10005 charged twice", "Amex [CARD] charged twice"),
    ("paid with 378282246310005", "paid with [CARD]"),
    ("Discover 6011000099013918", "Discover [CARD]"),
    ("信用卡 ４１１１ １１１１ １１１１ １１１１", "信用卡 [CARD]"),
    ("尾号1234的卡 扣了两次", "尾号1234的卡 扣了两次"),
    # Taiwan national IDs and resident certificates: valid check digit anywhere, or after a keyword.
    ("身分證字號 A123456789", "身分證字號 [ID]"),
    ("客戶 F223456786 無法登入", "客戶 [ID] 無法登入"),
    ("居留證 A800000014 過期", "居留證 [ID] 過期"),
    ("身分证 b142410973", "身分证 [ID]"),
    ("身分證 A123456788 打錯了", "身分證 [ID] 打錯了"),
    # Hong Kong IDs: a valid one with its check digit in brackets anywhere, or after a keyword.
    ("香港身份證 A123456(3)", "香港身份證 [ID]"),
    ("HKID Y123456(9) 核驗失敗", "HKID [ID] 核驗失敗"),
    ("客户 AB987654(3) 开户", "客户 [ID] 开户"),
    ("G765432 (3) 無法登記", "[ID] 無法登記"),
    ("香港身份證號碼 C6686689", "香港身份證號碼 [ID]"),
    # Passports and other documents: any number after the document's keyword.
    ("护照号 E12345678", "护照号 [ID]"),
    ("passport no. K1234567 expired", "passport no. [ID] expired"),
    ("passport ID: E12345678", "passport ID: [ID]"),
    ("護照號碼：312345678 過期", "護照號碼：[ID] 過期"),
    ("证件号码 G12345678", "证件号码 [ID]"),
    ("港澳通行证 C12345678 办理", "港澳通行证 [ID] 办理"),
    ("台胞證 12345678", "台胞證 [ID]"),
    # US social security numbers.
    ("customer ssn 123-45-6789", "customer ssn [ID]"),
    ("SSN: 123 45 6789", "SSN: [ID]"),
    ("social security number 078051120", "social security number [ID]"),
    ("W-2 lists 536-90-4399 twice", "W-2 lists [ID] twice"),
    # Bank accounts after their keyword, IBANs anywhere.
    ("银行账号 6222020200112233445", "银行账号 [ACCOUNT]"),
    ("bank account 12345678901", "bank account [ACCOUNT]"),
    ("account number: 0123 4567 8901", "account number: [ACCOUNT]"),
    ("acct 987654321012 frozen", "acct [ACCOUNT] frozen"),
    ("帳戶號碼 012-345-678901", "帳戶號碼 [ACCOUNT]"),
    ("銀行帳號：0123456789012", "銀行帳號：[ACCOUNT]"),
    ("IBAN DE89 3704 0044 0532 0130 00", "IBAN [ACCOUNT]"),
    ("IBAN DE89 3704 0044 0532 0130 01", "IBAN [ACCOUNT]"),
    ("转账到 GB82WEST12345698765432 了", "转账到 [ACCOUNT] 了"),
    ("refund to NL91 ABNA 0417 1643 00", "refund to [ACCOUNT]"),
    # Several kinds at once.
    ("张三 13812345678 zs@qq.com", "张三 [PHONE] [EMAIL]"),
    ("卡 4111111111111111 / 手机 +86 13812345678", "卡 [CARD] / 手机 [PHONE]"),
    ("身份证440304198511201236，手机13800138000，邮箱a@b.cn",
     "身份证[ID]，手机[PHONE]，邮箱[EMAIL]"),
    # Identifiers agents search for stay intact.
    ("订单号码 202609140043", "订单号码 202609140043"),
    ("工单号码 20260914", "工单号码 20260914"),
    ("Intel 1234567", "Intel 1234567"),
    ("Intel NUC 1234567 蓝屏", "Intel NUC 1234567 蓝屏"),
    ("订单号 202609141234567898 查不到", "订单号 202609141234567898 查不到"),
    ("订单 202609140043123455", "订单 202609140043123455"),
    ("order no. 202609141234567898 missing", "order no. 202609141234567898 missing"),
    ("订单号：440304198511201230", "订单号：440304198511201230"),
    ("202609141234567898 这个订单没发货", "202609141234567898 这个订单没发货"),
    ("订单 SO-20260312-0042 未发货", "订单 SO-20260312-0042 未发货"),
    ("Outlook 报错 0x800CCC0E", "Outlook 报错 0x800CCC0E"),
    ("VPN error 809 on 10.0.0.1", "VPN error 809 on 10.0.0.1"),
    ("退款 2026-03-12 申请的", "退款 2026-03-12 申请的"),
    ("2026.09.14 下的单", "2026.09.14 下的单"),
    ("20260914 的工单", "20260914 的工单"),
    ("GlobalProtect-6.2.1.msi 安装失败", "GlobalProtect-6.2.1.msi 安装失败"),
    ("PAY-4012 支付失败", "PAY-4012 支付失败"),
    ("订单号 2026031200421239 查不到", "订单号 2026031200421239 查不到"),
    ("order 4111111111111111 status", "order 4111111111111111 status"),
    ("card ending 1234 was charged twice", "card ending 1234 was charged twice"),
    ("error caa70004 in Teams 1.6.00", "error caa70004 in Teams 1.6.00"),
    ("打 400-820-8820 客服热线", "打 400-820-8820 客服热线"),
    ("客服电话 4008208820", "客服电话 4008208820"),
    ("拨打95588转人工", "拨打95588转人工"),
    ("退款 199.00 元 3-7 个工作日", "退款 199.00 元 3-7 个工作日"),
    ("IP 192.168.100.254 ping 不通", "IP 192.168.100.254 ping 不通"),
    ("KB5034441 update failed", "KB5034441 update failed"),
    ("18 位数字 123456789012345678 不是身份证", "18 位数字 123456789012345678 不是身份证"),
    ("paper jam 13.B2 on HP M428", "paper jam 13.B2 on HP M428"),
    ("工单 INC0012345678 已关闭", "工单 INC0012345678 已关闭"),
    ("ticket REQ-2026-000123", "ticket REQ-2026-000123"),
    ("T-1001 客户投诉", "T-1001 客户投诉"),
    ("快递单号 SF1234567890123 没更新", "快递单号 SF1234567890123 没更新"),
    ("运单号 773012345678901", "运单号 773012345678901"),
    ("型号 DS-2CD1234567 摄像头离线", "型号 DS-2CD1234567 摄像头离线"),
    ("serial 13812345678901 on the router", "serial 13812345678901 on the router"),
    ("ORA-12541 TNS no listener", "ORA-12541 TNS no listener"),
    ("HTTP 503 from 10.20.30.40:8080", "HTTP 503 from 10.20.30.40:8080"),
    ("iPhone 15 Pro 无法激活", "iPhone 15 Pro 无法激活"),
    ("version 2026.3.1234567", "version 2026.3.1234567"),
    ("发票号码 044031900111 12345678", "发票号码 044031900111 12345678"),
    ("error 0x80070005 code 1603", "error 0x80070005 code 1603"),
    ("uuid 123e4567-e89b-12d3-a456-426614174000", "uuid 123e4567-e89b-12d3-a456-426614174000"),
    ("at 14:30:00, 2026-09-14T14:30:00Z", "at 14:30:00, 2026-09-14T14:30:00Z"),
    ("一二三 第三季度", "一二三 第三季度"),
    ("@张三 请处理", "@张三 请处理"),
    ("user@ in config", "user@ in config"),
    ("query id 13494285701c91da", "query id 13494285701c91da"),
    ("会话 0012281552d3c339 超时", "会话 0012281552d3c339 超时"),
    # Lookalikes of the new kinds: a reference keyword, a failed check or no keyword keeps them.
    ("订单号 A123456789", "订单号 A123456789"),
    ("order A123456789 shipped", "order A123456789 shipped"),
    ("A123456788 无法开机", "A123456788 无法开机"),
    ("零件 A123456(4) 缺货", "零件 A123456(4) 缺货"),
    ("SF1234562 快递没到", "SF1234562 快递没到"),
    ("KB5034449 安装失败", "KB5034449 安装失败"),
    ("passport-jwt 4.0.1 登录失败", "passport-jwt 4.0.1 登录失败"),
    ("护照 20300101 到期", "护照 20300101 到期"),
    ("证件 ABC123 类型不支持", "证件 ABC123 类型不支持"),
    ("user id 12345678 无法登录", "user id 12345678 无法登录"),
    ("session id A12345678 expired", "session id A12345678 expired"),
    ("order 123-45-6789", "order 123-45-6789"),
    ("code 666-12-3456 in log", "code 666-12-3456 in log"),
    ("account 12345678 locked", "account 12345678 locked"),
    ("bank account 1234 被冻结", "bank account 1234 被冻结"),
    ("bank account 2026-03-12 更新", "bank account 2026-03-12 更新"),
    ("key AB12 3456 7890 1234 invalid", "key AB12 3456 7890 1234 invalid"),
    ("工单 T-20261204-0012 错误 0x8004010F", "工单 T-20261204-0012 错误 0x8004010F"),
    ("[PHONE] [EMAIL] [ID] [ACCOUNT]", "[PHONE] [EMAIL] [ID] [ACCOUNT]"),
    ("退款多久到账", "退款多久到账"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_redaction_table(text, expected):
    assert redact(text) == expected


def test_table_is_large_and_mixed():
    assert len(CASES) >= 100
    chinese = sum(any("\u4e00" <= c <= "\u9fff" for c in t) for t, _ in CASES)
    assert chinese >= 50 and len(CASES) - chinese >= 30
    kept = sum(t == e for t, e in CASES)
    assert kept >= 35 and len(CASES) - kept >= 60  # both misses and false redactions pinned


@pytest.mark.parametrize(("text", "_"), CASES)
def test_redaction_is_idempotent(text, _):
    assert redact(redact(text)) == redact(text)


def test_spans_point_into_the_original_text():
    text = "手机1\u200b3812345678 卡号４１１１１１１１１１１１１１１１"
    spans = find_pii(text)
    assert [s.kind for s in spans] == ["PHONE", "CARD"]
    assert text[spans[0].start:spans[0].end] == "1\u200b3812345678"
    assert text[spans[1].start:spans[1].end] == "４１１１１１１１１１１１１１１１"


# Identifiers (ticket ids, request ids): a separator starts a part judged on its own, so a phone
# number behind a prefix is found; letters glued to digits still make one identifier.
IDENTIFIERS = [
    ("T-13800138000", "T-[PHONE]"),
    ("T-138-1234-5678", "T-[PHONE]"),
    ("case_110105194912310022", "case_[ID]"),
    ("T-A123456789", "T-[ID]"),
    ("客户13800138000", "客户[PHONE]"),
    ("T-1 zhang@example.com", "T-1 [EMAIL]"),
    ("T-20261204-0012", "T-20261204-0012"),
    ("REQ-2026-000123", "REQ-2026-000123"),
    ("INC0012345678", "INC0012345678"),
    ("SO-20260312-0042", "SO-20260312-0042"),
    ("KB5034441", "KB5034441"),
    ("0f8c1e2a-9b7d-4c3e-8f00-5a6b7c8d9e0f", "0f8c1e2a-9b7d-4c3e-8f00-5a6b7c8d9e0f"),
    ("lb.example:7f3a/2", "lb.example:7f3a/2"),
    ("10.0.0.1:8080", "10.0.0.1:8080"),
]


@pytest.mark.parametrize(("value", "expected"), IDENTIFIERS)
def test_identifier_redaction(value, expected):
    assert redact_identifier(value) == expected
    assert redact_identifier(expected) == expected


def test_redact_values_walks_filters():
    assert redact_values({"product": "13812345678", "tags": ["a@b.com", "vpn"], "k": 3}) == {
        "product": "[PHONE]", "tags": ["[EMAIL]", "vpn"], "k": 3}


def _unbounded(tree) -> list:
    """Repeats with no upper bound in a parsed pattern."""
    found = []
    for op, av in tree:
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            lo, hi, sub = av
            if hi == sre_constants.MAXREPEAT:
                found.append(av)
            found += _unbounded(sub)
        elif op == sre_constants.SUBPATTERN:
            found += _unbounded(av[-1])
        elif op == sre_constants.BRANCH:
            for sub in av[1]:
                found += _unbounded(sub)
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            found += _unbounded(av[1])
    return found


def test_every_pattern_on_user_text_has_bounded_repetition():
    patterns = [v for v in vars(redact_module).values() if isinstance(v, re.Pattern)]
    assert len(patterns) >= 10
    for pattern in patterns:
        assert not _unbounded(sre_parse.parse(pattern.pattern, pattern.flags)), pattern.pattern


@pytest.mark.parametrize("text", [
    "a" * 20000 + "@",
    "1" * 20000,
    "1 " * 10000,
    "1-" * 10000,
    "phone" + " " * 20000 + "x",
    "@" * 20000,
    "a@" * 10000,
    "a." * 10000 + "@" + "b." * 10000,
    "订单" * 10000,
    "+1" * 10000,
    "\u200b1" * 10000,
    "(" * 10000 + "1" * 10000,
    "DE89 3704 " * 5000,
    "A12345678" * 5000,
    "A123456(" * 5000,
    "护照 E1234567 " * 5000,
    "bank account 1 " * 5000,
    "身分證" * 10000,
])
def test_hostile_text_is_scanned_in_one_pass(text):
    # Bounded repetition (above) keeps each attempt short; this runs the adversarial shapes
    # end to end so a regression shows up as a visibly slow test, not a frozen service.
    assert isinstance(redact(text), str)
