#include "common/file.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

lm_status lm_read_file_max(const char *path, size_t max_bytes, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lm_fail(LM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return lm_fail(LM_ERR_IO, "%s is not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return lm_fail(LM_ERR_FORMAT, "%s is %lld bytes, over the %zu MB this kind of file may have", path,
                       (long long)st.st_size, max_bytes >> 20);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        fclose(f);
        return lm_fail(LM_ERR_NOMEM, "cannot allocate %zu bytes to read %s", size + 1, path);
    }
    size_t got = fread(buf, 1, size, f);
    int err = ferror(f);
    fclose(f);
    if (got != size || err) {
        free(buf);
        return lm_fail(LM_ERR_IO, "short read on %s (%zu of %zu bytes)", path, got, size);
    }
    buf[size] = '\0';
    *data = buf;
    *len = size;
    return LM_OK;
}

lm_status lm_read_file(const char *path, char **data, size_t *len) { return lm_read_file_max(path, SIZE_MAX - 1, data, len); }

lm_status lm_map_file(const char *path, lm_mapping *map) {
    map->data = NULL;
    map->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lm_fail(LM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lm_fail(LM_ERR_IO, "%s is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return LM_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return lm_fail(LM_ERR_IO, "cannot map %s: %s", path, strerror(errno));
    map->data = p;
    map->size = (size_t)st.st_size;
    return LM_OK;
}

void lm_unmap_file(lm_mapping *map) {
    if (map->data) munmap((void *)map->data, map->size);
    map->data = NULL;
    map->size = 0;
}

lm_status lm_atomic_open(lm_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path);
    af->final_path = strdup(path);
    af->tmp_path = malloc(n + 16);
    if (!af->final_path || !af->tmp_path) {
        lm_atomic_abort(af);
        return lm_fail(LM_ERR_NOMEM, "out of memory opening %s", path);
    }
    snprintf(af->tmp_path, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->tmp_path);
    if (fd < 0) {
        lm_status s = lm_fail(LM_ERR_IO, "cannot create %s: %s", af->tmp_path, strerror(errno));
        free(af->tmp_path);
        af->tmp_path = NULL;
        lm_atomic_abort(af);
        return s;
    }
    fchmod(fd, 0644);
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        close(fd);
        lm_atomic_abort(af);
        return lm_fail(LM_ERR_IO, "cannot open %s for writing", path);
    }
    return LM_OK;
}

lm_status lm_atomic_write(lm_atomic_file *af, const void *buf, size_t n) {
    if (n && fwrite(buf, 1, n, af->f) != n)
        return lm_fail(LM_ERR_IO, "write to %s failed: %s", af->final_path, strerror(errno));
    return LM_OK;
}

lm_status lm_atomic_commit(lm_atomic_file *af) {
    int bad = fflush(af->f) != 0 || fsync(fileno(af->f)) != 0;
    bad |= fclose(af->f) != 0;
    af->f = NULL;
    if (bad || rename(af->tmp_path, af->final_path) != 0) {
        lm_status s = lm_fail(LM_ERR_IO, "cannot write %s: %s", af->final_path, strerror(errno));
        lm_atomic_abort(af);
        return s;
    }
    free(af->tmp_path);
    free(af->final_path);
    af->tmp_path = af->final_path = NULL;
    return LM_OK;
}

void lm_atomic_abort(lm_atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->tmp_path);
    free(af->final_path);
    memset(af, 0, sizeof *af);
}

char *lm_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

int lm_is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int lm_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

lm_status lm_calloc(void *out_ptr, size_t n, size_t size, const char *what) {
    void **out = out_ptr;
    *out = NULL;
    if (size && n > SIZE_MAX / size)
        return lm_fail(LM_ERR_NOMEM, "%s: %zu x %zu bytes overflows", what, n, size);
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) return lm_fail(LM_ERR_NOMEM, "cannot allocate %zu bytes for %s", n * size, what);
    *out = p;
    return LM_OK;
}

int lm_file_starts_with(const char *path, const void *magic, size_t n) {
    if (!lm_file_exists(path)) return 0;
    FILE *f = fopen(path, "rb");
    unsigned char head[16];
    int yes = f && n <= sizeof head && fread(head, 1, n, f) == n && memcmp(head, magic, n) == 0;
    if (f) fclose(f);
    return yes;
}

char *lm_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}
