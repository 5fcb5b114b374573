/* Tokenizer: encode/decode against the Hugging Face `tokenizers` library.
 *  - the whole WikiText-2 test file -> exactly data/wikitext2_test.tokens.i32, and back;
 *  - edge cases (multi-byte text, emoji, combining marks, white space, digits, contractions,
 *    special tokens) -> the ids `tokenizers` 0.23.2 gives with data/tokenizer.json, and
 *    decode(encode(t)) == NFC(t) (== t when t is already NFC);
 *  - invalid UTF-8 -> LM_ERR_FORMAT naming the byte offset; ids out of range -> LM_ERR_ARG;
 *  - pathological input (one 200 kB word, 200 kB of white space) in linear-ish time. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "check.h"
#include "common/clock.h"
#include "common/file.h"

/* decode(encode(text)) must give NFC(text) back; returns the number of ids. */
static size_t check_round_trip(const lm_tokenizer *tok, const char *what, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    char *back = NULL;
    size_t back_len = 0;
    CHECK_OK(lm_tokenizer_encode(tok, text, len, &ids, &n));
    CHECK_OK(lm_tokenizer_decode(tok, ids, n, &back, &back_len));
    char *copy = malloc(len + 1); /* utf8proc_NFC wants a NUL-terminated string */
    memcpy(copy, text, len);
    copy[len] = '\0';
    char *nfc = (char *)utf8proc_NFC((const utf8proc_uint8_t *)copy);
    CHECK(nfc && back && back_len == strlen(nfc) && !memcmp(back, nfc, back_len), "%s: decode(encode(t)) != NFC(t)", what);
    free(copy);
    free(nfc);
    free(back);
    free(ids);
    return n;
}

static void test_wikitext(const lm_tokenizer *tok) {
    char *path_text = lm_path_join(test_root(), "data/wikitext2_test.txt");
    char *path_ids = lm_path_join(test_root(), "data/wikitext2_test.tokens.i32");
    char *text = NULL, *ref = NULL;
    size_t len = 0, ref_len = 0;
    CHECK_OK(lm_read_file(path_text, &text, &len));
    CHECK_OK(lm_read_file(path_ids, &ref, &ref_len));
    if (text && ref) {
        int32_t *ids = NULL;
        size_t n = 0;
        double t0 = lm_now_seconds();
        CHECK_OK(lm_tokenizer_encode(tok, text, len, &ids, &n));
        double seconds = lm_now_seconds() - t0;
        size_t n_ref = ref_len / 4;
        CHECK(n == n_ref && n_ref == 285831, "wikitext: %zu ids, reference %zu", n, n_ref);
        size_t first_diff = 0;
        while (first_diff < n && first_diff < n_ref && !memcmp(&ids[first_diff], ref + 4 * first_diff, 4)) first_diff++;
        CHECK(first_diff == n && n == n_ref, "wikitext: first difference from the reference at id %zu", first_diff);
        printf("wikitext2 test: %zu bytes -> %zu ids in %.3f s (%.1f MB/s)\n", len, n, seconds, len / seconds / 1e6);

        char *back = NULL;
        size_t back_len = 0;
        CHECK_OK(lm_tokenizer_decode(tok, ids, n, &back, &back_len));
        CHECK(back && back_len == len && !memcmp(back, text, len), "wikitext: decode(encode(text)) != text");
        free(back);
        free(ids);
    }
    free(text);
    free(ref);
    free(path_text);
    free(path_ids);
}

/* Expected ids: Hugging Face `tokenizers` 0.23.2 (the Node binding), Tokenizer.fromFile(
 * "data/tokenizer.json").encode(text, null, {addSpecialTokens: false}).getIds(). */
static const struct {
    const char *what;
    const char *text;
    int32_t ids[32];
    size_t n;
} cases[] = {
    {"ASCII words", u8"Hello world",
     {12092, 1533}, 2},
    {"Latin-1 letters", u8"héllo wörld, naïve café",
     {73, 860, 48620, 259, 6592, 392, 13, 36060, 36241}, 9},
    {"not NFC: e + U+0301 composes to é", u8"Cafe\u0301 and cafe\u0301s",
     {36, 2320, 860, 285, 15660, 5069}, 6},
    {"not NFC: Hangul jamo compose to one syllable", u8"\u1100\u1161\u11a8",
     {26532, 212}, 2},
    {"two combining marks on one base", u8"a\u0308\u0301",
     {1392, 136, 212}, 3},
    {"combining marks with no precomposed form", u8"Z\u0351\u036b\u0343",
     {59, 137, 228, 137, 106, 136, 230}, 7},
    {"CJK", u8"日本語のテキスト、中文文本。",
     {49868, 19119, 241, 3917, 28656, 33548, 38206, 4746, 13609, 20855, 20855, 18957, 4340}, 13},
    {"Korean", u8"한국어 텍스트",
     {39742, 166, 115, 244, 39907, 25811, 216, 224, 33057, 99, 169, 221, 118}, 13},
    {"mixed scripts", u8"Ελληνικά και русский текст, مرحبا, שלום",
     {138, 232, 29704, 4992, 3147, 12388, 8348, 18806, 9160, 46640, 10453, 18664, 8134, 14742, 5031, 13, 13504, 6900, 21931, 13621, 3142, 13, 33839, 20770, 12859, 240}, 26},
    {"emoji", u8"a😀b 😀😀",
     {66, 14931, 235, 211, 67, 49042, 211, 14931, 235, 211}, 10},
    {"emoji + skin tone", u8"👍🏽 👩🏿\u200d🔬",
     {14931, 228, 224, 14931, 226, 123, 22692, 228, 104, 14931, 226, 125, 325, 224, 14931, 231, 107}, 17},
    {"ZWJ family", u8"👨\u200d👩\u200d👧\u200d👦",
     {14931, 228, 103, 325, 224, 14931, 228, 104, 325, 224, 14931, 228, 102, 325, 224, 14931, 228, 101}, 18},
    {"flag with VS16 + ZWJ", u8"🏳\ufe0f\u200d🌈",
     {14931, 226, 113, 171, 118, 226, 325, 224, 14931, 223, 219}, 11},
    {"astral math letters", u8"𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
     {172, 240, 231, 235, 172, 240, 231, 106, 172, 240, 231, 101, 172, 240, 231, 243, 172, 240, 231, 107, 172, 240, 231, 96, 172, 240, 231, 97}, 28},
    {"trailing spaces", u8"trailing   ",
     {7604, 4837, 50275}, 3},
    {"leading spaces", u8"  leading",
     {50276, 16378}, 2},
    {"2 spaces: an added token", u8"a  b",
     {66, 50276, 67}, 3},
    {"3 spaces", u8"a   b",
     {66, 50275, 67}, 3},
    {"30 spaces: 24 + 6", u8"a                              b",
     {66, 50254, 50272, 67}, 4},
    {"blank lines", u8"a\n\nb",
     {66, 187, 187, 67}, 4},
    {"trailing newline", u8"line\n",
     {1282, 187}, 2},
    {" \n ", u8" \n ",
     {4928}, 1},
    {"tabs and CRLF", u8"a\t\tb\r\nc",
     {66, 186, 186, 67, 190, 187, 68}, 7},
    {"NBSP and ideographic space", u8"x \u00a0 y\u3000z",
     {89, 17345, 340, 19409, 91}, 5},
    {"NEL and LINE SEPARATOR", u8"x \xc2\x85y \u2028z",
     {89, 209, 16643, 90, 209, 40702, 91}, 7},
    {"U+180E, white space to PCRE2 but not to Unicode", u8"x \u180ey",
     {89, 209, 157, 243, 225, 90}, 6},
    {"zero width space", u8"x\u200by",
     {89, 12882, 90}, 3},
    {"digits", u8"12345678901234567890 3.14159 1,000,000",
     {42594, 43784, 39154, 1857, 25025, 2270, 495, 15, 1047, 17220, 337, 13, 933, 13, 933}, 15},
    {"non-ASCII digits", u8"२०२४ Ⅻ ½ ²",
     {6123, 103, 6123, 101, 6123, 103, 6123, 105, 3384, 216, 106, 24142, 1191, 112}, 14},
    {"contractions", u8"don't I'll we've they're she'd I'm it's",
     {9903, 626, 309, 1833, 359, 1849, 597, 1472, 703, 1871, 309, 1353, 352, 434}, 14},
    {"upper-case contraction", u8"DON'T",
     {39153, 8, 53}, 3},
    {"quotes", u8"rock 'n' roll ''",
     {16249, 686, 79, 8, 4533, 15078}, 6},
    {"special token", u8"<|endoftext|>",
     {0}, 1},
    {"special token inside words", u8"a<|endoftext|>b",
     {66, 0, 67}, 3},
    {"special tokens back to back", u8"<|endoftext|><|padding|>",
     {0, 1}, 2},
    {"incomplete special token", u8"<|endoftext|",
     {29, 93, 423, 1171, 1156, 93}, 6},
    {"special token then spaces", u8"hello<|endoftext|>  world",
     {25521, 0, 50276, 10186}, 4},
    {"special token then a combining mark", u8"<|endoftext|>e\u0301",
     {0, 860}, 2},
    {"punctuation runs", u8"!!!???... a---b (x) [y]",
     {15844, 33186, 1051, 247, 1532, 67, 313, 89, 10, 544, 90, 62}, 12},
    {"control characters", u8"\x01\x1f tab\there",
     {178, 208, 10334, 186, 1568}, 5},
    {"BOM", u8"\ufeffbom",
     {41497, 67, 297}, 3},
    {"wikitext heading", u8" = = Gameplay = = \n",
     {426, 426, 10850, 1993, 426, 426, 2490}, 7},
};

static void test_cases(const lm_tokenizer *tok) {
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(lm_tokenizer_encode(tok, cases[c].text, strlen(cases[c].text), &ids, &n));
        int same = ids && n == cases[c].n && !memcmp(ids, cases[c].ids, n * sizeof *ids);
        CHECK(same, "%s: ids differ from the Hugging Face tokenizer's", cases[c].what);
        if (!same && ids) {
            fprintf(stderr, "  got     ");
            for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n  expected");
            for (size_t i = 0; i < cases[c].n; i++) fprintf(stderr, " %d", cases[c].ids[i]);
            fputc('\n', stderr);
        }
        free(ids);
        check_round_trip(tok, cases[c].what, cases[c].text, strlen(cases[c].text));
    }
    /* A text already in NFC comes back byte for byte; one that is not comes back composed. */
    const char *composed = u8"caf\u00e9", *decomposed = u8"cafe\u0301";
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_OK(lm_tokenizer_encode(tok, composed, strlen(composed), &a, &na));
    CHECK_OK(lm_tokenizer_encode(tok, decomposed, strlen(decomposed), &b, &nb));
    CHECK(a && b && na == nb && !memcmp(a, b, na * sizeof *a), "NFC: \"cafe\\u0301\" and \"caf\\u00e9\" encode differently");
    free(a);
    free(b);
}

static void test_invalid_utf8(const lm_tokenizer *tok) {
    static const struct {
        const char *what, *text;
        size_t len, offset;
    } bad[] = {
        {"overlong '/' (C0 AF)", "ab\xC0\xAF", 4, 2},
        {"overlong 3-byte NUL (E0 80 80)", "x\xE0\x80\x80", 4, 1},
        {"overlong 4-byte (F0 82 82 AC)", "\xF0\x82\x82\xAC", 4, 0},
        {"surrogate U+D800 (ED A0 80)", "ok \xED\xA0\x80", 6, 3},
        {"surrogate U+DFFF (ED BF BF)", "\xED\xBF\xBF", 3, 0},
        {"truncated 2-byte sequence at the end", "abc\xC3", 4, 3},
        {"truncated 4-byte emoji", "hi \xF0\x9F\x98", 6, 3},
        {"lead byte followed by ASCII", "\xE2\x82" "a", 3, 0},
        {"stray continuation byte", "a\x80" "b", 3, 1},
        {"0xFF", "text\xFF", 5, 4},
        {"0xFE", "\xFE", 1, 0},
        {"above U+10FFFF (F4 90 80 80)", "\xF4\x90\x80\x80", 4, 0},
        {"F5 lead byte", "\xF5\x80\x80\x80", 4, 0},
        {"invalid after valid multi-byte text", u8"h\u00e9llo \U0001F600 \x80", 13, 12},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t *ids = (int32_t *)1;
        size_t n = 1;
        lm_status s = lm_tokenizer_encode(tok, bad[i].text, bad[i].len, &ids, &n);
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", bad[i].offset);
        CHECK(s == LM_ERR_FORMAT, "%s: status %d, expected a format error", bad[i].what, s);
        CHECK(strstr(lm_last_error(), want) != NULL, "%s: message \"%s\" does not say \"%s\"", bad[i].what, lm_last_error(), want);
        CHECK(ids == NULL && n == 0, "%s: outputs not cleared on error", bad[i].what);
    }
}

static void test_decode_and_tokens(const lm_tokenizer *tok) {
    CHECK(lm_tokenizer_vocab_size(tok) == 50277, "vocab size %d, expected 50277", lm_tokenizer_vocab_size(tok));
    size_t len = 99;
    const char *t = lm_tokenizer_token(tok, 12092, &len);
    CHECK(t && len == 5 && !memcmp(t, "Hello", 5), "token 12092 is not \"Hello\"");
    t = lm_tokenizer_token(tok, 1533, &len);
    CHECK(t && len == 6 && !memcmp(t, " world", 6), "token 1533 is not \" world\"");
    t = lm_tokenizer_token(tok, 0, &len);
    CHECK(t && len == 13 && !memcmp(t, "<|endoftext|>", 13), "token 0 is not <|endoftext|>");
    CHECK(lm_tokenizer_eos(tok) == 0, "the end-of-text id is %d, expected 0", (int)lm_tokenizer_eos(tok));
    CHECK(lm_tokenizer_eos(NULL) == -1, "a NULL tokenizer has an end-of-text id");
    t = lm_tokenizer_token(tok, 50276, &len);
    CHECK(t && len == 2 && !memcmp(t, "  ", 2), "token 50276 is not two spaces");
    t = lm_tokenizer_token(tok, 50277, &len);
    CHECK(t == NULL && len == 0, "token 50277 (out of range) is not NULL");
    t = lm_tokenizer_token(tok, -1, &len);
    CHECK(t == NULL && len == 0, "token -1 is not NULL");

    /* A token may end inside a UTF-8 character: streaming them concatenates to the text. */
    const char *emoji = u8"\U0001F600";
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(lm_tokenizer_encode(tok, emoji, strlen(emoji), &ids, &n));
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k;
        const char *b = lm_tokenizer_token(tok, ids[i], &k);
        CHECK(b && total + k <= 4 && !memcmp(emoji + total, b, k), "streamed token %zu of the emoji differs", i);
        total += k;
    }
    CHECK(n > 1 && total == 4, "emoji: %zu tokens, %zu bytes", n, total);
    free(ids);

    int32_t bad_ids[] = {12092, 50277};
    char *text = (char *)1;
    size_t text_len = 1;
    CHECK(lm_tokenizer_decode(tok, bad_ids, 2, &text, &text_len) == LM_ERR_ARG, "id 50277 decoded");
    CHECK(strstr(lm_last_error(), "50277") != NULL, "message \"%s\" does not name the id", lm_last_error());
    CHECK(text == NULL && text_len == 0, "outputs not cleared on error");
    bad_ids[1] = -5;
    CHECK(lm_tokenizer_decode(tok, bad_ids, 2, &text, &text_len) == LM_ERR_ARG, "id -5 decoded");

    CHECK_OK(lm_tokenizer_decode(tok, NULL, 0, &text, &text_len));
    CHECK(text && text_len == 0 && text[0] == '\0', "decoding no ids is not \"\"");
    free(text);
    ids = NULL;
    n = 1;
    CHECK_OK(lm_tokenizer_encode(tok, "", 0, &ids, &n));
    CHECK(ids != NULL && n == 0, "empty text: %zu ids", n);
    free(ids);
}

/* One 200 kB word and 200 kB of white space: BPE and the pattern stay fast (no quadratic
 * merge loop, no regex backtracking blow-up) and still round-trip. */
static void test_long_input(const lm_tokenizer *tok) {
    size_t len = 200000;
    char *text = malloc(len);
    const char *kinds[] = {"one 200 kB word", "200 kB of mixed white space", "200 kB of punctuation"};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < len; i++)
            text[i] = k == 0 ? "abcdefghij"[(i * 7 + i / 13) % 10] : k == 1 ? " \t\n "[i % 4] : "!?.,-"[(i / 3) % 5];
        double t0 = lm_now_seconds();
        size_t n = check_round_trip(tok, kinds[k], text, len);
        double seconds = lm_now_seconds() - t0;
        CHECK(n > 0 && seconds < 10.0, "%s: %zu ids in %.2f s", kinds[k], n, seconds);
    }
    free(text);
}

int main(void) {
    char *path = lm_path_join(test_root(), "data/tokenizer.json");
    lm_tokenizer *tok = NULL;
    double t0 = lm_now_seconds();
    CHECK_OK(lm_tokenizer_init(&tok, path));
    printf("tokenizer loaded in %.3f s\n", lm_now_seconds() - t0);
    free(path);
    if (!tok) return test_finish();
    test_wikitext(tok);
    test_cases(tok);
    test_invalid_utf8(tok);
    test_decode_and_tokens(tok);
    test_long_input(tok);
    lm_tokenizer_free(tok);
    return test_finish();
}
