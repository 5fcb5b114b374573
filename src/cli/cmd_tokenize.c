/* lightmamba tokenize -f TEXT [-o OUT.i32]: text -> token ids (int32 little-endian file, or
 * one line of space-separated ids on stdout); with --decode, an ids file -> text. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "common/clock.h"
#include "common/file.h"
#include "lightmamba.h"

/* Writes n bytes to PATH atomically (no partial file on failure), or to stdout when PATH is NULL. */
static int write_output(const char *path, const void *data, size_t n) {
    if (!path) {
        if (fwrite(data, 1, n, stdout) != n || fflush(stdout) != 0) return cli_error("tokenize: cannot write to stdout");
        return 0;
    }
    lm_atomic_file af;
    lm_status s = lm_atomic_open(&af, path);
    if (s == LM_OK) s = lm_atomic_write(&af, data, n);
    if (s == LM_OK) s = lm_atomic_commit(&af);
    if (s != LM_OK) {
        lm_atomic_abort(&af);
        return cli_error("%s", lm_last_error());
    }
    return 0;
}

/* The ids as int32 little-endian bytes (to a file), or as one line of decimal text (stdout). */
static int write_ids(const char *out, const int32_t *ids, size_t n) {
    size_t cap = out ? 4 * n : 12 * n + 1, k = 0;
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf) return cli_error("tokenize: out of memory for %zu ids", n);
    for (size_t i = 0; i < n; i++) {
        if (out) {
            uint32_t v = (uint32_t)ids[i];
            for (int b = 0; b < 4; b++) buf[k++] = (unsigned char)(v >> (8 * b));
        } else {
            k += (size_t)snprintf((char *)buf + k, cap - k, i ? " %d" : "%d", ids[i]);
        }
    }
    if (!out) buf[k++] = '\n';
    int rc = write_output(out, buf, k);
    free(buf);
    return rc;
}

static int encode_file(const lm_tokenizer *tok, const char *in, const char *out) {
    char *text;
    size_t len;
    if (lm_read_file(in, &text, &len) != LM_OK) return cli_error("%s", lm_last_error());
    int32_t *ids;
    size_t n;
    double t0 = lm_now_seconds();
    lm_status s = lm_tokenizer_encode(tok, text, len, &ids, &n);
    double seconds = lm_now_seconds() - t0;
    free(text);
    if (s != LM_OK) return cli_error("%s: %s", in, lm_last_error());
    int rc = write_ids(out, ids, n);
    free(ids);
    if (!rc)
        fprintf(stderr, "tokenize: %zu bytes -> %zu tokens in %.3f s (%.1f MB/s)\n", len, n, seconds,
                seconds > 0 ? (double)len / seconds / 1e6 : 0.0);
    return rc;
}

static int decode_file(const lm_tokenizer *tok, const char *in, const char *out) {
    char *data;
    size_t len;
    if (lm_read_file(in, &data, &len) != LM_OK) return cli_error("%s", lm_last_error());
    if (len % 4) {
        free(data);
        return cli_error("%s: %zu bytes is not a whole number of int32 token ids", in, len);
    }
    size_t n = len / 4;
    int32_t *ids = malloc(n ? n * sizeof *ids : 1);
    if (!ids) {
        free(data);
        return cli_error("tokenize: out of memory for %zu ids", n);
    }
    const unsigned char *p = (const unsigned char *)data;
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)((uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24);
    free(data);
    char *text;
    size_t text_len;
    lm_status s = lm_tokenizer_decode(tok, ids, n, &text, &text_len);
    free(ids);
    if (s != LM_OK) return cli_error("%s: %s", in, lm_last_error());
    int rc = write_output(out, text, text_len);
    free(text);
    return rc;
}

static int run_tokenize(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *tokenizer_path = NULL;
    int decode = 0;
    const cli_opt opts[] = {
        {"-f", "--file", CLI_STRING, &in, 0, 0},
        {"-o", "--output", CLI_STRING, &out, 0, 0},
        {NULL, "--tokenizer", CLI_STRING, &tokenizer_path, 0, 0},
        {NULL, "--decode", CLI_FLAG, &decode, 0, 0},
    };
    if (cli_parse("tokenize", argc, argv, opts, CLI_COUNT(opts))) return 1;
    if (!in) return cli_error("tokenize: -f FILE is required (see 'lightmamba help tokenize')");
    lm_tokenizer *tok;
    if (lm_tokenizer_init(&tok, tokenizer_path) != LM_OK) return cli_error("%s", lm_last_error());
    int rc = decode ? decode_file(tok, in, out) : encode_file(tok, in, out);
    lm_tokenizer_free(tok);
    return rc;
}

const lm_command cmd_tokenize = {
    "tokenize", run_tokenize, "text -> token ids (or ids -> text with --decode)",
    "usage: lightmamba tokenize -f TEXT [-o OUT.i32] [--tokenizer FILE]\n"
    "       lightmamba tokenize --decode -f IDS.i32 [-o OUT.txt] [--tokenizer FILE]\n"
    "  -f, --file FILE     input: UTF-8 text (or int32 little-endian ids with --decode)\n"
    "  -o, --output FILE   write the ids as int32 little-endian (or the decoded text) to FILE,\n"
    "                      atomically; default: stdout, ids as one line of space-separated numbers\n"
    "  --tokenizer FILE    a Hugging Face tokenizer.json (default: the bundled GPT-NeoX tokenizer)\n"
    "  --decode            ids -> text\n"
    "The whole file is encoded in one call, as the Hugging Face tokenizer does (no BOS/EOS added;\n"
    "\"<|endoftext|>\" in the text becomes its special token). An empty file gives zero ids.\n"
    "Invalid UTF-8 is an error naming the byte offset. A summary (tokens, MB/s) goes to stderr.\n"};
