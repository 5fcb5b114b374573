/* The datapath's names (lightmamba.h: lm_datapath_name, lm_datapath_parse). */
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "integer/integer.h"

static const struct { const char *name; int flag; } dp_flags[] = {
    {"trunc", LM_DP_TRUNC}, {"qrule", LM_DP_QRULE},     {"lut8", LM_DP_LUT8},
    {"norm8", LM_DP_NORM8}, {"dbheads", LM_DP_DB_HEADS}, {"sites", LM_DP_SITES},
};
#define N_FLAGS (int)(sizeof dp_flags / sizeof dp_flags[0])

const char *lm_datapath_name(int dp, char *buf, size_t size) {
    if (size == 0) return buf;
    buf[0] = 0;
    if (dp == 0 || dp == LM_DP_RELEASE) {
        snprintf(buf, size, "%s", dp ? "release" : "ours");
        return buf;
    }
    size_t used = 0;
    for (int i = 0; i < N_FLAGS; i++)
        if (dp & dp_flags[i].flag) {
            int w = snprintf(buf + used, size - used, "%s%s", used ? "+" : "", dp_flags[i].name);
            if (w < 0 || (size_t)w >= size - used) break;
            used += (size_t)w;
        }
    return buf;
}

lm_status lm_datapath_parse(const char *s, int *dp) {
    if (!strcmp(s, "ours")) { *dp = 0; return LM_OK; }
    if (!strcmp(s, "release")) { *dp = LM_DP_RELEASE; return LM_OK; }
    int v = 0;
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, "+,");
        int found = 0;
        for (int i = 0; i < N_FLAGS && !found; i++)
            if (strlen(dp_flags[i].name) == len && !strncmp(p, dp_flags[i].name, len)) {
                v |= dp_flags[i].flag;
                found = 1;
            }
        if (!found)
            return lm_fail(LM_ERR_ARG, "datapath '%s': expected ours, release, or flags from trunc, qrule, lut8, norm8, "
                           "dbheads, sites joined by '+' or ','", s);
        p += len;
        if (*p) p++;
    }
    if (!v) return lm_fail(LM_ERR_ARG, "datapath '%s' is empty", s);
    *dp = v;
    return LM_OK;
}
