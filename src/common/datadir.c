/* Locating the bundled data (common/datadir.h). */
#include "common/datadir.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"

/* An install's data folder seen from its bin/ and lib/ folders (CMakeLists.txt computes them from
 * the install layout; these are the usual ones). */
#ifndef LM_DATA_FROM_BINDIR
#define LM_DATA_FROM_BINDIR "../share/lightmamba"
#endif
#ifndef LM_DATA_FROM_LIBDIR
#define LM_DATA_FROM_LIBDIR "../share/lightmamba"
#endif

/* Set by lm_set_data_dir (NULL: search). Written only by that call (documented as not thread-safe). */
static char *data_dir_override;

lm_status lm_set_data_dir(const char *dir) {
    char *copy = NULL;
    if (dir && !(copy = strdup(dir))) return lm_fail(LM_ERR_NOMEM, "out of memory");
    free(data_dir_override);
    data_dir_override = copy;
    return LM_OK;
}

/* *path = dir/sub/name when that file exists; 1 if found. */
static int try_dir(const char *dir, const char *sub, const char *name, char **path) {
    char *base = lm_path_join(dir, sub), *p = base ? lm_path_join(base, name) : NULL;
    free(base);
    if (p && lm_file_exists(p)) {
        *path = p;
        return 1;
    }
    free(p);
    return 0;
}

lm_status lm_data_path(const char *name, char **path) {
    *path = NULL;
    if (data_dir_override) {
        if (try_dir(data_dir_override, ".", name, path)) return LM_OK;
        return lm_fail(LM_ERR_IO, "bundled data file %s not found in %s (set by lm_set_data_dir)", name,
                       data_dir_override);
    }
    /* The folder of the executable or shared library holding this function. */
    Dl_info info;
    if (dladdr((void *)lm_data_path, &info) && info.dli_fname) {
        char *bin = strdup(info.dli_fname), *slash = bin ? strrchr(bin, '/') : NULL;
        if (bin && slash) {
            *slash = '\0';
            const char *dir = *bin ? bin : "/";
            int found = try_dir(dir, "share/lightmamba", name, path) || try_dir(dir, LM_DATA_FROM_BINDIR, name, path) ||
                        try_dir(dir, LM_DATA_FROM_LIBDIR, name, path);
            free(bin);
            if (found) return LM_OK;
        } else {
            free(bin);
        }
    }
#ifdef LM_INSTALL_DATADIR
    if (try_dir(LM_INSTALL_DATADIR, ".", name, path)) return LM_OK;
#endif
    return lm_fail(LM_ERR_IO, "bundled data file %s not found (beside the binary in share/lightmamba, or in the "
                   "install folder); lm_set_data_dir names another folder", name);
}
