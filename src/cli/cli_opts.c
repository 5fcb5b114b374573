#include "cli/cli_opts.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* Stores text as opt's value; returns 0, or 1 after printing an error. */
static int set_value(const char *command, const cli_opt *o, const char *name, const char *text) {
    char *end;
    errno = 0;
    switch (o->kind) {
    case CLI_STRING:
        *(const char **)o->out = text;
        return 0;
    case CLI_INT: {
        long v = strtol(text, &end, 10);
        if (end == text || *end || errno || v < o->lo || v > o->hi)
            return cli_error("%s: %s expects an integer in [%.0f, %.0f], got '%s'", command, name, o->lo, o->hi, text);
        *(int *)o->out = (int)v;
        return 0;
    }
    case CLI_FLOAT: {
        double v = strtod(text, &end);
        if (end == text || *end || errno || !isfinite(v) || v < o->lo || v > o->hi)
            return cli_error("%s: %s expects a number in [%g, %g], got '%s'", command, name, o->lo, o->hi, text);
        *(float *)o->out = (float)v;
        return 0;
    }
    case CLI_U64: {
        unsigned long long v = strtoull(text, &end, 10);
        if (end == text || *end || errno || text[0] == '-')
            return cli_error("%s: %s expects a non-negative integer, got '%s'", command, name, text);
        *(uint64_t *)o->out = (uint64_t)v;
        return 0;
    }
    case CLI_FLAG:
        break;
    }
    return cli_error("%s: %s takes no value", command, name);
}

int cli_parse(const char *command, int argc, char **argv, const cli_opt *opts, int n_opts) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        const cli_opt *o = NULL;
        for (int k = 0; k < n_opts && !o; k++) {
            const char *s = opts[k].short_name, *l = opts[k].long_name;
            if ((s && !eq && !strcmp(arg, s)) || (l && strlen(l) == name_len && !strncmp(arg, l, name_len)))
                o = &opts[k];
        }
        if (!o) {
            if (arg[0] == '-' && arg[1]) return cli_error("%s: unknown option '%s' (see 'lightmamba help %s')", command, arg, command);
            return cli_error("%s: unexpected argument '%s' (see 'lightmamba help %s')", command, arg, command);
        }
        const char *name = o->long_name ? o->long_name : o->short_name;
        if (o->kind == CLI_FLAG) {
            if (eq) return cli_error("%s: %s takes no value", command, name);
            *(int *)o->out = 1;
            continue;
        }
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value) return cli_error("%s: %s needs a value", command, name);
        if (set_value(command, o, name, value)) return 1;
    }
    return 0;
}

int cli_parse_act_format(const char *group, const char *scale, lm_quant_settings *q) {
    char *end;
    long g = strtol(group, &end, 10);
    if (!strcmp(group, "token"))
        q->act_group = LM_ACT_PER_TOKEN;
    else if (*group && !*end && (g == 8 || g == 16 || g == 32 || g == 64 || g == 128))
        q->act_group = (int)g;
    else
        return cli_error("quantize: --act-group '%s': 8, 16, 32, 64, 128 or token", group);
    if (!strcmp(scale, "pow2"))
        q->act_scale = LM_ACT_SCALE_POW2;
    else if (!strcmp(scale, "real"))
        q->act_scale = LM_ACT_SCALE_REAL;
    else
        return cli_error("quantize: --act-scale '%s': pow2 or real", scale);
    return 0;
}

int cli_parse_bits(const char *command, const char *option, const char *value, int *bits) {
    if (!strcmp(value, "f16"))
        *bits = 0;
    else if (!strcmp(value, "8") || !strcmp(value, "4"))
        *bits = value[0] - '0';
    else
        return cli_error("%s: %s '%s': f16, 8 or 4", command, option, value);
    return 0;
}

const char *cli_bits_name(int bits) { return bits == 8 ? "8-bit" : bits == 4 ? "4-bit" : "f16"; }

const char *cli_act_format_name(const lm_quant_settings *q, char *buf, size_t n) {
    if (q->act_group == LM_ACT_PER_TOKEN)
        snprintf(buf, n, "per token, %s", q->act_scale == LM_ACT_SCALE_REAL ? "real" : "power of two");
    else
        snprintf(buf, n, "%d channels, %s", q->act_group, q->act_scale == LM_ACT_SCALE_REAL ? "real" : "power of two");
    return buf;
}
