/* Encoding and decoding with a loaded byte-level BPE tokenizer (see tokenizer.h for the
 * pipeline). Encoding keeps a cache of word -> ids for the duration of one call, so a
 * long text runs BPE once per distinct word; the tokenizer itself is never written to,
 * so concurrent calls on one tokenizer are safe. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

/* ---- UTF-8 validation ---- */

/* Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or n when all of s is valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n, const char **why) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c < 0xC0) { *why = "stray continuation byte"; return i; }
        else if (c < 0xE0) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if (c < 0xF0) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if (c < 0xF8) { need = 3; cp = c & 0x07; min = 0x10000; }
        else { *why = "byte that never occurs in UTF-8"; return i; }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= n || (s[i + k] & 0xC0) != 0x80) { *why = "truncated multi-byte sequence"; return i; }
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min) { *why = "overlong encoding"; return i; }
        if (cp >= 0xD800 && cp <= 0xDFFF) { *why = "UTF-16 surrogate code point"; return i; }
        if (cp > 0x10FFFF) { *why = "code point above U+10FFFF"; return i; }
        i += need + 1;
    }
    return n;
}

/* ---- encoder state for one lm_tokenizer_encode call ---- */

typedef struct {
    size_t key, key_len;   /* the word: arena[key .. key+key_len) */
    size_t ids, n_ids;     /* its token ids: pool[ids .. ids+n_ids) */
} cache_slot;              /* key_len == 0: empty slot (words are never empty) */

typedef struct {
    int32_t id;
    int32_t prev, next;    /* neighbours in the word, -1 at the ends */
    int alive;             /* 0 once merged into its left neighbour */
} bpe_symbol;

typedef struct {
    int32_t rank, pos, result; /* merge symbols pos and its right neighbour into result */
} bpe_candidate;

typedef struct {
    const lm_tokenizer *tok;
    int32_t *out;          /* the result */
    size_t n_out, cap_out;
    cache_slot *cache;
    size_t cache_mask, cache_used;
    char *arena;           /* cached words' bytes */
    size_t arena_len, arena_cap;
    int32_t *pool;         /* cached words' ids */
    size_t pool_len, pool_cap;
    bpe_symbol *sym;       /* BPE scratch, for words of up to scratch_cap bytes */
    bpe_candidate *heap;
    size_t scratch_cap;
    char *prefixed;        /* add_prefix_space scratch */
    size_t prefixed_cap;
    pcre2_match_data *match;
} encoder;

/* Makes room for n more elements of size `size` in *buf (length *len, capacity *cap). */
static lm_status reserve(void **buf, size_t *cap, size_t len, size_t n, size_t size) {
    if (n <= *cap - len) return LM_OK;
    size_t new_cap = *cap ? *cap : 64;
    while (new_cap - len < n) {
        if (new_cap > SIZE_MAX / 2 / size) return lm_fail(LM_ERR_NOMEM, "tokenizer: input too large");
        new_cap *= 2;
    }
    void *p = realloc(*buf, new_cap * size);
    if (!p) return lm_fail(LM_ERR_NOMEM, "tokenizer: cannot allocate %zu bytes", new_cap * size);
    *buf = p;
    *cap = new_cap;
    return LM_OK;
}

static lm_status emit(encoder *e, const int32_t *ids, size_t n) {
    LM_TRY(reserve((void **)&e->out, &e->cap_out, e->n_out, n, sizeof *e->out));
    memcpy(e->out + e->n_out, ids, n * sizeof *ids);
    e->n_out += n;
    return LM_OK;
}

/* ---- BPE on one word ---- */

/* Binary min-heap ordered by (rank, pos): the lowest-ranked merge first, leftmost on ties. */
static int candidate_before(const bpe_candidate *a, const bpe_candidate *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_candidate *h, size_t *n, bpe_candidate c) {
    size_t i = (*n)++;
    while (i > 0 && candidate_before(&c, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static bpe_candidate heap_pop(bpe_candidate *h, size_t *n) {
    bpe_candidate top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *n) break;
        if (child + 1 < *n && candidate_before(&h[child + 1], &h[child])) child++;
        if (!candidate_before(&h[child], &last)) break;
        h[i] = h[child];
        i = child;
    }
    if (*n) h[i] = last;
    return top;
}

static void push_pair(const lm_merge_table *m, bpe_candidate *h, size_t *n, const bpe_symbol *sym, int32_t pos) {
    bpe_candidate c = {0, pos, 0};
    if (lm_merge_find(m, sym[pos].id, sym[sym[pos].next].id, &c.rank, &c.result)) heap_push(h, n, c);
}

/* Word bytes -> ids appended to e->pool. Starts from one token per byte and applies merges
 * in rank order; a candidate whose symbols have changed since it was queued is skipped
 * (its rank no longer matches the pair now at pos). O(n log n) in the word length. */
static lm_status bpe_word(encoder *e, const unsigned char *w, size_t n) {
    const lm_tokenizer *t = e->tok;
    if (n > INT32_MAX / 3) return lm_fail(LM_ERR_ARG, "tokenizer: a single word of %zu bytes is too long", n);
    if (n > e->scratch_cap) {
        free(e->sym);
        free(e->heap);
        e->sym = malloc(n * sizeof *e->sym);
        e->heap = malloc(3 * n * sizeof *e->heap); /* n-1 initial pairs + at most 2 per merge */
        e->scratch_cap = e->sym && e->heap ? n : 0;
        if (!e->scratch_cap) return lm_fail(LM_ERR_NOMEM, "tokenizer: cannot allocate scratch for a %zu-byte word", n);
    }
    bpe_symbol *sym = e->sym;
    bpe_candidate *heap = e->heap;
    size_t n_heap = 0;
    for (size_t i = 0; i < n; i++)
        sym[i] = (bpe_symbol){t->byte_token[w[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, 1};
    for (size_t i = 0; i + 1 < n; i++) push_pair(&t->merges, heap, &n_heap, sym, (int32_t)i);

    while (n_heap) {
        bpe_candidate c = heap_pop(heap, &n_heap);
        bpe_symbol *left = &sym[c.pos];
        if (!left->alive || left->next < 0) continue;
        int32_t rank, result;
        if (!lm_merge_find(&t->merges, left->id, sym[left->next].id, &rank, &result) || rank != c.rank) continue;
        bpe_symbol *right = &sym[left->next];
        left->id = c.result;
        right->alive = 0;
        left->next = right->next;
        if (left->next >= 0) sym[left->next].prev = c.pos;
        if (left->prev >= 0) push_pair(&t->merges, heap, &n_heap, sym, left->prev);
        if (left->next >= 0) push_pair(&t->merges, heap, &n_heap, sym, c.pos);
    }
    size_t count = 0;
    for (int32_t i = 0; i >= 0; i = sym[i].next) count++;
    LM_TRY(reserve((void **)&e->pool, &e->pool_cap, e->pool_len, count, sizeof *e->pool));
    for (int32_t i = 0; i >= 0; i = sym[i].next) e->pool[e->pool_len++] = sym[i].id;
    return LM_OK;
}

/* ---- word cache ---- */

static size_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return (size_t)(h ^ (h >> 32));
}

static cache_slot *cache_find(const encoder *e, const char *w, size_t n) {
    for (size_t i = hash_bytes(w, n) & e->cache_mask;; i = (i + 1) & e->cache_mask) {
        cache_slot *s = &e->cache[i];
        if (!s->key_len || (s->key_len == n && !memcmp(e->arena + s->key, w, n))) return s;
    }
}

static lm_status cache_grow(encoder *e) {
    size_t old_cap = e->cache ? e->cache_mask + 1 : 0, cap = old_cap ? 2 * old_cap : 64;
    cache_slot *old = e->cache;
    e->cache = calloc(cap, sizeof *e->cache);
    if (!e->cache) {
        e->cache = old;
        return lm_fail(LM_ERR_NOMEM, "tokenizer: cannot grow the word cache");
    }
    e->cache_mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key_len) *cache_find(e, e->arena + old[i].key, old[i].key_len) = old[i];
    free(old);
    return LM_OK;
}

/* One pre-tokenized word: its ids from the cache, or from BPE (then cached). */
static lm_status encode_word(encoder *e, const char *w, size_t n) {
    if (2 * (e->cache_used + 1) > (e->cache ? e->cache_mask + 1 : 0)) LM_TRY(cache_grow(e));
    cache_slot *s = cache_find(e, w, n);
    if (!s->key_len) {
        LM_TRY(reserve((void **)&e->arena, &e->arena_cap, e->arena_len, n, 1));
        memcpy(e->arena + e->arena_len, w, n);
        size_t ids = e->pool_len;
        LM_TRY(bpe_word(e, (const unsigned char *)w, n));
        *s = (cache_slot){e->arena_len, n, ids, e->pool_len - ids};
        e->arena_len += n;
        e->cache_used++;
    }
    return emit(e, e->pool + s->ids, s->n_ids);
}

/* ---- pre-tokenization and added tokens ---- */

/* A piece of normalized text with no added tokens: split by the GPT-2 pattern into words. */
static lm_status encode_words(encoder *e, const char *s, size_t n) {
    if (e->tok->add_prefix_space && s[0] != ' ') {
        LM_TRY(reserve((void **)&e->prefixed, &e->prefixed_cap, 0, n + 1, 1));
        e->prefixed[0] = ' ';
        memcpy(e->prefixed + 1, s, n);
        s = e->prefixed;
        n++;
    }
    size_t pos = 0;
    while (pos < n) {
        int rc = pcre2_match(e->tok->pattern, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, e->match, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return lm_fail(LM_ERR_UNSUPPORTED, "tokenizer: pre-tokenizer pattern failed at byte %zu: %s", pos, (char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->match);
        /* The pattern covers every character; text it skipped would still be a word. */
        if (ov[0] > pos) LM_TRY(encode_word(e, s + pos, ov[0] - pos));
        if (ov[1] == ov[0]) break; /* cannot happen: every alternative takes a character */
        LM_TRY(encode_word(e, s + ov[0], ov[1] - ov[0]));
        pos = ov[1];
    }
    if (pos < n) LM_TRY(encode_word(e, s + pos, n - pos));
    return LM_OK;
}

typedef lm_status (*piece_fn)(encoder *e, const char *s, size_t n);

/* Cuts the added tokens of one pass (normalized or not) out of s, leftmost-longest first:
 * their ids go to the output, the text between them to `between`. */
static lm_status split_added(encoder *e, const char *s, size_t n, int normalized, piece_fn between) {
    const lm_tokenizer *t = e->tok;
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        const lm_added_token *best = NULL;
        if (t->added_first[normalized][(unsigned char)s[i]])
            for (int k = 0; k < t->n_added; k++) {
                const lm_added_token *a = &t->added[k];
                if (a->normalized == normalized && a->len <= n - i && (!best || a->len > best->len) &&
                    !memcmp(s + i, a->content, a->len))
                    best = a;
            }
        if (!best) {
            i++;
            continue;
        }
        if (i > start) LM_TRY(between(e, s + start, i - start));
        LM_TRY(emit(e, &best->id, 1));
        i += best->len;
        start = i;
    }
    if (n > start) LM_TRY(between(e, s + start, n - start));
    return LM_OK;
}

static lm_status encode_normalized(encoder *e, const char *s, size_t n) {
    return split_added(e, s, n, 1, encode_words);
}

/* Text between raw added tokens: NFC-normalize it (ASCII is already NFC), then pass 2. */
static lm_status encode_between_raw(encoder *e, const char *s, size_t n) {
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
    if (!e->tok->nfc || ascii) return encode_normalized(e, s, n);
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (m < 0) return lm_fail(LM_ERR_FORMAT, "tokenizer: NFC normalization failed: %s", utf8proc_errmsg(m));
    lm_status s_ = encode_normalized(e, (const char *)nfc, (size_t)m);
    free(nfc);
    return s_;
}

lm_status lm_tokenizer_encode(const lm_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (!tok || (!text && len)) return lm_fail(LM_ERR_ARG, "lm_tokenizer_encode: NULL tokenizer or text");
    const char *why = NULL;
    size_t bad = utf8_invalid_at((const unsigned char *)text, len, &why);
    if (bad < len)
        return lm_fail(LM_ERR_FORMAT, "invalid UTF-8 at byte offset %zu (0x%02X): %s", bad, (unsigned char)text[bad], why);
    encoder e = {.tok = tok};
    e.match = pcre2_match_data_create_from_pattern(tok->pattern, NULL);
    lm_status s = e.match ? LM_OK : lm_fail(LM_ERR_NOMEM, "tokenizer: cannot allocate match data");
    if (s == LM_OK) s = split_added(&e, text ? text : "", len, 0, encode_between_raw);
    pcre2_match_data_free(e.match);
    free(e.cache);
    free(e.arena);
    free(e.pool);
    free(e.sym);
    free(e.heap);
    free(e.prefixed);
    if (s != LM_OK) {
        free(e.out);
        return s;
    }
    if (!e.out) e.out = malloc(sizeof *e.out); /* a valid pointer for zero ids too */
    if (!e.out) return lm_fail(LM_ERR_NOMEM, "tokenizer: out of memory");
    *ids = e.out;
    *n_ids = e.n_out;
    return LM_OK;
}

/* ---- decoding ---- */

lm_status lm_tokenizer_decode(const lm_tokenizer *tok, const int32_t *ids, size_t n_ids, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    if (!tok || (!ids && n_ids)) return lm_fail(LM_ERR_ARG, "lm_tokenizer_decode: NULL tokenizer or ids");
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab)
            return lm_fail(LM_ERR_ARG, "token id %d (at %zu) is out of range [0, %d)", ids[i], i, tok->n_vocab);
        total += tok->token_offset[ids[i] + 1] - tok->token_offset[ids[i]];
    }
    char *out = malloc(total + 1);
    if (!out) return lm_fail(LM_ERR_NOMEM, "tokenizer: cannot allocate %zu bytes of text", total + 1);
    size_t k = 0;
    for (size_t i = 0; i < n_ids; i++) {
        size_t n;
        const char *b = lm_tokenizer_token(tok, ids[i], &n);
        memcpy(out + k, b, n);
        k += n;
    }
    out[k] = '\0';
    *text = out;
    *len = k;
    return LM_OK;
}

const char *lm_tokenizer_token(const lm_tokenizer *tok, int32_t id, size_t *len) {
    if (!tok || id < 0 || id >= tok->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = tok->token_offset[id + 1] - tok->token_offset[id];
    return tok->token_bytes + tok->token_offset[id];
}

int lm_tokenizer_vocab_size(const lm_tokenizer *tok) {
    return tok ? tok->n_vocab : 0;
}

int32_t lm_tokenizer_eos(const lm_tokenizer *tok) {
    static const char eos[] = "<|endoftext|>";
    for (int i = 0; tok && i < tok->n_added; i++)
        if (tok->added[i].len == sizeof eos - 1 && memcmp(tok->added[i].content, eos, sizeof eos - 1) == 0)
            return tok->added[i].id;
    return -1;
}
