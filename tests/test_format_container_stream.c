/* The container's streamed last array (lm_ct_write_begin / lm_ct_stream_put / lm_ct_stream_commit):
 * a file written in pieces reads back (checksum included) with the bytes given; too few or too many
 * bytes are refused and leave no file; lm_ct_write refuses an array without data. */
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/file.h"
#include "format/container.h"

static const char magic[8] = "LMTEST\0";

/* A writer of one 3-float array and a streamed [4, 5] float array. */
static void writer(lm_ct_writer *w, lm_ct_array *a, const float *first) {
    CHECK_OK(lm_ct_array_set(&a[0], "first", LM_CT_F32, 1, (const uint64_t[]){3}, first));
    CHECK_OK(lm_ct_array_set(&a[1], "streamed", LM_CT_F32, 2, (const uint64_t[]){4, 5}, NULL));
    *w = (lm_ct_writer){.arrays = a, .n = 2};
    lm_ct_layout(w);
    lm_put_u64(w->header + LM_CT_FIELDS, 12345); /* a format field */
}

int main(void) {
    char path[] = "/tmp/lm_test_ctXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "temporary file");
    close(fd);
    const float first[3] = {1, 2, 3};
    float rows[20];
    for (int i = 0; i < 20; i++) rows[i] = (float)i * 0.5f;
    lm_ct_array a[2];
    lm_ct_writer w;
    lm_ct_stream st;

    writer(&w, a, first);
    CHECK_OK(lm_ct_write_begin(&w, magic, 1, path, &st));
    CHECK_OK(lm_ct_stream_put(&st, rows, 8 * sizeof(float))); /* in two pieces */
    CHECK_OK(lm_ct_stream_put(&st, rows + 8, 12 * sizeof(float)));
    CHECK_OK(lm_ct_stream_commit(&st));
    lm_mapping map;
    CHECK_OK(lm_map_file(path, &map));
    lm_ct_reader r;
    lm_ct_array got;
    CHECK_OK(lm_ct_open(&r, map.data, map.size, magic, 1, 1, "test file", path));
    CHECK(r.n == 2 && lm_get_u64(map.data + LM_CT_FIELDS) == 12345, "header");
    CHECK_OK(lm_ct_entry(&r, 0, &got));
    CHECK(!memcmp(got.data, first, sizeof first), "first array");
    CHECK_OK(lm_ct_entry(&r, 1, &got));
    CHECK(!strcmp(got.name, "streamed") && got.nbytes == sizeof rows && !memcmp(got.data, rows, sizeof rows),
          "streamed array");
    lm_unmap_file(&map);
    unlink(path);

    writer(&w, a, first);
    CHECK_OK(lm_ct_write_begin(&w, magic, 1, path, &st));
    CHECK_OK(lm_ct_stream_put(&st, rows, 19 * sizeof(float)));
    CHECK(lm_ct_stream_commit(&st) == LM_ERR_ARG && !lm_file_exists(path), "a short stream was committed");
    writer(&w, a, first);
    CHECK_OK(lm_ct_write_begin(&w, magic, 1, path, &st));
    CHECK(lm_ct_stream_put(&st, rows, 21 * sizeof(float)) == LM_ERR_ARG, "an over-long stream accepted");
    lm_ct_stream_abort(&st);
    CHECK(!lm_file_exists(path), "an aborted stream left a file");
    writer(&w, a, first);
    CHECK(lm_ct_write(&w, magic, 1, path) == LM_ERR_ARG && !lm_file_exists(path), "lm_ct_write without data");
    return test_finish();
}
