/* torch.save zip archives (format/torchzip.h): minizip over the memory buffer, the pickle
 * through format/pickle.h, every storage's entry checked against what its tensors need. */
#include "format/torchzip.h"

#include <minizip/unzip.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/error.h"
#include "format/pickle.h"

/* minizip's file functions over a memory buffer: reads and seeks never leave [0, len). */
typedef struct {
    const unsigned char *data;
    size_t len, pos;
} membuf;

static voidpf ZCALLBACK mem_open(voidpf opaque, const void *filename, int mode) { return opaque; }

static uLong ZCALLBACK mem_read(voidpf opaque, voidpf stream, void *buf, uLong size) {
    membuf *m = stream;
    size_t n = m->pos < m->len ? m->len - m->pos : 0;
    if (size < n) n = size;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return n;
}

static uLong ZCALLBACK mem_write(voidpf opaque, voidpf stream, const void *buf, uLong size) { return 0; }
static ZPOS64_T ZCALLBACK mem_tell(voidpf opaque, voidpf stream) { return ((membuf *)stream)->pos; }
static int ZCALLBACK mem_close(voidpf opaque, voidpf stream) { return 0; }
static int ZCALLBACK mem_error(voidpf opaque, voidpf stream) { return 0; }

static long ZCALLBACK mem_seek(voidpf opaque, voidpf stream, ZPOS64_T offset, int origin) {
    membuf *m = stream;
    ZPOS64_T base = origin == ZLIB_FILEFUNC_SEEK_SET ? 0 : origin == ZLIB_FILEFUNC_SEEK_CUR ? m->pos : m->len;
    if (offset > m->len || base > m->len - offset) return -1;
    m->pos = (size_t)(base + offset);
    return 0;
}

/* Deflate expands at most 1032:1; a larger declared size is a lie that would cost memory. */
#define MAX_INFLATE_RATIO 1032

typedef struct {
    unzFile z;
    membuf mem;
    const char *what;
    lm_torch_checkpoint *ck;
} archive;

/* The current entry's bytes: in place when stored, else inflated into memory ck owns. */
static lm_status entry_bytes(archive *a, const char *name, const unsigned char **out, size_t *size) {
    unz_file_info64 fi;
    if (unzGetCurrentFileInfo64(a->z, &fi, NULL, 0, NULL, 0, NULL, 0) != UNZ_OK)
        return lm_fail(LM_ERR_FORMAT, "%s: zip entry %s: unreadable directory record", a->what, name);
    if (fi.flag & 1) return lm_fail(LM_ERR_UNSUPPORTED, "%s: zip entry %s is encrypted", a->what, name);
    if (fi.compression_method != 0 && fi.compression_method != Z_DEFLATED)
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: zip entry %s uses compression method %lu (stored or deflate only)",
                       a->what, name, fi.compression_method);
    if (fi.uncompressed_size > SIZE_MAX / 2 ||
        (fi.compression_method == 0 && fi.compressed_size != fi.uncompressed_size) ||
        (fi.compression_method == Z_DEFLATED && fi.uncompressed_size / MAX_INFLATE_RATIO > fi.compressed_size))
        return lm_fail(LM_ERR_FORMAT, "%s: zip entry %s: sizes %llu (stored) and %llu (data) do not fit its method",
                       a->what, name, (unsigned long long)fi.compressed_size,
                       (unsigned long long)fi.uncompressed_size);
    if (unzOpenCurrentFile(a->z) != UNZ_OK)
        return lm_fail(LM_ERR_FORMAT, "%s: zip entry %s: its local header is damaged or out of range", a->what, name);
    ZPOS64_T pos = unzGetCurrentFileZStreamPos64(a->z);
    lm_status s = LM_OK;
    if (pos > a->mem.len || fi.compressed_size > a->mem.len - pos) {
        s = lm_fail(LM_ERR_FORMAT, "%s: zip entry %s: data [%llu, %llu) out of range (file of %zu bytes)", a->what,
                    name, (unsigned long long)pos, (unsigned long long)(pos + fi.compressed_size), a->mem.len);
    } else if (fi.compression_method == 0) {
        *out = a->mem.data + pos;
        *size = (size_t)fi.uncompressed_size;
    } else {
        void **grown = realloc(a->ck->owned, ((size_t)a->ck->n_owned + 1) * sizeof *grown);
        unsigned char *buf = grown ? malloc(fi.uncompressed_size ? (size_t)fi.uncompressed_size : 1) : NULL;
        if (grown) a->ck->owned = grown;
        if (!buf) {
            s = lm_fail(LM_ERR_NOMEM, "%s: out of memory inflating zip entry %s", a->what, name);
        } else {
            a->ck->owned[a->ck->n_owned++] = buf;
            int n = 0;
            size_t got = 0;
            while (got < fi.uncompressed_size &&
                   (n = unzReadCurrentFile(a->z, buf + got, (unsigned)(fi.uncompressed_size - got < (1u << 30)
                                                                          ? fi.uncompressed_size - got
                                                                          : (1u << 30)))) > 0)
                got += (size_t)n;
            if (got != fi.uncompressed_size || n < 0)
                s = lm_fail(LM_ERR_FORMAT, "%s: zip entry %s: inflating gave %zu of %llu bytes", a->what, name, got,
                            (unsigned long long)fi.uncompressed_size);
            *out = buf;
            *size = got;
        }
    }
    int close = unzCloseCurrentFile(a->z);
    if (!s && close == UNZ_CRCERROR) s = lm_fail(LM_ERR_FORMAT, "%s: zip entry %s: CRC mismatch", a->what, name);
    return s;
}

/* The archive's folder: the X of the one entry named X/data.pkl. */
static lm_status find_pickle(archive *a, char *prefix, size_t size) {
    int found = 0;
    for (int r = unzGoToFirstFile(a->z); r == UNZ_OK; r = unzGoToNextFile(a->z)) {
        char name[256];
        unz_file_info64 fi;
        if (unzGetCurrentFileInfo64(a->z, &fi, name, sizeof name, NULL, 0, NULL, 0) != UNZ_OK)
            return lm_fail(LM_ERR_FORMAT, "%s: damaged zip directory", a->what);
        if (fi.size_filename >= sizeof name) continue; /* not a name torch writes */
        char *slash = strchr(name, '/');
        if (!slash || strcmp(slash, "/data.pkl") || (size_t)(slash - name) >= size) continue;
        if (found++)
            return lm_fail(LM_ERR_FORMAT, "%s: more than one */data.pkl in the archive (not a torch.save file)",
                           a->what);
        memcpy(prefix, name, (size_t)(slash - name));
        prefix[slash - name] = '\0';
    }
    if (!found) return lm_fail(LM_ERR_FORMAT, "%s: no ARCHIVE/data.pkl entry (not a torch.save zip file)", a->what);
    return LM_OK;
}

static lm_status locate(archive *a, const char *name) {
    if (unzLocateFile(a->z, name, 1) != UNZ_OK)
        return lm_fail(LM_ERR_FORMAT, "%s: zip entry %s is missing", a->what, name);
    return LM_OK;
}

/* Points each tensor at its storage's bytes; storages shared by several tensors are read once. */
static lm_status attach_storages(archive *a, const char *prefix, const lm_state_dict *sd) {
    lm_torch_checkpoint *ck = a->ck;
    const unsigned char **base = NULL; /* [n] each tensor's storage bytes */
    size_t *size = NULL;
    LM_TRY(lm_calloc(&ck->tensors, sd->n ? (size_t)sd->n : 1, sizeof *ck->tensors, "tensors"));
    ck->n_tensors = sd->n;
    lm_status s = lm_calloc(&base, sd->n ? (size_t)sd->n : 1, sizeof *base, "tensors");
    if (!s) s = lm_calloc(&size, sd->n ? (size_t)sd->n : 1, sizeof *size, "tensors");
    for (int i = 0; i < sd->n && !s; i++) {
        const lm_pickle_tensor *p = &sd->tensors[i];
        lm_st_tensor *t = &ck->tensors[i];
        if (!(t->name = strdup(p->name))) {
            s = lm_fail(LM_ERR_NOMEM, "%s: out of memory", a->what);
            break;
        }
        char entry[320];
        snprintf(entry, sizeof entry, "%s/data/%s", prefix, p->storage);
        int shared = -1;
        for (int j = 0; j < i && shared < 0; j++)
            if (!strcmp(sd->tensors[j].storage, p->storage)) shared = j;
        if (shared >= 0 && sd->tensors[shared].dtype != p->dtype) {
            s = lm_fail(LM_ERR_FORMAT, "%s: storage %s is read as two dtypes", a->what, entry);
            break;
        }
        if (shared >= 0) {
            base[i] = base[shared];
            size[i] = size[shared];
        } else if ((s = locate(a, entry)) != LM_OK || (s = entry_bytes(a, entry, &base[i], &size[i])) != LM_OK) {
            break;
        }
        size_t es = lm_dtype_size(p->dtype);
        if (p->storage_numel > size[i] / es) {
            s = lm_fail(LM_ERR_FORMAT, "%s: storage %s has %zu bytes, shorter than the %llu %s elements of tensor %s",
                        a->what, entry, size[i], (unsigned long long)p->storage_numel, lm_dtype_name(p->dtype),
                        p->name);
            break;
        }
        /* offset + numel <= storage_numel (format/pickle.c), which fits the entry: all in range. */
        t->dtype = p->dtype;
        t->ndim = p->ndim;
        memcpy(t->shape, p->shape, sizeof t->shape);
        t->numel = (size_t)p->numel;
        t->nbytes = t->numel * es;
        t->data = base[i] + p->offset * es;
    }
    free(base);
    free(size);
    return s;
}

lm_status lm_torch_read(lm_torch_checkpoint *ck, const unsigned char *data, size_t len, const char *what) {
    memset(ck, 0, sizeof *ck);
    archive a = {.mem = {data, len, 0}, .what = what, .ck = ck};
    zlib_filefunc64_def io = {mem_open, mem_read, mem_write, mem_tell, mem_seek, mem_close, mem_error, &a.mem};
    a.z = unzOpen2_64("", &io);
    if (!a.z) return lm_fail(LM_ERR_FORMAT, "%s: not a zip archive, or its central directory is damaged", what);
    char prefix[256], entry[300];
    lm_state_dict sd = {0};
    const unsigned char *pkl = NULL;
    size_t pkl_len = 0;
    lm_status s = find_pickle(&a, prefix, sizeof prefix);
    if (!s) {
        snprintf(entry, sizeof entry, "%s/data.pkl", prefix);
        s = locate(&a, entry);
    }
    if (!s) s = entry_bytes(&a, entry, &pkl, &pkl_len);
    if (!s) s = lm_pickle_read_state_dict(&sd, pkl, pkl_len, what);
    if (!s) s = attach_storages(&a, prefix, &sd);
    lm_state_dict_free(&sd);
    unzClose(a.z);
    if (s) lm_torch_free(ck);
    return s;
}

void lm_torch_free(lm_torch_checkpoint *ck) {
    for (int i = 0; i < ck->n_tensors; i++) free(ck->tensors[i].name);
    free(ck->tensors);
    for (int i = 0; i < ck->n_owned; i++) free(ck->owned[i]);
    free(ck->owned);
    memset(ck, 0, sizeof *ck);
}
