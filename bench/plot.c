/* A small line-chart writer for the benchmark scripts: reads "SERIES X Y" rows (whitespace
 * separated, '#' comments; '_' in a series name shows as a space) and writes one SVG with a line and markers per series, axes with ticks
 * and a legend. X is numeric, or categorical when --categories lists the labels in axis order;
 * --logy draws Y on a log10 axis (rows with Y <= 0 are left out there).
 *
 *   bench_plot -f DATA -o OUT.svg [--title T] [--xlabel X] [--ylabel Y] [--logy] [--categories a,b,c]
 *
 * Used by bench/quality.sh (KL against the activation group per method, the out_proj input
 * histograms before and after the rotation). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_POINTS 20000
#define MAX_SERIES 16
#define MAX_CATS 32
enum { W = 720, H = 440, LEFT = 80, RIGHT = 190, TOP = 40, BOTTOM = 60 };

typedef struct {
    int series;
    double x, y;
} point;

static char series[MAX_SERIES][64], cats[MAX_CATS][32];
static int n_series, n_cats, logy;
static point pts[MAX_POINTS];
static int n_pts;
static double xmin, xmax, ymin, ymax;

static void die(const char *msg) {
    fprintf(stderr, "bench_plot: %s\n", msg);
    exit(1);
}

static int series_index(const char *name) {
    for (int i = 0; i < n_series; i++)
        if (!strcmp(series[i], name)) return i;
    if (n_series == MAX_SERIES) die("too many series");
    snprintf(series[n_series], sizeof series[0], "%.63s", name);
    return n_series++;
}

/* The legend's text of a series: '_' as a space. */
static const char *legend_text(const char *name) {
    static char buf[64];
    snprintf(buf, sizeof buf, "%.63s", name);
    for (char *c = buf; *c; c++)
        if (*c == '_') *c = ' ';
    return buf;
}

static double x_of(const char *text) {
    for (int i = 0; i < n_cats; i++)
        if (!strcmp(cats[i], text)) return i;
    if (n_cats) die("an X value that is not one of --categories");
    char *end;
    double v = strtod(text, &end);
    if (*end) die("an X value that is not a number");
    return v;
}

/* A round step (1, 2 or 5 times a power of ten) giving about 5 ticks over a range. */
static double nice_step(double range) {
    double raw = range / 5, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static double px(double x) { return LEFT + (x - xmin) / (xmax - xmin) * (W - LEFT - RIGHT); }
static double py(double y) {
    double v = logy ? log10(y) : y;
    return H - BOTTOM - (v - ymin) / (ymax - ymin) * (H - TOP - BOTTOM);
}

/* Writes s with the XML special characters escaped. */
static void text_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

static void label(FILE *f, double x, double y, const char *anchor, int rotate, const char *s) {
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"", x, y, anchor);
    if (rotate) fprintf(f, " transform=\"rotate(-90 %.1f %.1f)\"", x, y);
    fputc('>', f);
    text_escaped(f, s);
    fputs("</text>\n", f);
}

int main(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *title = "", *xlabel = "", *ylabel = "";
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--logy")) { logy = 1; continue; }
        if (!v) die("usage: bench_plot -f DATA -o OUT.svg [--title T] [--xlabel X] [--ylabel Y] [--logy] [--categories a,b]");
        if (!strcmp(o, "-f")) in = v;
        else if (!strcmp(o, "-o")) out = v;
        else if (!strcmp(o, "--title")) title = v;
        else if (!strcmp(o, "--xlabel")) xlabel = v;
        else if (!strcmp(o, "--ylabel")) ylabel = v;
        else if (!strcmp(o, "--categories")) {
            char buf[1024];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *c = strtok(buf, ","); c && n_cats < MAX_CATS; c = strtok(NULL, ",")) snprintf(cats[n_cats++], 32, "%s", c);
        } else die("unknown option");
        i++;
    }
    if (!in || !out) die("need -f DATA and -o OUT.svg");
    FILE *f = fopen(in, "r");
    if (!f) die("cannot open the data file");
    char line[512], name[64], xs[64];
    double y;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || sscanf(line, "%63s %63s %lf", name, xs, &y) != 3) continue;
        if (logy && y <= 0) continue;
        if (n_pts == MAX_POINTS) die("too many points");
        pts[n_pts++] = (point){series_index(name), x_of(xs), y};
    }
    fclose(f);
    if (!n_pts) die("no data rows");

    /* axis ranges: categories at 0 .. n-1 with half a step of margin; Y padded by 5 % */
    xmin = xmax = pts[0].x, ymin = ymax = logy ? log10(pts[0].y) : pts[0].y;
    for (int i = 0; i < n_pts; i++) {
        double v = logy ? log10(pts[i].y) : pts[i].y;
        xmin = fmin(xmin, pts[i].x), xmax = fmax(xmax, pts[i].x), ymin = fmin(ymin, v), ymax = fmax(ymax, v);
    }
    if (n_cats) xmin = -0.5, xmax = n_cats - 0.5;
    if (xmax == xmin) xmin -= 1, xmax += 1;
    if (logy) ymin = floor(ymin), ymax = ceil(ymax);
    if (ymax == ymin) ymax = ymin + 1;
    if (!logy) {
        double pad = 0.05 * (ymax - ymin);
        ymin = ymin >= 0 && ymin - pad < 0 ? 0 : ymin - pad, ymax += pad;
    }

    FILE *o = fopen(out, "w");
    if (!o) die("cannot write the SVG");
    fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    label(o, W / 2.0, 22, "middle", 0, title);
    label(o, LEFT + (W - LEFT - RIGHT) / 2.0, H - 15, "middle", 0, xlabel);
    label(o, 20, TOP + (H - TOP - BOTTOM) / 2.0, "middle", 1, ylabel);
    fprintf(o, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n", LEFT, TOP,
            W - LEFT - RIGHT, H - TOP - BOTTOM);
    char tick[64];
    /* Y ticks: decades, or multiples of a round step */
    const double ystep = logy ? 1 : nice_step(ymax - ymin);
    for (double v = logy ? ymin : ceil(ymin / ystep) * ystep; v <= ymax + 1e-9 * ystep; v += ystep) {
        double yy = py(logy ? pow(10, v) : v);
        fprintf(o, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", LEFT, W - RIGHT, yy, yy);
        snprintf(tick, sizeof tick, logy ? "1e%.0f" : "%.4g", fabs(v) < 1e-12 * ystep ? 0 : v);
        label(o, LEFT - 6, yy + 4, "end", 0, tick);
    }
    /* X ticks: the categories, or multiples of a round step */
    const double xstep = n_cats ? 1 : nice_step(xmax - xmin);
    for (double v = n_cats ? 0 : ceil(xmin / xstep) * xstep; v <= xmax + 1e-9 * xstep; v += xstep) {
        if (n_cats) snprintf(tick, sizeof tick, "%s", cats[(int)v]);
        else snprintf(tick, sizeof tick, "%.4g", fabs(v) < 1e-12 * xstep ? 0 : v);
        label(o, px(v), H - BOTTOM + 18, "middle", 0, tick);
    }
    static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                                         "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    for (int s = 0; s < n_series; s++) {
        const char *c = colors[s % 10];
        fprintf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s points=\"", c, s >= 10 ? " stroke-dasharray=\"5 3\"" : "");
        for (int i = 0; i < n_pts; i++)
            if (pts[i].series == s) fprintf(o, "%.1f,%.1f ", px(pts[i].x), py(pts[i].y));
        fputs("\"/>\n", o);
        if (n_pts / n_series <= 40) /* markers on short series */
            for (int i = 0; i < n_pts; i++)
                if (pts[i].series == s) fprintf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", px(pts[i].x), py(pts[i].y), c);
        double ly = TOP + 14 + 18 * s;
        fprintf(o, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n", W - RIGHT + 12,
                W - RIGHT + 32, ly - 4, ly - 4, c);
        label(o, W - RIGHT + 38, ly, "start", 0, legend_text(series[s]));
    }
    fputs("</svg>\n", o);
    if (fclose(o)) die("cannot write the SVG");
    return 0;
}
