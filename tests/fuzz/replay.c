/* Replays inputs through a harness without libFuzzer, so the normal (gcc) build and ctest run
 * every fuzzing harness on the empty input, its seeds and its regression inputs
 * (tests/fuzz/regressions/HARNESS/, the inputs of findings, each fixed):
 *   test_fuzz_X [--valid DIR] [DIR...]
 * Every input of a --valid directory (the seeds) must be accepted by the loader. A harness aborts
 * on a broken promise; a missing directory is an error. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Runs every regular file of dir through the harness (in name order); -1 when dir cannot be read. */
static int replay_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        names = realloc(names, (n + 1) * sizeof *names);
        if (!names || !(names[n++] = strdup(e->d_name))) abort();
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f) abort();
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        rewind(f);
        /* An exact-size copy, so reading past the end shows under ASan as it does in libFuzzer. */
        uint8_t *buf = malloc(size ? (size_t)size : 1);
        if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) abort();
        fclose(f);
        printf("%s (%ld bytes)\n", path, size);
        fflush(stdout);
        LLVMFuzzerTestOneInput(buf, (size_t)size);
        free(buf);
        free(names[i]);
    }
    free(names);
    return (int)n;
}

int main(int argc, char **argv) {
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
    int total = 0;
    for (int i = 1; i < argc; i++) {
        int valid = !strcmp(argv[i], "--valid") && i + 1 < argc, before = fuzz_accepted;
        const char *dir = argv[i += valid];
        int n = replay_dir(dir);
        if (n < 0) {
            fprintf(stderr, "cannot read %s\n", dir);
            return 1;
        }
        if (valid && fuzz_accepted - before != n) {
            fprintf(stderr, "%d of the %d inputs of %s were rejected\n", n - (fuzz_accepted - before), n, dir);
            return 1;
        }
        total += n;
    }
    printf("%d inputs replayed, no finding\n", total);
    return 0;
}
