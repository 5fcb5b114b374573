/* Checked file helpers: whole-file reads, read-only memory maps, and atomic writes
 * (data goes to "PATH.tmp.XXXXXX" and is renamed over PATH only when complete, so a
 * failed or interrupted write never leaves a partial output file). */
#ifndef LM_COMMON_FILE_H
#define LM_COMMON_FILE_H
#include <stddef.h>
#include <stdio.h>
#include "lightmamba.h"

/* Reads all of PATH into a NUL-terminated heap buffer (*len excludes the NUL). */
lm_status lm_read_file(const char *path, char **data, size_t *len);
/* The same for a file that may have at most max_bytes: a bigger one fails (LM_ERR_FORMAT) before
 * anything is allocated or read. */
lm_status lm_read_file_max(const char *path, size_t max_bytes, char **data, size_t *len);

/* The most a JSON file the loaders read may have (config.json, tokenizer.json, a sharded index,
 * a platform file; the largest real ones are tokenizers of tens of MB). */
#define LM_JSON_MAX_BYTES ((size_t)256 << 20)

typedef struct {
    const unsigned char *data; /* NULL for an empty file */
    size_t size;
} lm_mapping;

/* Maps PATH read-only. An empty file maps to {NULL, 0}. */
lm_status lm_map_file(const char *path, lm_mapping *map);
void lm_unmap_file(lm_mapping *map);

/* Atomic output file. */
typedef struct {
    FILE *f;
    char *final_path;
    char *tmp_path;
} lm_atomic_file;

lm_status lm_atomic_open(lm_atomic_file *af, const char *path);
/* Writes n bytes; fails with LM_ERR_IO naming the file on a short write. */
lm_status lm_atomic_write(lm_atomic_file *af, const void *buf, size_t n);
/* Flushes, syncs and renames into place. On failure the temporary file is removed. */
lm_status lm_atomic_commit(lm_atomic_file *af);
/* Discards the temporary file (safe after a failed commit and on a zeroed struct). */
void lm_atomic_abort(lm_atomic_file *af);

/* Joins a directory and a file name into a heap string. */
char *lm_path_join(const char *dir, const char *name);
int lm_is_directory(const char *path);
int lm_file_exists(const char *path);
/* The directory part of a file path as a heap string ("." for a bare name). */
char *lm_parent_dir(const char *path);
/* 1 when PATH is a regular file whose first n bytes are `magic` (file type detection). */
int lm_file_starts_with(const char *path, const void *magic, size_t n);

/* calloc(n, size) that reports a clear error (and overflow) instead of returning NULL silently. */
lm_status lm_calloc(void *out_ptr, size_t n, size_t size, const char *what);

#endif
