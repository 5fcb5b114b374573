/* Reading zero-shot task files (model/tasks.h): one JSON object per line in the layout of the
 * dataset's public release, turned into (context, continuation) requests the way
 * lm-evaluation-harness builds them (docs/evaluation.md lists the fields read and the prompts):
 * the continuation starts with the space that separates it from the context, whitespace at the
 * end of a context moves to the continuation, and the continuation's tokens are those of
 * encode(context + continuation) after the first len(encode(context)). */
#include "model/tasks.h"
#include "common/error.h"
#include "common/file.h"
#include "format/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static const char *const task_names[LM_TASK_COUNT] = {"lambada", "hellaswag", "piqa", "arc", "winogrande"};

const char *lm_task_name(lm_task_kind kind) { return kind >= 0 && kind < LM_TASK_COUNT ? task_names[kind] : "?"; }

size_t lm_task_items(const lm_task *task) { return task->n_items; }

void lm_task_free(lm_task *task) {
    if (!task) return;
    free(task->ids);
    free(task->req);
    free(task->items);
    free(task);
}

/* ---- text ---- */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* The concatenation of n strings (malloc'd). */
static char *concat(int n, ...) {
    va_list ap;
    size_t len = 0;
    va_start(ap, n);
    for (int i = 0; i < n; i++) len += strlen(va_arg(ap, const char *));
    va_end(ap);
    char *s = malloc(len + 1);
    if (!s) return NULL;
    s[0] = '\0';
    char *end = s;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *p = va_arg(ap, const char *);
        size_t k = strlen(p);
        memcpy(end, p, k + 1);
        end += k;
    }
    va_end(ap);
    return s;
}

/* Every non-overlapping `from` replaced by `to` (no longer than from), left to right, in place. */
static void replace_all(char *s, const char *from, const char *to) {
    const size_t nf = strlen(from), nt = strlen(to);
    char *w = s;
    for (const char *r = s; *r;) {
        if (!strncmp(r, from, nf)) {
            memmove(w, to, nt);
            w += nt, r += nf;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

char *lm_hellaswag_preprocess(const char *text) {
    while (is_space(*text)) text++;
    size_t n = strlen(text);
    while (n > 0 && is_space(text[n - 1])) n--;
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, text, n);
    s[n] = '\0';
    replace_all(s, " [title]", ". ");
    /* re.sub("\[.*?\]", "", s): from each '[', up to the first ']' on the same line */
    char *w = s;
    for (const char *r = s; *r;) {
        const char *close = *r == '[' ? strpbrk(r + 1, "]\n") : NULL;
        if (close && *close == ']')
            r = close + 1;
        else
            *w++ = *r++;
    }
    *w = '\0';
    replace_all(s, "  ", " ");
    return s;
}

char *lm_capitalize(const char *text) {
    const size_t n = strlen(text);
    char *s = malloc(4 * n + 1); /* a code point's case mapping fits in 4 bytes */
    if (!s) return NULL;
    size_t w = 0;
    for (size_t r = 0; r < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t len = utf8proc_iterate((const utf8proc_uint8_t *)text + r, (utf8proc_ssize_t)(n - r), &c);
        if (len <= 0) { /* not UTF-8: the byte as it is (the tokenizer reports it) */
            s[w++] = text[r++];
            continue;
        }
        c = r == 0 ? utf8proc_totitle(c) : utf8proc_tolower(c);
        w += (size_t)utf8proc_encode_char(c, (utf8proc_uint8_t *)s + w);
        r += (size_t)len;
    }
    s[w] = '\0';
    return s;
}

/* Characters (code points) of UTF-8 text. */
static double utf8_chars(const char *s) {
    double n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* ---- building the task ---- */

/* Where a line's values are read from, for error messages "PATH:LINE: ...". */
typedef struct {
    const char *path;
    size_t line;
    const lm_tokenizer *tok;
    lm_task *task;
} reader;

static lm_status line_error(const reader *rd, const char *what) {
    return lm_fail(LM_ERR_FORMAT, "%s:%zu: %s", rd->path, rd->line, what);
}

static lm_status grow(void *array, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return LM_OK;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need) cap2 *= 2;
    void *p = realloc(*(void **)array, cap2 * elem);
    if (!p) return lm_fail(LM_ERR_NOMEM, "task file: out of memory");
    *(void **)array = p;
    *cap = cap2;
    return LM_OK;
}

static lm_status encode(const reader *rd, const char *text, int32_t **ids, size_t *n) {
    lm_status st = lm_tokenizer_encode(rd->tok, text, strlen(text), ids, n);
    if (st != LM_OK) return lm_fail(st, "%s:%zu: %s", rd->path, rd->line, lm_last_error());
    return LM_OK;
}

/* Appends the request (context, continuation) of a choice with `chars` characters. */
static lm_status add_request(const reader *rd, const char *context, const char *continuation, double chars) {
    lm_task *t = rd->task;
    size_t nc = strlen(context), spaces = 0;
    while (spaces < nc && is_space(context[nc - 1 - spaces])) spaces++;
    char *ctx = concat(1, context), *whole = concat(2, context, continuation);
    int32_t *ctx_ids = NULL, *whole_ids = NULL;
    size_t n_ctx = 0, n_whole = 0;
    lm_status st = ctx && whole ? LM_OK : lm_fail(LM_ERR_NOMEM, "task file: out of memory");
    if (st == LM_OK) ctx[nc - spaces] = '\0'; /* its trailing whitespace belongs to the continuation */
    if (st == LM_OK && ctx[0] == '\0') st = line_error(rd, "the context is empty");
    if (st == LM_OK) st = encode(rd, ctx, &ctx_ids, &n_ctx);
    if (st == LM_OK) st = encode(rd, whole, &whole_ids, &n_whole);
    if (st == LM_OK && n_whole <= n_ctx) st = line_error(rd, "a continuation adds no tokens to its context");
    if (st == LM_OK) st = grow(&t->ids, &t->cap_ids, t->n_ids + n_whole, sizeof *t->ids);
    if (st == LM_OK) st = grow(&t->req, &t->cap_req, t->n_req + 1, sizeof *t->req);
    if (st == LM_OK) {
        lm_task_request *r = &t->req[t->n_req++];
        *r = (lm_task_request){t->n_ids, n_ctx, t->n_ids + n_ctx, n_whole - n_ctx, chars};
        memcpy(t->ids + t->n_ids, ctx_ids, n_ctx * sizeof *ctx_ids);
        memcpy(t->ids + t->n_ids + n_ctx, whole_ids + n_ctx, (n_whole - n_ctx) * sizeof *whole_ids);
        t->n_ids += n_whole;
    }
    free(ctx_ids);
    free(whole_ids);
    free(ctx);
    free(whole);
    return st;
}

static lm_status add_item(const reader *rd, size_t first, int gold) {
    lm_task *t = rd->task;
    LM_TRY(grow(&t->items, &t->cap_items, t->n_items + 1, sizeof *t->items));
    t->items[t->n_items++] = (lm_task_item){first, (int)(t->n_req - first), gold};
    return LM_OK;
}

/* ---- fields ---- */

static lm_status field(const reader *rd, json_object *o, const char *key, json_type type, json_object **out) {
    if (!json_object_object_get_ex(o, key, out) || !json_object_is_type(*out, type)) {
        char msg[160];
        snprintf(msg, sizeof msg, "field \"%s\" missing or not %s", key,
                 type == json_type_string ? "a string" : type == json_type_array ? "an array" : "an object");
        return line_error(rd, msg);
    }
    return LM_OK;
}

/* A string value without NUL characters (they would cut the C string short). */
static lm_status string_of(const reader *rd, json_object *v, const char *key, const char **out) {
    if (!json_object_is_type(v, json_type_string) || strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
        char msg[160];
        snprintf(msg, sizeof msg, "\"%s\" must be a string without NUL characters", key);
        return line_error(rd, msg);
    }
    *out = json_object_get_string(v);
    return LM_OK;
}

static lm_status string_field(const reader *rd, json_object *o, const char *key, const char **out) {
    json_object *v;
    LM_TRY(field(rd, o, key, json_type_string, &v));
    return string_of(rd, v, key, out);
}

/* The answer `key`: an integer or a string of one (the Hugging Face releases store some as
 * strings), minus `base`, in [0, n). */
static lm_status answer_field(const reader *rd, json_object *o, const char *key, int base, int n, int *out) {
    json_object *v;
    long long a = -1;
    char *end = NULL;
    if (json_object_object_get_ex(o, key, &v)) {
        if (json_object_is_type(v, json_type_int))
            a = json_object_get_int64(v);
        else if (json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0)
            a = strtoll(json_object_get_string(v), &end, 10), a = *end ? -1 : a;
    }
    if (a - base < 0 || a - base >= n) {
        char msg[160];
        snprintf(msg, sizeof msg, "field \"%s\" missing or not a choice number in [%d, %d]", key, base, n - 1 + base);
        return line_error(rd, msg);
    }
    *out = (int)(a - base);
    return LM_OK;
}

/* Multiple choice: one request per choice, context + " " + choice, acc_norm over the choice's length. */
static lm_status add_choices(const reader *rd, const char *context, const char *const *choices, int n, int gold) {
    const size_t first = rd->task->n_req;
    for (int i = 0; i < n; i++) {
        if (!choices[i][0]) return line_error(rd, "a choice is empty");
        char *cont = concat(2, " ", choices[i]);
        if (!cont) return lm_fail(LM_ERR_NOMEM, "task file: out of memory");
        lm_status st = add_request(rd, context, cont, utf8_chars(choices[i]));
        free(cont);
        LM_TRY(st);
    }
    return add_item(rd, first, gold);
}

#define MAX_CHOICES 16

/* ---- one line per task ---- */

/* {"text": "... last"}: context "...", continuation " last" (the last space-separated word). */
static lm_status read_lambada(const reader *rd, json_object *o) {
    const char *text;
    LM_TRY(string_field(rd, o, "text", &text));
    const char *space = strrchr(text, ' ');
    if (!space || space == text) return line_error(rd, "\"text\" needs a context and a last word separated by a space");
    char *ctx = strndup(text, (size_t)(space - text));
    if (!ctx) return lm_fail(LM_ERR_NOMEM, "task file: out of memory");
    const size_t first = rd->task->n_req;
    lm_status st = add_request(rd, ctx, space, utf8_chars(space));
    free(ctx);
    LM_TRY(st);
    return add_item(rd, first, 0);
}

/* {"activity_label", "ctx_a", "ctx_b", "endings": [...], "label"}: the context
 * preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b)), each choice preprocess(ending). */
static lm_status read_hellaswag(const reader *rd, json_object *o) {
    const char *label, *a, *b, *raw[MAX_CHOICES];
    json_object *endings;
    LM_TRY(string_field(rd, o, "activity_label", &label));
    LM_TRY(string_field(rd, o, "ctx_a", &a));
    LM_TRY(string_field(rd, o, "ctx_b", &b));
    LM_TRY(field(rd, o, "endings", json_type_array, &endings));
    const int n = (int)json_object_array_length(endings);
    if (n < 2 || n > MAX_CHOICES) return line_error(rd, "\"endings\" must hold 2 to 16 strings");
    for (int i = 0; i < n; i++) LM_TRY(string_of(rd, json_object_array_get_idx(endings, i), "endings", &raw[i]));
    int gold;
    LM_TRY(answer_field(rd, o, "label", 0, n, &gold));
    char *cap = lm_capitalize(b), *joined = cap ? concat(5, label, ": ", a, " ", cap) : NULL;
    char *ctx = joined ? lm_hellaswag_preprocess(joined) : NULL, *choices[MAX_CHOICES] = {0};
    lm_status st = ctx ? LM_OK : lm_fail(LM_ERR_NOMEM, "task file: out of memory");
    for (int i = 0; i < n && st == LM_OK; i++)
        if (!(choices[i] = lm_hellaswag_preprocess(raw[i]))) st = lm_fail(LM_ERR_NOMEM, "task file: out of memory");
    if (st == LM_OK) st = add_choices(rd, ctx, (const char *const *)choices, n, gold);
    for (int i = 0; i < n; i++) free(choices[i]);
    free(ctx);
    free(joined);
    free(cap);
    return st;
}

/* The prompt of PIQA and ARC. */
static lm_status add_question(const reader *rd, const char *question, const char *const *choices, int n, int gold) {
    char *ctx = concat(3, "Question: ", question, "\nAnswer:");
    if (!ctx) return lm_fail(LM_ERR_NOMEM, "task file: out of memory");
    lm_status st = add_choices(rd, ctx, choices, n, gold);
    free(ctx);
    return st;
}

/* {"goal", "sol1", "sol2", "label"} */
static lm_status read_piqa(const reader *rd, json_object *o) {
    const char *goal, *sol[2];
    int gold;
    LM_TRY(string_field(rd, o, "goal", &goal));
    LM_TRY(string_field(rd, o, "sol1", &sol[0]));
    LM_TRY(string_field(rd, o, "sol2", &sol[1]));
    LM_TRY(answer_field(rd, o, "label", 0, 2, &gold));
    return add_question(rd, goal, sol, 2, gold);
}

/* {"question", "choices": {"text": [...], "label": [...]}, "answerKey"}: gold is the position of
 * answerKey among choices.label. */
static lm_status read_arc(const reader *rd, json_object *o) {
    const char *question, *key, *text[MAX_CHOICES], *label;
    json_object *choices, *texts, *labels;
    LM_TRY(string_field(rd, o, "question", &question));
    LM_TRY(field(rd, o, "choices", json_type_object, &choices));
    LM_TRY(field(rd, choices, "text", json_type_array, &texts));
    LM_TRY(field(rd, choices, "label", json_type_array, &labels));
    LM_TRY(string_field(rd, o, "answerKey", &key));
    const int n = (int)json_object_array_length(texts);
    if (n < 2 || n > MAX_CHOICES || (int)json_object_array_length(labels) != n)
        return line_error(rd, "\"choices\" must hold 2 to 16 texts and as many labels");
    int gold = -1;
    for (int i = 0; i < n; i++) {
        LM_TRY(string_of(rd, json_object_array_get_idx(texts, i), "choices.text", &text[i]));
        LM_TRY(string_of(rd, json_object_array_get_idx(labels, i), "choices.label", &label));
        if (gold < 0 && !strcmp(label, key)) gold = i;
    }
    if (gold < 0) return line_error(rd, "\"answerKey\" is not one of \"choices\".\"label\"");
    return add_question(rd, question, text, n, gold);
}

/* {"sentence" with one "_", "option1", "option2", "answer": "1"|"2"}: the contexts differ (the
 * sentence up to "_" with each option in its place), the continuation is the same (the rest of the
 * sentence, stripped); lm-evaluation-harness's partial scoring. */
static lm_status read_winogrande(const reader *rd, json_object *o) {
    const char *sentence, *option[2];
    int gold;
    LM_TRY(string_field(rd, o, "sentence", &sentence));
    LM_TRY(string_field(rd, o, "option1", &option[0]));
    LM_TRY(string_field(rd, o, "option2", &option[1]));
    LM_TRY(answer_field(rd, o, "answer", 1, 2, &gold));
    const char *blank = strchr(sentence, '_');
    if (!blank) return line_error(rd, "\"sentence\" has no \"_\" to fill");
    const char *rest = blank + 1;
    while (is_space(*rest)) rest++;
    size_t n_rest = strlen(rest);
    while (n_rest > 0 && is_space(rest[n_rest - 1])) n_rest--;
    char *stripped = strndup(rest, n_rest), *cont = stripped ? concat(2, " ", stripped) : NULL;
    lm_status st = cont ? LM_OK : lm_fail(LM_ERR_NOMEM, "task file: out of memory");
    const size_t first = rd->task->n_req;
    for (int i = 0; i < 2 && st == LM_OK; i++) {
        char *head = strndup(sentence, (size_t)(blank - sentence)), *ctx = head ? concat(2, head, option[i]) : NULL;
        st = ctx ? add_request(rd, ctx, cont, utf8_chars(stripped)) : lm_fail(LM_ERR_NOMEM, "task file: out of memory");
        free(ctx);
        free(head);
    }
    if (st == LM_OK) st = add_item(rd, first, gold);
    free(cont);
    free(stripped);
    return st;
}

static lm_status (*const readers[LM_TASK_COUNT])(const reader *, json_object *) = {
    read_lambada, read_hellaswag, read_piqa, read_arc, read_winogrande};

lm_status lm_task_load(lm_task **out, lm_task_kind kind, const char *path, const lm_tokenizer *tok) {
    *out = NULL;
    if (kind < 0 || kind >= LM_TASK_COUNT) return lm_fail(LM_ERR_ARG, "unknown task %d", (int)kind);
    char *text;
    size_t len;
    LM_TRY(lm_read_file(path, &text, &len));
    lm_task *t;
    lm_status st = lm_calloc(&t, 1, sizeof *t, "task");
    if (st == LM_OK) t->kind = kind;
    reader rd = {path, 0, tok, t};
    for (char *line = text; st == LM_OK && line < text + len;) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        size_t n = end ? (size_t)(end - line) : (size_t)(text + len - line);
        rd.line++;
        const char *p = line;
        while (p < line + n && is_space(*p)) p++;
        if (p < line + n) { /* not blank */
            char where[4096];
            snprintf(where, sizeof where, "%s:%zu", path, rd.line);
            json_object *o = NULL;
            st = lm_json_parse(&o, line, n, where);
            if (st == LM_OK && !json_object_is_type(o, json_type_object))
                st = line_error(&rd, "not a JSON object");
            else if (st == LM_OK)
                st = readers[kind](&rd, o);
            json_object_put(o);
        }
        line += n + 1;
    }
    if (st == LM_OK && t->n_items == 0) st = lm_fail(LM_ERR_FORMAT, "%s: no %s items in the file", path, task_names[kind]);
    free(text);
    if (st != LM_OK) {
        lm_task_free(t);
        return st;
    }
    *out = t;
    return LM_OK;
}
