/* Reading the text inputs of generate and perplexity (prompts, corpora). */
#ifndef LM_CLI_TEXT_H
#define LM_CLI_TEXT_H
#include <stddef.h>
#include <stdint.h>
#include "lightmamba.h"

/* Text inputs are at most this long (checked before reading): the text and its token ids
 * are held in memory, so this bounds what one command can ask for. Inference itself runs
 * in fixed chunks, so its memory does not grow with the length. */
#define CLI_MAX_TEXT_BYTES ((size_t)256 << 20)

/* Reads PATH whole (NUL-terminated) after checking it is a regular file within the limit.
 * Prints a one-line error naming `what` and the file and returns 1 on failure. */
int cli_read_text(const char *path, const char *what, char **text, size_t *len);

/* Encodes text with the tokenizer; prints a one-line error and returns 1 on failure. */
int cli_tokenize(const lm_tokenizer *tok, const char *text, size_t len, const char *what, int32_t **ids, size_t *n_ids);

#endif
