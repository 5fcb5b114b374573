/* GPT-NeoX byte-level BPE (the Hugging Face `tokenizers` pipeline for a ByteLevel BPE
 * tokenizer.json), internal layout shared by loading (tokenizer_load.c) and
 * encoding/decoding (tokenizer.c).
 *
 * Encoding, as `tokenizers` does it:
 *   1. added tokens with normalized=false (e.g. <|endoftext|>) are cut out of the raw text
 *      (leftmost-longest match); they map straight to their ids;
 *   2. each remaining piece is NFC-normalized, then added tokens with normalized=true
 *      (GPT-NeoX: runs of 2..24 spaces) are cut out of it the same way;
 *   3. each remaining piece is split by the GPT-2 pattern into words;
 *   4. each word's bytes start as single-byte tokens and are merged pairwise, always the
 *      pair of lowest merge rank first (leftmost on ties), until no adjacent pair has a merge.
 * Decoding concatenates the tokens' raw bytes. */
#ifndef LM_TOKENIZER_TOKENIZER_H
#define LM_TOKENIZER_TOKENIZER_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>

#include "lightmamba.h"

typedef struct {
    char *content;  /* the text it matches (NFC-normalized when normalized) */
    size_t len;
    int32_t id;
    int normalized; /* matched after normalization (pass 2) rather than on the raw text (pass 1) */
} lm_added_token;

/* Merge table: open addressing on key = left_id << 32 | right_id. */
typedef struct {
    uint64_t *keys;   /* LM_MERGE_EMPTY where free */
    int32_t *rank;    /* position in model.merges: lower merges first */
    int32_t *result;  /* id of the merged token */
    size_t mask;      /* capacity - 1 (capacity a power of two) */
} lm_merge_table;
#define LM_MERGE_EMPTY UINT64_MAX

struct lm_tokenizer {
    int n_vocab;              /* ids are 0 .. n_vocab-1, every one with a token */
    char *token_bytes;        /* raw bytes of every token, concatenated */
    size_t *token_offset;     /* token i is token_bytes[token_offset[i] .. token_offset[i+1]) */
    int32_t byte_token[256];  /* id of the token for each single byte (-1: a byte never in UTF-8) */
    lm_merge_table merges;
    lm_added_token *added;
    int n_added;
    uint8_t added_first[2][256]; /* [normalized][b]: some added token of that pass starts with byte b */
    int nfc;                  /* normalizer NFC (else none) */
    int add_prefix_space;     /* ByteLevel pre-tokenizer: prepend ' ' to each piece not starting with one */
    pcre2_code *pattern;      /* the GPT-2 word pattern */
};

/* Looks up the merge of (left, right): 1 and *rank, *result when there is one. */
static inline int lm_merge_find(const lm_merge_table *m, int32_t left, int32_t right, int32_t *rank, int32_t *result) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & m->mask;; i = (i + 1) & m->mask) {
        if (m->keys[i] == LM_MERGE_EMPTY) return 0;
        if (m->keys[i] == key) {
            *rank = m->rank[i];
            *result = m->result[i];
            return 1;
        }
    }
}

/* GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68
 * bytes (controls, space, 0x7F-0xA0, 0xAD) for code points 256, 257, ... in byte order, so
 * that every byte is a visible character in vocab and merges. byte_of_char inverts it (-1:
 * a character that stands for no byte). */
#define LM_BYTE_CHARS 324
void lm_byte_level_tables(int byte_char[256], int byte_of_char[LM_BYTE_CHARS]);

#endif
