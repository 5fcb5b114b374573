/* The per-unit timeline of one steady-state layer as an SVG (one row per unit, busy intervals as
 * bars; the MMU's in_proj and out_proj in two colours). Intervals closer than a pixel are merged. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"
#include "sim/sim.h"

typedef struct { char *buf; size_t n, cap; int oom; } sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->buf ? b->buf + b->n : NULL, b->buf ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if (b->buf && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t nc = (b->cap ? b->cap * 2 : 65536) + (size_t)k;
        char *nb = realloc(b->buf, nc);
        if (!nb) { b->oom = 1; return; }
        b->buf = nb; b->cap = nc;
    }
}

lm_status lm_hw_write_svg(const char *path, const lm_hw_result *res, const lm_hw_platform *p, const lm_hw_design *d,
                          const lm_config *c) {
    if (res->trace_t1 <= res->trace_t0) return lm_fail(LM_ERR_ARG, "svg: the simulation recorded no timeline");
    const double left = 150, width = 1000, row = 22, top = 50;
    double t0 = res->trace_t0, span = res->trace_t1 - t0, px = span / width;
    static const char *colors[3] = {"#4878d0", "#ee854a", "#6acc64"};
    sbuf b = {0};
    double h = top + row * HW_N_UNITS + 40;
    sb_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
              left + width + 20, h);
    sb_printf(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    sb_printf(&b, "<text x=\"10\" y=\"20\" font-size=\"14\">%s, Mamba2 d_model %d (%d layers), W%dA%d, reorder %s, tiling %s: one layer, %.0f cycles (%.1f us)</text>\n",
              p->name, c->d_model, c->n_layer, d->wbits, d->abits, d->reorder ? "on" : "off", d->tiling ? "on" : "off",
              span, span / p->clock_mhz);
    sb_printf(&b, "<text x=\"10\" y=\"38\" fill=\"%s\">in_proj</text><text x=\"70\" y=\"38\" fill=\"%s\">out_proj</text>\n",
              colors[0], colors[1]);
    for (int u = 0; u < HW_N_UNITS; u++) {
        double y = top + u * row;
        sb_printf(&b, "<text x=\"10\" y=\"%.1f\">%s</text>\n", y + row * 0.7, lm_hw_unit_names[u]);
        sb_printf(&b, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, left + width, y + row - 1, y + row - 1);
        double cur0 = -1, cur1 = -1;
        int cur_phase = -1;
        for (int i = 0; i <= res->n_trace[u]; i++) {
            int end = i == res->n_trace[u];
            const lm_hw_interval *iv = end ? NULL : &res->trace[u][i];
            double a = end ? 0 : (iv->t0 - t0 < 0 ? 0 : iv->t0 - t0), z = end ? 0 : (iv->t1 - t0 > span ? span : iv->t1 - t0);
            if (!end && z <= a) continue;
            if (!end && cur0 >= 0 && iv->phase == cur_phase && a - cur1 < px) { cur1 = z; continue; }
            if (cur0 >= 0) {
                double w = (cur1 - cur0) / px;
                sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\"/>\n", left + cur0 / px, y + 3,
                          w < 0.5 ? 0.5 : w, row - 6, colors[cur_phase > 2 || cur_phase < 0 ? 2 : cur_phase]);
            }
            if (!end) { cur0 = a; cur1 = z; cur_phase = iv->phase; }
        }
    }
    for (int k = 0; k <= 10; k++) {
        double x = left + width * k / 10;
        sb_printf(&b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" fill=\"#555\">%.0f</text>\n", x, h - 15, span * k / 10);
    }
    sb_printf(&b, "</svg>\n");
    if (b.oom) { free(b.buf); return lm_fail(LM_ERR_NOMEM, "svg: out of memory"); }
    lm_atomic_file af;
    lm_status st = lm_atomic_open(&af, path);
    if (st == LM_OK) st = lm_atomic_write(&af, b.buf, b.n);
    if (st == LM_OK) st = lm_atomic_commit(&af);
    else lm_atomic_abort(&af);
    free(b.buf);
    return st;
}
