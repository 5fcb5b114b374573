/* A pickle virtual machine for torch.save(state_dict) only (format/pickle.h). Nothing is ever
 * imported or called: the few globals torch writes are recognised by name and become inert
 * values (an empty dict, a storage reference, a tensor description).
 *
 * What torch.save writes for {"w": tensor}, protocol 2:
 *   GLOBAL collections.OrderedDict, EMPTY_TUPLE, REDUCE              -> an empty dict
 *   MARK  "w"  GLOBAL torch._utils._rebuild_tensor_v2
 *         MARK  MARK "storage" GLOBAL torch.HalfStorage "0" "cpu" numel TUPLE  BINPERSID
 *               offset  (sizes) (strides)  False  OrderedDict()  TUPLE
 *         REDUCE
 *   SETITEMS  [EMPTY_DICT "_metadata" ... SETITEM BUILD]  STOP
 * with BINPUT/BINGET memoizing and reusing values. */
#include "format/pickle.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

/* Bounds that keep memory proportional to the pickle: values per pickle byte, stack depth. */
#define MAX_STACK (1 << 20)
#define MAX_TENSOR_DIMS LM_TENSOR_MAX_DIMS

typedef enum { V_MARK, V_NONE, V_BOOL, V_INT, V_STR, V_TUPLE, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR } vkind;
typedef enum { G_ORDERED_DICT, G_REBUILD_TENSOR_V2, G_FLOAT_STORAGE, G_HALF_STORAGE, G_BF16_STORAGE } global_id;

typedef struct value value;
struct value {
    vkind kind;
    int64_t i;            /* V_BOOL, V_INT; V_GLOBAL: a global_id */
    const char *s;        /* V_STR: inside the pickle, not NUL-terminated */
    size_t len;
    value **items;        /* V_TUPLE: n items; V_DICT: n (key, value) pairs, 2n pointers */
    size_t n, cap;
    const value *storage; /* V_TENSOR: its V_STORAGE (dtype in i, key in s/len, numel in n) */
    uint64_t offset;      /* V_TENSOR */
    int ndim;
    int64_t shape[MAX_TENSOR_DIMS];
};

/* Every allocation of one parse, freed together. */
typedef struct block {
    struct block *next;
    max_align_t data[];
} block;

typedef struct {
    const unsigned char *p;
    size_t len, at;
    const char *what;
    block *blocks;
    size_t allocated, budget; /* bytes; the budget grows with the pickle's size */
    value **stack;
    size_t depth, stack_cap;
    value **memo;
    size_t memo_cap;
} vm;

static void *vm_alloc(vm *m, size_t bytes) {
    if (bytes > m->budget - m->allocated) {
        lm_fail(LM_ERR_FORMAT, "%s: the pickle builds more than %zu bytes of objects (not a state dict?)", m->what,
                m->budget);
        return NULL;
    }
    block *b = calloc(1, sizeof *b + bytes);
    if (!b) {
        lm_fail(LM_ERR_NOMEM, "%s: out of memory reading the pickle", m->what);
        return NULL;
    }
    m->allocated += bytes;
    b->next = m->blocks;
    m->blocks = b;
    return b->data;
}

static value *new_value(vm *m, vkind kind) {
    value *v = vm_alloc(m, sizeof *v);
    if (v) v->kind = kind;
    return v;
}

/* Writes s into buf with anything unprintable as '?', for error messages. */
static const char *printable(char *buf, size_t size, const char *s, size_t len) {
    size_t k = 0;
    for (size_t i = 0; i < len && k + 4 < size; i++) buf[k++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    if (len > k) buf[k++] = '.', buf[k++] = '.', buf[k++] = '.';
    buf[k] = '\0';
    return buf;
}

static const char *kind_name(vkind k) {
    static const char *const names[] = {"mark", "None", "bool", "int", "str", "tuple", "dict", "global", "storage",
                                        "tensor"};
    return names[k];
}

static lm_status bad(vm *m, const char *why) {
    return lm_fail(LM_ERR_FORMAT, "%s: pickle byte %zu: %s", m->what, m->at, why);
}

static lm_status push(vm *m, value *v) {
    if (!v) return LM_ERR_NOMEM; /* vm_alloc has set the error */
    if (m->depth == m->stack_cap) {
        if (m->stack_cap == MAX_STACK) return bad(m, "stack deeper than 2^20 entries");
        size_t cap = m->stack_cap ? 2 * m->stack_cap : 64;
        value **s = realloc(m->stack, cap * sizeof *s);
        if (!s) return lm_fail(LM_ERR_NOMEM, "%s: out of memory reading the pickle", m->what);
        m->stack = s;
        m->stack_cap = cap;
    }
    m->stack[m->depth++] = v;
    return LM_OK;
}

static lm_status pop(vm *m, value **out) {
    if (!m->depth || m->stack[m->depth - 1]->kind == V_MARK) return bad(m, "stack underflow");
    *out = m->stack[--m->depth];
    return LM_OK;
}

/* The stack position just above the topmost mark. */
static lm_status find_mark(vm *m, size_t *base) {
    for (size_t i = m->depth; i-- > 0;)
        if (m->stack[i]->kind == V_MARK) {
            *base = i + 1;
            return LM_OK;
        }
    return bad(m, "no MARK on the stack");
}

static lm_status take_bytes(vm *m, size_t n, const unsigned char **out) {
    if (n > m->len - m->at) return bad(m, "truncated (an argument runs past the end)");
    *out = m->p + m->at;
    m->at += n;
    return LM_OK;
}

static lm_status read_uint(vm *m, int bytes, uint64_t *out) {
    const unsigned char *b = NULL;
    LM_TRY(take_bytes(m, (size_t)bytes, &b));
    uint64_t x = 0;
    for (int i = bytes - 1; i >= 0; i--) x = x << 8 | b[i];
    *out = x;
    return LM_OK;
}

static lm_status new_int(vm *m, int64_t x) {
    value *v = new_value(m, V_INT);
    if (v) v->i = x;
    return push(m, v);
}

/* A tuple of the stack entries from `first` to the top, which replaces the entries from `into`
 * (first, or the MARK just below it) to the top. */
static lm_status make_tuple(vm *m, size_t first, size_t into) {
    size_t n = m->depth - first;
    value *t = new_value(m, V_TUPLE);
    if (!t || (n && !(t->items = vm_alloc(m, n * sizeof *t->items)))) return LM_ERR_NOMEM;
    if (n) memcpy(t->items, m->stack + first, n * sizeof *t->items); /* items is NULL for () */
    t->n = n;
    m->depth = into;
    return push(m, t);
}

/* GLOBAL "module\nname\n": only the names torch.save(state_dict) writes. */
static lm_status global(vm *m) {
    static const struct {
        const char *module, *name;
        global_id id;
    } allowed[] = {
        {"collections", "OrderedDict", G_ORDERED_DICT},   {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2},
        {"torch", "FloatStorage", G_FLOAT_STORAGE},       {"torch", "HalfStorage", G_HALF_STORAGE},
        {"torch", "BFloat16Storage", G_BF16_STORAGE},
    };
    const char *line[2];
    size_t len[2];
    for (int k = 0; k < 2; k++) {
        const unsigned char *start = m->p + m->at, *nl = memchr(start, '\n', m->len - m->at);
        if (!nl) return bad(m, "truncated GLOBAL");
        line[k] = (const char *)start;
        len[k] = (size_t)(nl - start);
        m->at += len[k] + 1;
    }
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        if (len[0] == strlen(allowed[i].module) && !memcmp(line[0], allowed[i].module, len[0]) &&
            len[1] == strlen(allowed[i].name) && !memcmp(line[1], allowed[i].name, len[1])) {
            value *g = new_value(m, V_GLOBAL);
            if (g) g->i = allowed[i].id;
            return push(m, g);
        }
    char a[64], b[64];
    return lm_fail(LM_ERR_UNSUPPORTED, "%s: pickle byte %zu: forbidden global %s.%s (a state dict of tensors only "
                   "refers to collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage)",
                   m->what, m->at, printable(a, sizeof a, line[0], len[0]), printable(b, sizeof b, line[1], len[1]));
}

static int is_int(const value *v) { return v->kind == V_INT; }

/* BINPERSID with ("storage", <Float|Half|BFloat16>Storage, key, location, numel). */
static lm_status persistent_load(vm *m) {
    value *pid = NULL;
    LM_TRY(pop(m, &pid));
    value **t = pid->items;
    if (pid->kind != V_TUPLE || pid->n != 5 || t[0]->kind != V_STR || t[0]->len != 7 || memcmp(t[0]->s, "storage", 7) ||
        t[1]->kind != V_GLOBAL || t[1]->i < G_FLOAT_STORAGE || t[2]->kind != V_STR || t[3]->kind != V_STR ||
        !is_int(t[4]) || t[4]->i < 0)
        return bad(m, "persistent id is not (\"storage\", <dtype>Storage, key, location, numel)");
    if (t[2]->len == 0 || t[2]->len > 64) return bad(m, "storage key is empty or longer than 64 bytes");
    for (size_t i = 0; i < t[2]->len; i++) {
        char c = t[2]->s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'))
            return bad(m, "storage key is not a plain name (letters, digits, _)");
    }
    static const lm_dtype dtype_of[] = {[G_FLOAT_STORAGE] = LM_DTYPE_F32, [G_HALF_STORAGE] = LM_DTYPE_F16,
                                        [G_BF16_STORAGE] = LM_DTYPE_BF16};
    value *s = new_value(m, V_STORAGE);
    if (s) {
        s->i = dtype_of[t[1]->i];
        s->s = t[2]->s;
        s->len = t[2]->len;
        s->n = (size_t)t[4]->i;
    }
    return push(m, s);
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]). */
static lm_status rebuild_tensor(vm *m, const value *args) {
    value **a = args->items;
    if (args->n < 6 || args->n > 7 || a[0]->kind != V_STORAGE || !is_int(a[1]) || a[1]->i < 0 ||
        a[2]->kind != V_TUPLE || a[3]->kind != V_TUPLE || a[4]->kind != V_BOOL || a[5]->kind != V_DICT ||
        (args->n == 7 && a[6]->kind != V_DICT))
        return bad(m, "_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, requires_grad, hooks)");
    if (a[5]->n) return bad(m, "tensor with backward hooks");
    const value *size = a[2], *stride = a[3];
    if (size->n > MAX_TENSOR_DIMS || stride->n != size->n) return bad(m, "tensor size and stride do not match");
    value *t = new_value(m, V_TENSOR);
    if (!t) return LM_ERR_NOMEM;
    t->storage = a[0];
    t->offset = (uint64_t)a[1]->i;
    t->ndim = (int)size->n;
    /* Row-major contiguity: stride[d] = product of the sizes after d (any stride where size is 1). */
    uint64_t numel = 1;
    int overflow = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        const value *sz = size->items[d], *st = stride->items[d];
        if (!is_int(sz) || sz->i < 0 || !is_int(st)) return bad(m, "tensor size or stride is not an integer");
        if (sz->i != 1 && (uint64_t)st->i != numel && numel != 0)
            return lm_fail(LM_ERR_UNSUPPORTED, "%s: pickle byte %zu: a non-contiguous tensor (stride %lld in dimension "
                           "%d, row-major needs %llu); save it with .contiguous()", m->what, m->at, (long long)st->i,
                           d, (unsigned long long)numel);
        t->shape[d] = sz->i;
        overflow |= __builtin_mul_overflow(numel, (uint64_t)sz->i, &numel);
    }
    uint64_t end;
    if (overflow || __builtin_add_overflow(t->offset, numel, &end) || end > a[0]->n)
        return lm_fail(LM_ERR_FORMAT, "%s: pickle byte %zu: tensor of %llu elements at offset %llu does not fit its "
                       "storage of %zu elements", m->what, m->at, (unsigned long long)numel,
                       (unsigned long long)t->offset, a[0]->n);
    return push(m, t);
}

static lm_status reduce(vm *m) {
    value *args = NULL, *fn = NULL;
    LM_TRY(pop(m, &args));
    LM_TRY(pop(m, &fn));
    if (fn->kind != V_GLOBAL || args->kind != V_TUPLE) return bad(m, "REDUCE of something other than a global");
    if (fn->i == G_ORDERED_DICT) {
        if (args->n) return bad(m, "OrderedDict called with arguments");
        return push(m, new_value(m, V_DICT));
    }
    if (fn->i == G_REBUILD_TENSOR_V2) return rebuild_tensor(m, args);
    return bad(m, "REDUCE calls a storage type");
}

static lm_status set_items(vm *m, size_t base) {
    size_t n = m->depth - base;
    if (base == 0 || n % 2) return bad(m, "SETITEMS without a dict and key/value pairs");
    value *d = m->stack[base - 1];
    if (base >= 2 && m->stack[base - 1]->kind == V_MARK) d = m->stack[base - 2];
    if (d->kind != V_DICT) return bad(m, "SETITEM on something other than a dict");
    size_t need = d->n + n / 2;
    if (need > d->cap) {
        size_t cap = need < 2 * d->cap ? 2 * d->cap : need;
        value **items = vm_alloc(m, 2 * cap * sizeof *items);
        if (!items) return LM_ERR_NOMEM;
        if (d->n) memcpy(items, d->items, 2 * d->n * sizeof *items);
        d->items = items;
        d->cap = cap;
    }
    for (size_t i = base; i < m->depth; i += 2) {
        if (m->stack[i]->kind != V_STR) return bad(m, "dict key is not a str");
        if (m->stack[i + 1]->kind == V_MARK) return bad(m, "SETITEM without a value");
        d->items[2 * d->n] = m->stack[i];
        d->items[2 * d->n + 1] = m->stack[i + 1];
        d->n++;
    }
    m->depth = base;
    return LM_OK;
}

static lm_status memo_put(vm *m, uint64_t idx) {
    if (!m->depth || m->stack[m->depth - 1]->kind == V_MARK) return bad(m, "memoizing an empty stack");
    /* torch numbers the memo 0, 1, 2, ...: an index past the pickle's length is not a state dict. */
    if (idx >= m->len) return bad(m, "memo index larger than the pickle");
    if (idx >= m->memo_cap) {
        size_t cap = m->memo_cap ? m->memo_cap : 64;
        while (cap <= idx) cap *= 2;
        value **memo = realloc(m->memo, cap * sizeof *memo);
        if (!memo) return lm_fail(LM_ERR_NOMEM, "%s: out of memory reading the pickle", m->what);
        memset(memo + m->memo_cap, 0, (cap - m->memo_cap) * sizeof *memo);
        m->memo = memo;
        m->memo_cap = cap;
    }
    m->memo[idx] = m->stack[m->depth - 1];
    return LM_OK;
}

static lm_status memo_get(vm *m, uint64_t idx) {
    if (idx >= m->memo_cap || !m->memo[idx]) return bad(m, "memo entry read before it was written");
    return push(m, m->memo[idx]);
}

/* Runs to STOP; the result is on the stack. */
static lm_status run(vm *m) {
    if (m->len < 2 || m->p[0] != 0x80) return bad(m, "not a pickle (no PROTO opcode)");
    if (m->p[1] != 2)
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: pickle protocol %d (torch.save writes protocol 2)", m->what, m->p[1]);
    m->at = 2;
    for (;;) {
        if (m->at >= m->len) return bad(m, "truncated (no STOP)");
        unsigned char op = m->p[m->at++];
        uint64_t u = 0;
        size_t base = 0;
        value *v, *a = NULL;
        const unsigned char *b = NULL;
        switch (op) {
        case '.': /* STOP */
            if (m->depth != 1) return bad(m, "STOP with other than one value on the stack");
            return LM_OK;
        case '(': LM_TRY(push(m, new_value(m, V_MARK))); break;
        case ')': LM_TRY(push(m, new_value(m, V_TUPLE))); break;
        case '}': LM_TRY(push(m, new_value(m, V_DICT))); break;
        case 'N': LM_TRY(push(m, new_value(m, V_NONE))); break;
        case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
            v = new_value(m, V_BOOL);
            if (v) v->i = op == 0x88;
            LM_TRY(push(m, v));
            break;
        case 'K': LM_TRY(read_uint(m, 1, &u)); LM_TRY(new_int(m, (int64_t)u)); break;
        case 'M': LM_TRY(read_uint(m, 2, &u)); LM_TRY(new_int(m, (int64_t)u)); break;
        case 'J': LM_TRY(read_uint(m, 4, &u)); LM_TRY(new_int(m, (int32_t)(uint32_t)u)); break;
        case 0x8a: /* LONG1: n bytes of little-endian two's complement */
            LM_TRY(read_uint(m, 1, &u));
            if (u > 8) return bad(m, "integer wider than 64 bits");
            {
                int n = (int)u;
                LM_TRY(read_uint(m, n, &u));
                if (n && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~0ull << (8 * n); /* sign-extend */
                LM_TRY(new_int(m, (int64_t)u));
            }
            break;
        case 'X': /* BINUNICODE */
            LM_TRY(read_uint(m, 4, &u));
            LM_TRY(take_bytes(m, (size_t)u, &b));
            v = new_value(m, V_STR);
            if (v) v->s = (const char *)b, v->len = (size_t)u;
            LM_TRY(push(m, v));
            break;
        case 't': LM_TRY(find_mark(m, &base)); LM_TRY(make_tuple(m, base, base - 1)); break;
        case 0x85: case 0x86: case 0x87: /* TUPLE1..3 */
            base = (size_t)(op - 0x84);
            if (m->depth < base) return bad(m, "stack underflow");
            base = m->depth - base;
            for (size_t i = base; i < m->depth; i++)
                if (m->stack[i]->kind == V_MARK) return bad(m, "stack underflow");
            LM_TRY(make_tuple(m, base, base));
            break;
        case 'c': LM_TRY(global(m)); break;
        case 'Q': LM_TRY(persistent_load(m)); break;
        case 'R': LM_TRY(reduce(m)); break;
        case 's': /* SETITEM */
            if (m->depth < 3) return bad(m, "stack underflow");
            LM_TRY(set_items(m, m->depth - 2));
            break;
        case 'u': /* SETITEMS */
            LM_TRY(find_mark(m, &base));
            LM_TRY(set_items(m, base));
            m->depth--; /* the mark */
            break;
        case 'b': /* BUILD: the state of an OrderedDict (torch's _metadata); dropped */
            LM_TRY(pop(m, &a));
            if (!m->depth || m->stack[m->depth - 1]->kind != V_DICT || a->kind != V_DICT)
                return bad(m, "BUILD of something other than a dict");
            break;
        case 'q': LM_TRY(read_uint(m, 1, &u)); LM_TRY(memo_put(m, u)); break;
        case 'r': LM_TRY(read_uint(m, 4, &u)); LM_TRY(memo_put(m, u)); break;
        case 'h': LM_TRY(read_uint(m, 1, &u)); LM_TRY(memo_get(m, u)); break;
        case 'j': LM_TRY(read_uint(m, 4, &u)); LM_TRY(memo_get(m, u)); break;
        default:
            m->at--;
            return lm_fail(LM_ERR_UNSUPPORTED, "%s: pickle byte %zu: opcode 0x%02x ('%c') is not one torch.save writes "
                           "for a state dict", m->what, m->at, op, op >= 0x20 && op < 0x7f ? op : '?');
        }
    }
}

static char *dup_str(const char *s, size_t len) {
    char *c = malloc(len + 1);
    if (c) memcpy(c, s, len), c[len] = '\0';
    return c;
}

/* The result must be a dict of str -> tensor; copied out of the VM's memory. */
static lm_status collect(vm *m, lm_state_dict *sd) {
    const value *d = m->stack[0];
    if (d->kind != V_DICT)
        return lm_fail(LM_ERR_FORMAT, "%s: the pickle builds a %s, not a dict of tensors", m->what, kind_name(d->kind));
    if (d->n > INT32_MAX) return lm_fail(LM_ERR_FORMAT, "%s: too many tensors", m->what);
    LM_TRY(lm_calloc(&sd->tensors, d->n ? d->n : 1, sizeof *sd->tensors, "state dict"));
    for (size_t i = 0; i < d->n; i++) {
        const value *k = d->items[2 * i], *t = d->items[2 * i + 1];
        char name[80];
        if (t->kind != V_TENSOR)
            return lm_fail(LM_ERR_FORMAT, "%s: state dict entry %s is not a tensor (it is a %s value)", m->what,
                           printable(name, sizeof name, k->s, k->len), kind_name(t->kind));
        lm_pickle_tensor *o = &sd->tensors[sd->n++];
        o->name = dup_str(k->s, k->len);
        o->storage = dup_str(t->storage->s, t->storage->len);
        if (!o->name || !o->storage) return lm_fail(LM_ERR_NOMEM, "%s: out of memory", m->what);
        if (strlen(o->name) != k->len)
            return lm_fail(LM_ERR_FORMAT, "%s: state dict key %s has a NUL byte", m->what,
                           printable(name, sizeof name, k->s, k->len));
        o->dtype = (lm_dtype)t->storage->i;
        o->storage_numel = t->storage->n;
        o->offset = t->offset;
        o->ndim = t->ndim;
        memcpy(o->shape, t->shape, sizeof o->shape);
        o->numel = 1;
        for (int dd = 0; dd < t->ndim; dd++) o->numel *= (uint64_t)t->shape[dd]; /* checked in rebuild_tensor */
    }
    for (int i = 0; i < sd->n; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(sd->tensors[i].name, sd->tensors[j].name))
                return lm_fail(LM_ERR_FORMAT, "%s: state dict key %s appears twice", m->what, sd->tensors[i].name);
    return LM_OK;
}

lm_status lm_pickle_read_state_dict(lm_state_dict *sd, const unsigned char *data, size_t len, const char *what) {
    memset(sd, 0, sizeof *sd);
    /* A state dict needs well under 64 bytes of objects per pickle byte. */
    vm m = {.p = data, .len = len, .what = what, .budget = 64 * len + 4096};
    lm_status s = run(&m);
    if (!s) s = collect(&m, sd);
    while (m.blocks) {
        block *next = m.blocks->next;
        free(m.blocks);
        m.blocks = next;
    }
    free(m.stack);
    free(m.memo);
    if (s) lm_state_dict_free(sd);
    return s;
}

void lm_state_dict_free(lm_state_dict *sd) {
    for (int i = 0; i < sd->n; i++) {
        free(sd->tensors[i].name);
        free(sd->tensors[i].storage);
    }
    free(sd->tensors);
    memset(sd, 0, sizeof *sd);
}
