/* Config loading: YAML tree + overrides -> schema-checked struct; printing back as YAML. */
#include "core/config.h"
#include "core/config_schema.h"
#include "core/log.h"
#include "core/yaml_tree.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define REQUIRED_MARK "???"

typedef struct {
    sm_config *cfg;
    const char *source;        /* file name for messages */
    char base_dir[CFG_PATH];   /* absolute directory that relative paths resolve from */
    char *const *overrides;
} loader;

/* ---------------------------------------------------------------- helpers */

static void *field_ptr(sm_config *cfg, const cfg_key *k) { return (char *)cfg + k->offset; }
static const void *field_cptr(const sm_config *cfg, const cfg_key *k) { return (const char *)cfg + k->offset; }

static const cfg_key *schema_find(const char *key, int *index)
{
    for (int i = 0; i < config_schema_len; i++) {
        if (strcmp(config_schema[i].key, key) == 0) {
            if (index) *index = i;
            return &config_schema[i];
        }
    }
    return NULL;
}

static int schema_is_section(const char *path)
{
    size_t n = strlen(path);
    for (int i = 0; i < config_schema_len; i++)
        if (strncmp(config_schema[i].key, path, n) == 0 && config_schema[i].key[n] == '.') return 1;
    return 0;
}

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int *row = malloc((lb + 1) * sizeof *row);
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int cost = a[i - 1] == b[j - 1] ? 0 : 1;
            int best = diag + cost;
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    int d = row[lb];
    free(row);
    return d;
}

/* The nearest key or section name (every prefix of a key is a candidate). */
static int closest_key(const char *key, char *best, size_t len)
{
    int best_d = 1 << 30;
    for (int i = 0; i < config_schema_len; i++) {
        const char *k = config_schema[i].key;
        for (const char *end = k;; end++) {
            if (*end != '.' && *end != '\0') continue;
            char candidate[256];
            snprintf(candidate, sizeof candidate, "%.*s", (int)(end - k), k);
            int d = edit_distance(key, candidate);
            if (d < best_d) {
                best_d = d;
                snprintf(best, len, "%s", candidate);
            }
            if (*end == '\0') break;
        }
    }
    return best_d <= (int)strlen(key) / 3 + 1;
}

/* "file:line" for nodes from the file, "override 'k=v'" for nodes from the command line. */
static void node_where(const loader *ld, const ynode *node, char *buf, size_t len)
{
    if (node->line < 0)
        snprintf(buf, len, "override '%s'", ld->overrides[-node->line - 1]);
    else
        snprintf(buf, len, "%s:%d", ld->source, node->line);
}

static int copy_string(char *dst, size_t cap, const char *src)
{
    if (strlen(src) >= cap) return 0;
    memcpy(dst, src, strlen(src) + 1);
    return 1;
}

static void path_join(char *out, size_t cap, const char *dir, const char *path)
{
    if (path[0] == '/' || path[0] == '\0' || dir[0] == '\0')
        snprintf(out, cap, "%s", path);
    else
        snprintf(out, cap, "%s/%s", dir, path);
}

/* ---------------------------------------------------------------- scalar parsing */

static int parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return 0;
    *out = v;
    return 1;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int parse_bool(const char *s, int *out)
{
    static const char *yes[] = {"true", "yes", "on"}, *no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(s, yes[i])) return *out = 1, 1;
        if (!strcasecmp(s, no[i])) return *out = 0, 1;
    }
    return 0;
}

static int is_null(const ynode *n)
{
    return n->kind == YNODE_SCALAR && !n->quoted && (!strcmp(n->value, "null") || !strcmp(n->value, "~") || !n->value[0]);
}

static int enum_allows(const char *choices, const char *value)
{
    size_t n = strlen(value);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

static int check_range(const loader *ld, const ynode *n, const cfg_key *k, double v)
{
    if (v >= k->min && v <= k->max) return SM_OK;
    char where[CFG_PATH + 64];
    node_where(ld, n, where, sizeof where);
    return sm_fail(SM_ERR_USAGE, "%s: %s must be between %g and %g, got %s", where, k->key, k->min, k->max, n->value);
}

static int type_error(const loader *ld, const ynode *n, const cfg_key *k, const char *expected)
{
    char where[CFG_PATH + 64];
    node_where(ld, n, where, sizeof where);
    const char *got = n->kind == YNODE_MAP ? "a mapping" : n->kind == YNODE_SEQ ? "a list" : n->value;
    return sm_fail(SM_ERR_USAGE, "%s: %s expects %s, got '%s'", where, k->key, expected, got);
}

/* ---------------------------------------------------------------- assignment */

static int assign_scalar_string(const loader *ld, const ynode *n, const cfg_key *k, char *dst, size_t cap, int resolve)
{
    char resolved[CFG_PATH * 2];
    const char *value = n->value;
    if (resolve && value[0]) {
        path_join(resolved, sizeof resolved, ld->base_dir, value);
        value = resolved;
    }
    if (!copy_string(dst, cap, value)) {
        char where[CFG_PATH + 64];
        node_where(ld, n, where, sizeof where);
        return sm_fail(SM_ERR_USAGE, "%s: %s is longer than %zu characters", where, k->key, cap - 1);
    }
    return SM_OK;
}

static int assign_list(const loader *ld, const ynode *n, const cfg_key *k, void *field)
{
    const ynode *single[1] = {n};
    const ynode *const *items = single;
    size_t count = 1;
    if (n->kind == YNODE_SEQ) {
        items = (const ynode *const *)n->items;
        count = n->n_items;
    } else if (n->kind == YNODE_MAP) {
        return type_error(ld, n, k, "a list");
    }
    if (count > CFG_LIST_MAX) {
        char where[CFG_PATH + 64];
        node_where(ld, n, where, sizeof where);
        return sm_fail(SM_ERR_USAGE, "%s: %s has more than %d items", where, k->key, CFG_LIST_MAX);
    }
    for (size_t i = 0; i < count; i++) {
        const ynode *item = items[i];
        if (item->kind != YNODE_SCALAR) return type_error(ld, item, k, "a list of scalars");
        if (k->type == CFG_T_NUMLIST) {
            cfg_numlist *list = field;
            double v;
            if (!parse_double(item->value, &v)) return type_error(ld, item, k, "a list of numbers");
            int st = check_range(ld, item, k, v);
            if (st) return st;
            list->items[i] = v;
        } else {
            cfg_strlist *list = field;
            int st = assign_scalar_string(ld, item, k, list->items[i], CFG_PATH, k->type == CFG_T_PATHLIST);
            if (st) return st;
        }
    }
    if (k->type == CFG_T_NUMLIST)
        ((cfg_numlist *)field)->n = (int)count;
    else
        ((cfg_strlist *)field)->n = (int)count;
    return SM_OK;
}

static int assign(const loader *ld, const ynode *n, const cfg_key *k, int index)
{
    sm_config *cfg = ld->cfg;
    void *field = field_ptr(cfg, k);
    if (n->kind == YNODE_SCALAR && !n->quoted && !strcmp(n->value, REQUIRED_MARK)) {
        cfg->is_set[index] = 0;
        if (k->type == CFG_T_STRING || k->type == CFG_T_PATH || k->type == CFG_T_ENUM) ((char *)field)[0] = '\0';
        return SM_OK;
    }
    int st = SM_OK;
    switch (k->type) {
    case CFG_T_INT: {
        long v;
        if (n->kind != YNODE_SCALAR || !parse_long(n->value, &v)) return type_error(ld, n, k, "an integer");
        if ((st = check_range(ld, n, k, (double)v))) return st;
        if (k->size == sizeof(long))
            *(long *)field = v;
        else
            *(int *)field = (int)v;
        break;
    }
    case CFG_T_FLOAT: {
        double v;
        if ((k->flags & CFG_F_NULLABLE) && is_null(n)) {
            *(double *)field = NAN;
            break;
        }
        if (n->kind != YNODE_SCALAR || !parse_double(n->value, &v))
            return type_error(ld, n, k, (k->flags & CFG_F_NULLABLE) ? "a number or null" : "a number");
        if ((st = check_range(ld, n, k, v))) return st;
        *(double *)field = v;
        break;
    }
    case CFG_T_BOOL: {
        int v;
        if (n->kind != YNODE_SCALAR || !parse_bool(n->value, &v)) return type_error(ld, n, k, "true or false");
        *(int *)field = v;
        break;
    }
    case CFG_T_ENUM:
        if (n->kind != YNODE_SCALAR) return type_error(ld, n, k, "a string");
        if (!enum_allows(k->choices, n->value)) {
            char where[CFG_PATH + 64];
            node_where(ld, n, where, sizeof where);
            return sm_fail(SM_ERR_USAGE, "%s: %s must be one of %s, got '%s'", where, k->key, k->choices, n->value);
        }
        st = assign_scalar_string(ld, n, k, field, k->size, 0);
        break;
    case CFG_T_STRING:
    case CFG_T_PATH:
        if (n->kind != YNODE_SCALAR) return type_error(ld, n, k, k->type == CFG_T_PATH ? "a path" : "a string");
        st = assign_scalar_string(ld, n, k, field, k->size, k->type == CFG_T_PATH);
        break;
    case CFG_T_STRLIST:
    case CFG_T_PATHLIST:
    case CFG_T_NUMLIST:
        st = assign_list(ld, n, k, field);
        break;
    }
    if (st == SM_OK) cfg->is_set[index] = 1;
    return st;
}

static int walk(const loader *ld, const ynode *map, const char *prefix)
{
    for (size_t i = 0; i < map->n_items; i++) {
        const ynode *child = map->items[i];
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", child->key);
        int index;
        const cfg_key *k = schema_find(path, &index);
        char where[CFG_PATH + 64];
        if (k) {
            int st = assign(ld, child, k, index);
            if (st) return st;
        } else if (schema_is_section(path)) {
            if (child->kind != YNODE_MAP) {
                node_where(ld, child, where, sizeof where);
                return sm_fail(SM_ERR_USAGE, "%s: '%s' is a section and expects a mapping of keys", where, path);
            }
            int st = walk(ld, child, path);
            if (st) return st;
        } else {
            node_where(ld, child, where, sizeof where);
            char hint[256];
            if (closest_key(path, hint, sizeof hint))
                return sm_fail(SM_ERR_USAGE, "%s: unknown key '%s' (did you mean '%s'?)", where, path, hint);
            return sm_fail(SM_ERR_USAGE, "%s: unknown key '%s' (see 'smoecast config --doc' for all keys)", where, path);
        }
    }
    return SM_OK;
}

/* ---------------------------------------------------------------- overrides */

int config_is_override(const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) return 0;
    for (const char *p = arg; p < eq; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.') return 0;
    return 1;
}

static int apply_override(ynode *root, const char *text, int index)
{
    if (!config_is_override(text))
        return sm_fail(SM_ERR_USAGE, "override '%s': expected key.sub=value", text);
    const char *eq = strchr(text, '=');
    char key[512];
    snprintf(key, sizeof key, "%.*s", (int)(eq - text), text);
    const char *value = eq + 1;

    ynode *parsed = NULL;
    if (!value[0])
        parsed = yaml_tree_new(YNODE_SCALAR, NULL, "", 0);
    else if (yaml_tree_load_string(value, "override", &parsed) != SM_OK)
        return sm_fail(SM_ERR_USAGE, "override '%s': value is not valid YAML", text);
    if (parsed->kind == YNODE_MAP && parsed->n_items == 0 && value[0] != '{') {
        yaml_tree_free(parsed);
        parsed = yaml_tree_new(YNODE_SCALAR, NULL, value, 0);
    }
    /* Mark the override's nodes so messages point at the command line. */
    parsed->line = -(index + 1);
    for (size_t i = 0; i < parsed->n_items; i++) parsed->items[i]->line = -(index + 1);

    ynode *map = root;
    char *save = NULL;
    char *part = strtok_r(key, ".", &save);
    while (part) {
        char *next = strtok_r(NULL, ".", &save);
        if (!next) {
            yaml_tree_remove(map, part);
            free(parsed->key);
            parsed->key = strdup(part);
            yaml_tree_append(map, parsed);
            return SM_OK;
        }
        ynode *child = yaml_tree_get(map, part);
        if (child && child->kind != YNODE_MAP) {
            yaml_tree_remove(map, part);
            child = NULL;
        }
        if (!child) {
            child = yaml_tree_new(YNODE_MAP, part, NULL, -(index + 1));
            yaml_tree_append(map, child);
        }
        map = child;
        part = next;
    }
    yaml_tree_free(parsed);
    return sm_fail(SM_ERR_USAGE, "override '%s': empty key", text);
}

/* ---------------------------------------------------------------- load / free */

static int apply_defaults(sm_config *cfg)
{
    loader ld = {.cfg = cfg, .source = "<defaults>"};
    if (!getcwd(ld.base_dir, sizeof ld.base_dir)) ld.base_dir[0] = '\0';
    for (int i = 0; i < config_schema_len; i++) {
        const cfg_key *k = &config_schema[i];
        ynode *n;
        if (yaml_tree_load_string(k->def, k->key, &n) != SM_OK) return SM_ERR_NUMERIC;
        if (n->kind == YNODE_MAP && n->n_items == 0) {
            yaml_tree_free(n);
            n = yaml_tree_new(YNODE_SCALAR, NULL, k->def, 0);
        }
        int st = assign(&ld, n, k, i);
        yaml_tree_free(n);
        if (st) return sm_fail(SM_ERR_NUMERIC, "config schema: bad default for %s: %s", k->key, sm_last_error());
        cfg->is_set[i] = 0;
    }
    return SM_OK;
}

static int config_load_tree(ynode *root, const char *path, const char *name, int n_overrides, char *const *overrides,
                            sm_config **out);

int config_load(const char *path, int n_overrides, char *const *overrides, sm_config **out)
{
    *out = NULL;
    ynode *root = NULL;
    if (path) {
        int st = yaml_tree_load_file(path, &root);
        if (st) return st;
    }
    int st = config_load_tree(root, path, path, n_overrides, overrides, out);
    yaml_tree_free(root);
    return st;
}

int config_load_text(const char *text, const char *name, int n_overrides, char *const *overrides, sm_config **out)
{
    *out = NULL;
    ynode *root = NULL;
    int st = yaml_tree_load_string(text, name, &root);
    if (st) return st;
    st = config_load_tree(root, NULL, name, n_overrides, overrides, out);
    yaml_tree_free(root);
    return st;
}

/* root: the parsed document (NULL: defaults only); path: the file it came from (NULL: text or
 * none, relative paths then resolve from the working directory); name: for messages. */
static int config_load_tree(ynode *root, const char *path, const char *name, int n_overrides, char *const *overrides,
                            sm_config **out)
{
    *out = NULL;
    sm_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return sm_fail(SM_ERR_NUMERIC, "out of memory loading the config");
    cfg->is_set = calloc((size_t)config_schema_len, 1);
    int st = apply_defaults(cfg);
    if (st) {
        config_free(cfg);
        return st;
    }

    loader ld = {.cfg = cfg, .source = name ? name : "<command line>", .overrides = overrides};
    char cwd[CFG_PATH] = "";
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';

    if (root) {
        if (root->kind != YNODE_MAP) {
            config_free(cfg);
            return sm_fail(SM_ERR_USAGE, "%s:1: a config file must be a YAML mapping of sections", ld.source);
        }
        char abs_path[CFG_PATH * 2];
        path_join(abs_path, sizeof abs_path, cwd, path ? path : "");
        if (path && (!copy_string(cfg->source_path, sizeof cfg->source_path, abs_path) ||
                     !copy_string(ld.base_dir, sizeof ld.base_dir, abs_path))) {
            config_free(cfg);
            return sm_fail(SM_ERR_USAGE, "%s: config path too long", path);
        }
        if (path) {
            char *slash = strrchr(ld.base_dir, '/');
            if (slash) *slash = '\0';
        } else {
            snprintf(ld.base_dir, sizeof ld.base_dir, "%s", cwd);
        }
        st = walk(&ld, root, "");
        if (st) {
            config_free(cfg);
            return st;
        }
    }
    if (n_overrides > 0) {
        /* Overrides are checked on their own tree so their paths resolve from the working directory. */
        ynode *ov_root = yaml_tree_new(YNODE_MAP, NULL, NULL, 0);
        for (int i = 0; i < n_overrides && st == SM_OK; i++) st = apply_override(ov_root, overrides[i], i);
        snprintf(ld.base_dir, sizeof ld.base_dir, "%s", cwd);
        if (st == SM_OK) st = walk(&ld, ov_root, "");
        yaml_tree_free(ov_root);
        if (st) {
            config_free(cfg);
            return st;
        }
    }
    *out = cfg;
    return SM_OK;
}

void config_free(sm_config *cfg)
{
    if (!cfg) return;
    free(cfg->is_set);
    free(cfg);
}

int config_is_set(const sm_config *cfg, const char *key)
{
    int index;
    return schema_find(key, &index) ? cfg->is_set[index] : 0;
}

int config_require(const sm_config *cfg, const char *prefix)
{
    size_t n = strlen(prefix);
    for (int i = 0; i < config_schema_len; i++) {
        const cfg_key *k = &config_schema[i];
        if (!(k->flags & CFG_F_REQUIRED) || cfg->is_set[i]) continue;
        if (n && strncmp(k->key, prefix, n) != 0) continue;
        return sm_fail(SM_ERR_USAGE, "%s: missing required key '%s' (%s) — set it in the config or as %s=...",
                       cfg->source_path[0] ? cfg->source_path : "config", k->key, k->doc, k->key);
    }
    return SM_OK;
}

/* ---------------------------------------------------------------- printing */

typedef struct {
    char *buf;
    size_t len, cap;
} strbuf;

static void sb_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *sb, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = sb->cap - sb->len;
        int n = vsnprintf(sb->buf ? sb->buf + sb->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < room) {
            sb->len += (size_t)n;
            return;
        }
        size_t cap = sb->cap ? sb->cap * 2 : 4096;
        while (cap - sb->len <= (size_t)n) cap *= 2;
        char *grown = realloc(sb->buf, cap);
        if (!grown) abort(); /* out of memory while printing a config */
        sb->buf = grown;
        sb->cap = cap;
    }
}

static void sb_quoted(strbuf *sb, const char *s)
{
    sb_printf(sb, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            sb_printf(sb, "\\%c", *s);
        else if (*s == '\n')
            sb_printf(sb, "\\n");
        else
            sb_printf(sb, "%c", *s);
    }
    sb_printf(sb, "\"");
}

/* Shortest %g form that reads back to the same double. */
static void sb_double(strbuf *sb, double v)
{
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    if (!strpbrk(tmp, ".eEn")) strcat(tmp, ".0");
    sb_printf(sb, "%s", tmp);
}

static void print_value(strbuf *sb, const sm_config *cfg, const cfg_key *k, int index)
{
    const void *field = field_cptr(cfg, k);
    if ((k->flags & CFG_F_REQUIRED) && !cfg->is_set[index]) {
        sb_printf(sb, REQUIRED_MARK);
        return;
    }
    switch (k->type) {
    case CFG_T_INT:
        sb_printf(sb, "%ld", k->size == sizeof(long) ? *(const long *)field : (long)*(const int *)field);
        break;
    case CFG_T_FLOAT: {
        double v = *(const double *)field;
        if (isnan(v))
            sb_printf(sb, "null");
        else
            sb_double(sb, v);
        break;
    }
    case CFG_T_BOOL:
        sb_printf(sb, "%s", *(const int *)field ? "true" : "false");
        break;
    case CFG_T_STRING:
    case CFG_T_ENUM:
    case CFG_T_PATH:
        sb_quoted(sb, field);
        break;
    case CFG_T_STRLIST:
    case CFG_T_PATHLIST: {
        const cfg_strlist *list = field;
        sb_printf(sb, "[");
        for (int i = 0; i < list->n; i++) {
            if (i) sb_printf(sb, ", ");
            sb_quoted(sb, list->items[i]);
        }
        sb_printf(sb, "]");
        break;
    }
    case CFG_T_NUMLIST: {
        const cfg_numlist *list = field;
        sb_printf(sb, "[");
        for (int i = 0; i < list->n; i++) {
            if (i) sb_printf(sb, ", ");
            double v = list->items[i];
            if (v == floor(v) && fabs(v) < 1e15)
                sb_printf(sb, "%.0f", v);
            else
                sb_double(sb, v);
        }
        sb_printf(sb, "]");
        break;
    }
    }
}

/* Splits "a.b.c" into components; returns the count. */
static int split_key(const char *key, char parts[][64], int max)
{
    int n = 0;
    const char *p = key;
    while (*p && n < max) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        snprintf(parts[n++], 64, "%.*s", (int)len, p);
        if (!dot) break;
        p = dot + 1;
    }
    return n;
}

char *config_to_yaml(const sm_config *cfg)
{
    strbuf sb = {0};
    sb_printf(&sb, "# smoecast %s resolved config\n", SMOECAST_VERSION);
    char prev[8][64];
    int n_prev = 0;
    for (int i = 0; i < config_schema_len; i++) {
        const cfg_key *k = &config_schema[i];
        char parts[8][64];
        int n = split_key(k->key, parts, 8);
        int common = 0;
        while (common < n - 1 && common < n_prev - 1 && !strcmp(parts[common], prev[common])) common++;
        for (int d = common; d < n - 1; d++) sb_printf(&sb, "%*s%s:\n", 2 * d, "", parts[d]);
        sb_printf(&sb, "%*s%s: ", 2 * (n - 1), "", parts[n - 1]);
        print_value(&sb, cfg, k, i);
        sb_printf(&sb, "\n");
        memcpy(prev, parts, sizeof parts);
        n_prev = n;
    }
    return sb.buf;
}

static const char *type_name(cfg_type t)
{
    switch (t) {
    case CFG_T_INT: return "int";
    case CFG_T_FLOAT: return "float";
    case CFG_T_BOOL: return "bool";
    case CFG_T_STRING: return "string";
    case CFG_T_ENUM: return "enum";
    case CFG_T_PATH: return "path";
    case CFG_T_STRLIST: return "list of strings";
    case CFG_T_PATHLIST: return "list of paths";
    case CFG_T_NUMLIST: return "list of numbers";
    }
    return "?";
}

char *config_doc_markdown(void)
{
    strbuf sb = {0};
    sb_printf(&sb, "# Configuration keys\n\n"
                   "Generated by `smoecast config --doc` from the schema in `src/core/config_schema.c`;\n"
                   "a test keeps this file in sync. Configs are YAML; every key can be overridden on the\n"
                   "command line as `key.sub=value` after the command. Relative paths resolve from the\n"
                   "config file's directory (from the working directory for overrides). `???` marks a\n"
                   "required key without default. Unknown keys are errors.\n\n"
                   "MoE keys say which gate family they apply to: [SMoE] for `model.moe.gate` latent, conv,\n"
                   "conv1x1 (the Spatial MoE layer); [point] for softmax_topk, laplace, hmoe, attention (the\n"
                   "point-gated layer; [hmoe] and [attention] for those gates only); [both] for either.\n"
                   "See docs/moe.md for the methods.\n");
    char section[64] = "";
    for (int i = 0; i < config_schema_len; i++) {
        const cfg_key *k = &config_schema[i];
        char parts[8][64];
        split_key(k->key, parts, 8);
        if (strcmp(parts[0], section) != 0) {
            snprintf(section, sizeof section, "%s", parts[0]);
            sb_printf(&sb, "\n## %s\n\n| key | type | default | meaning |\n|---|---|---|---|\n", section);
        }
        char type[160];
        if (k->type == CFG_T_ENUM)
            snprintf(type, sizeof type, "one of `%s`", k->choices);
        else
            snprintf(type, sizeof type, "%s", type_name(k->type));
        for (char *p = type; *p; p++)
            if (*p == '|') *p = ',';
        sb_printf(&sb, "| `%s` | %s | `%s` | %s |\n", k->key, type, k->def, k->doc);
    }
    return sb.buf;
}
