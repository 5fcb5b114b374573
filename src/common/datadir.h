/* Where the bundled data lives (the GPT-NeoX tokenizer.json, the calibration text, the
 * accelerator platform files): found at run time, never compiled in as a source-tree path,
 * so an installed library reads its installed copy and a moved install still works. */
#ifndef LM_COMMON_DATADIR_H
#define LM_COMMON_DATADIR_H
#include "lightmamba.h"

/* *path (malloc'd) = the data file `name` (e.g. "tokenizer.json", "platforms/vck190.json"), looked
 * for in order: the folder set by lm_set_data_dir; DIR/share/lightmamba (the build tree keeps such
 * a folder beside its binaries) and an install's PREFIX/share/lightmamba seen from PREFIX/bin and
 * PREFIX/lib, where DIR holds the binary or shared library this code is linked into; the configured
 * install folder LM_INSTALL_DATADIR. Not found -> LM_ERR_IO naming it. */
lm_status lm_data_path(const char *name, char **path);

#endif
