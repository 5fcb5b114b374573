#include "cli/cli_text.h"
#include "cli/cli.h"
#include "common/file.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

int cli_read_text(const char *path, const char *what, char **text, size_t *len) {
    struct stat st;
    if (stat(path, &st) != 0) return cli_error("cannot open %s %s: %s", what, path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return cli_error("%s %s is not a regular file", what, path);
    if ((uintmax_t)st.st_size > CLI_MAX_TEXT_BYTES)
        return cli_error("%s %s is too long: %jd bytes, the limit is %zu MiB", what, path, (intmax_t)st.st_size,
                         CLI_MAX_TEXT_BYTES >> 20);
    if (lm_read_file(path, text, len) != LM_OK) return cli_error("%s: %s", what, lm_last_error());
    return 0;
}

int cli_tokenize(const lm_tokenizer *tok, const char *text, size_t len, const char *what, int32_t **ids, size_t *n_ids) {
    if (len > CLI_MAX_TEXT_BYTES)
        return cli_error("%s is too long: %zu bytes, the limit is %zu MiB", what, len, CLI_MAX_TEXT_BYTES >> 20);
    if (lm_tokenizer_encode(tok, text, len, ids, n_ids) != LM_OK)
        return cli_error("cannot tokenize %s: %s", what, lm_last_error());
    return 0;
}
