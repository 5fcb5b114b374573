/* Zero-shot tasks (struct lm_task; API in lightmamba.h, the fields read per task in
 * docs/evaluation.md): task_file.c reads a task file into requests, task_eval.c scores them.
 *
 * A request is one (context, continuation) pair scored by the log-likelihood of the continuation;
 * an item is the requests of its choices (one for LAMBADA) and the index of the right one. */
#ifndef LM_MODEL_TASKS_H
#define LM_MODEL_TASKS_H
#include <stddef.h>
#include <stdint.h>
#include "lightmamba.h"

typedef struct {
    size_t ctx, n_ctx;     /* token ids ids[ctx .. ctx + n_ctx) */
    size_t cont, n_cont;   /* and ids[cont .. cont + n_cont) */
    double chars;          /* characters of the choice (the divisor of acc_norm) */
} lm_task_request;

typedef struct {
    size_t first;          /* requests [first, first + n) */
    int n, gold;           /* gold in [0, n) */
} lm_task_item;

struct lm_task {
    lm_task_kind kind;
    int32_t *ids;
    size_t n_ids, cap_ids;
    lm_task_request *req;
    size_t n_req, cap_req;
    lm_task_item *items;
    size_t n_items, cap_items;
};

/* The text rules of lm-evaluation-harness, for the tests (each returns a malloc'd string, NULL
 * when out of memory). */
/* HellaSwag's preprocess: strip, " [title]" -> ". ", drop every "[...]", "  " -> " ". */
char *lm_hellaswag_preprocess(const char *text);
/* Python's str.capitalize: the first character in title case, the rest in lower case. */
char *lm_capitalize(const char *text);

#endif
