"""few_shot.Tokenizer against transformers.BertTokenizerFast(vocab, do_lower_case=True)."""
import pytest

from few_shot import FewShotError, Tokenizer

# Kept deliberately varied: accents, full-width, controls, zero-width/format characters, emoji
# (incl. modifiers and flags), ideographic space, tabs/newlines, scripts NFD decomposes.
ODD_TEXTS = [
    "Café naïve résumé", "ÀÉÎÕÜ çñ", "Straße", "İstanbul", "ﬁne ﬂow",
    "ＡＢＣ１２３，全角！", "ｶﾀｶﾅ", "がぎぐ", "한국어", "Ελληνικά", "Русский",
    "x\u200by", "x\u200dy", "x\ufeffy", "x\u00ady", "x\x00y", "x\ufffdy", "x\x7fy", "\x1b[31m红色\x1b[0m",
    "a\x85b", "\u2028\u2029", "😀👍🏻🇨🇳", "很好😀😀", "a\u3000b\u3000很", "\u00a0\u2003\u202f好",
    "a\tb\nc\r\nd\t\t很", "\u0301a", "①②③ Ⅻ ℃ ㎡ ￥100", "…—–“”‘’《》【】「」", "", "   ",
]

LATIN_TEXTS = [
    "iphone12", "iPhone12ProMax", "win10系统", "3.14159", "1,000,000元", "COVID-19", "e-mail",
    "don't", "abc123def", "MacBook Pro 2020款", "USB3.0接口", "x86_64", "HUAWEI P40", "www.example.com",
    "a" * 120, "很好hhhhhhh", "NBA2K21", "5G手机", "7天无理由",
]


@pytest.fixture(scope="module")
def tok(bundled_vocab_path):
    return Tokenizer(bundled_vocab_path)


@pytest.fixture(scope="module")
def fast(bundled_vocab_path):
    transformers = pytest.importorskip("transformers")
    return transformers.BertTokenizerFast(bundled_vocab_path, do_lower_case=True)


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_parity_on_every_sentiment_line(tok, fast, sentiment_texts, split):
    texts = sentiment_texts(split)
    assert len(texts) > 2000
    expected = fast(texts)["input_ids"]
    mismatches = []
    for i, (text, want) in enumerate(zip(texts, expected)):
        got = tok.encode(text)[0]
        if got != want:
            mismatches.append((i, text[:60], tok.ids_to_tokens(got)[:20], fast.convert_ids_to_tokens(want)[:20]))
    assert not mismatches, f"{len(mismatches)} of {len(texts)} lines differ, first: {mismatches[:3]}"


@pytest.mark.parametrize("text", LATIN_TEXTS)
def test_latin_and_digit_wordpiece_matches_fast(tok, fast, text):
    assert tok.encode(text)[0] == fast(text)["input_ids"]


@pytest.mark.parametrize("text", ODD_TEXTS, ids=lambda t: t.encode("unicode_escape").decode()[:24] or "empty")
def test_odd_characters_match_fast(tok, fast, text):
    assert tok.encode(text)[0] == fast(text)["input_ids"]


def test_iphone12_pieces(tok):
    assert tok.tokenize("iPhone12") == ["iphone", "##12"]


def test_pair_matches_fast_and_segments(tok, fast):
    first, second = "这家酒店很好", "服务一般，价格太贵了"
    token_ids, segment_ids = tok.encode(first, second)
    want = fast(first, second)
    assert token_ids == want["input_ids"]
    assert segment_ids == want["token_type_ids"]
    n_first = len(tok.tokenize(first)) + 2  # [CLS] first [SEP]
    n_second = len(tok.tokenize(second)) + 1  # second [SEP]
    assert segment_ids == [0] * n_first + [1] * n_second
    assert token_ids[0] == tok.cls_id and token_ids[n_first - 1] == tok.sep_id and token_ids[-1] == tok.sep_id


def test_single_text_segments_all_zero(tok):
    token_ids, segment_ids = tok.encode("很好")
    assert segment_ids == [0] * len(token_ids) == [0, 0, 0, 0]


def test_maxlen_single_text_matches_fast_truncation(tok, fast, sentiment_texts):
    for text in sentiment_texts("test")[:50]:
        token_ids, segment_ids = tok.encode(text, maxlen=32)
        assert token_ids == fast(text, truncation=True, max_length=32)["input_ids"]
        assert len(token_ids) <= 32 and len(segment_ids) == len(token_ids)
        assert token_ids[0] == tok.cls_id and token_ids[-1] == tok.sep_id


def test_maxlen_pair_truncates_the_longer_text(tok):
    long_text, short_text = "一二三四五六七八九十甲乙丙丁", "很好吗"  # 14 and 3 tokens
    token_ids, segment_ids = tok.encode(long_text, short_text, maxlen=12)
    assert len(token_ids) == len(segment_ids) == 12
    assert token_ids[0] == tok.cls_id and token_ids[-1] == tok.sep_id
    # budget 12 - 3 = 9: the short text stays whole, the long one keeps its first 6 tokens
    assert token_ids == ([tok.cls_id] + tok.tokens_to_ids(list("一二三四五六")) + [tok.sep_id]
                         + tok.tokens_to_ids(list("很好吗")) + [tok.sep_id])
    assert segment_ids == [0] * 8 + [1] * 4
    # the other way round: the second text is the longer one and is the one cut
    token_ids, segment_ids = tok.encode(short_text, long_text, maxlen=12)
    assert tok.ids_to_tokens(token_ids) == (["[CLS]"] + list("很好吗") + ["[SEP]"] + list("一二三四五六")
                                            + ["[SEP]"])
    assert segment_ids == [0] * 5 + [1] * 7


def test_maxlen_too_small_raises(tok):
    with pytest.raises(FewShotError):
        tok.encode("很好", "不好", maxlen=2)
    assert tok.encode("很好", maxlen=2)[0] == [tok.cls_id, tok.sep_id]


def test_mask_in_text_is_one_token_and_matches_fast(tok, fast):
    for text in ["很[MASK]好", "[MASK][MASK]满意。这家酒店", "a[MASK]b", "[MASK]"]:
        token_ids = tok.encode(text)[0]
        assert token_ids == fast(text)["input_ids"]
    assert tok.tokenize("很[MASK]好") == ["很", "[MASK]", "好"]
    assert tok.encode("[MASK]")[0] == [tok.cls_id, tok.mask_id, tok.sep_id]
    assert tok.mask_id == 103


def test_unused_tokens_in_text_are_kept_whole(tok):
    # BertTokenizerFast splits "[unused3]" (not a special token there); few_shot keeps it whole on purpose,
    # so prompt templates can use [unusedN] placeholders.
    assert tok.tokenize("[unused3]很好[unused99]") == ["[unused3]", "很", "好", "[unused99]"]
    assert tok.encode("[unused1][unused3]")[0] == [tok.cls_id, 1, 3, tok.sep_id]
    # lower-case variants are ordinary text
    assert "[unused3]" not in tok.tokenize("[UNUSED3]")


def test_token_id_round_trip(tok):
    assert tok.vocab_size == len(tok) == 21128
    for token in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused1]", "很", "不", "##12", "iphone"]:
        assert tok.id_to_token(tok.token_to_id(token)) == token
    for i in [0, 1, 99, 100, 101, 102, 103, 679, 2523, 21127]:
        assert tok.token_to_id(tok.id_to_token(i)) == i
    assert tok.token_to_id("很") == 2523 and tok.token_to_id("不") == 679
    assert tok.token_to_id("no-such-token-xyz") == tok.unk_id == 100
    ids = tok.encode("这家酒店很好")[0]
    assert tok.tokens_to_ids(tok.ids_to_tokens(ids)) == ids
    assert tok.decode(ids) == "这家酒店很好"


@pytest.mark.parametrize("encoding", ["gbk", "latin-1"])
def test_non_utf8_vocab_names_the_file(tmp_path, encoding):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (["很", "好"] if encoding == "gbk" else ["café"])
    path = tmp_path / "vocab.txt"
    path.write_bytes("\n".join(tokens).encode(encoding) + b"\n")
    with pytest.raises(FewShotError) as info:
        Tokenizer(str(path))
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_missing_vocab_names_the_file(tmp_path):
    path = tmp_path / "nope" / "vocab.txt"
    with pytest.raises(FewShotError, match="vocab"):
        Tokenizer(str(path))


def test_cjk_extension_e_boundary_matches_fast(tok, fast):
    text = "a\U0002B820b\U0002B91Fc"
    assert tok.encode(text)[0] == fast(text)["input_ids"]
