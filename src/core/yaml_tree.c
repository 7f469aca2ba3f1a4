/* libyaml event stream -> ynode tree. Anchors/aliases are rejected: configs do not need them. */
#include "core/yaml_tree.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

ynode *yaml_tree_new(ynode_kind kind, const char *key, const char *value, int line)
{
    ynode *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->line = line;
    n->key = dup_or_null(key);
    n->value = dup_or_null(value);
    return n;
}

void yaml_tree_append(ynode *parent, ynode *child)
{
    ynode **items = realloc(parent->items, (parent->n_items + 1) * sizeof *items);
    if (!items) abort(); /* out of memory while building a config tree: nothing sensible to do */
    parent->items = items;
    parent->items[parent->n_items++] = child;
}

void yaml_tree_free(ynode *node)
{
    if (!node) return;
    for (size_t i = 0; i < node->n_items; i++) yaml_tree_free(node->items[i]);
    free(node->items);
    free(node->key);
    free(node->value);
    free(node);
}

ynode *yaml_tree_get(const ynode *map, const char *key)
{
    if (!map || map->kind != YNODE_MAP) return NULL;
    for (size_t i = 0; i < map->n_items; i++)
        if (strcmp(map->items[i]->key, key) == 0) return map->items[i];
    return NULL;
}

void yaml_tree_remove(ynode *map, const char *key)
{
    if (!map || map->kind != YNODE_MAP) return;
    for (size_t i = 0; i < map->n_items; i++) {
        if (strcmp(map->items[i]->key, key) != 0) continue;
        yaml_tree_free(map->items[i]);
        memmove(map->items + i, map->items + i + 1, (map->n_items - i - 1) * sizeof *map->items);
        map->n_items--;
        return;
    }
}

typedef struct {
    yaml_parser_t parser;
    const char *name;
} tree_parser;

static int parse_error(tree_parser *p, int line, const char *what)
{
    return sm_fail(SM_ERR_USAGE, "%s:%d: %s", p->name, line, what);
}

/* Parses the node whose first event is `ev` (already consumed); returns NULL on error. */
static ynode *parse_node(tree_parser *p, yaml_event_t *ev, const char *key);

static int next_event(tree_parser *p, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&p->parser, ev)) {
        char msg[256];
        snprintf(msg, sizeof msg, "invalid YAML: %s", p->parser.problem ? p->parser.problem : "syntax error");
        parse_error(p, (int)p->parser.problem_mark.line + 1, msg);
        return 0;
    }
    return 1;
}

static ynode *parse_children(tree_parser *p, ynode *node, yaml_event_type_t end_type)
{
    for (;;) {
        yaml_event_t ev;
        if (!next_event(p, &ev)) goto fail;
        if (ev.type == end_type) {
            yaml_event_delete(&ev);
            return node;
        }
        char *key = NULL;
        int key_line = 0;
        if (node->kind == YNODE_MAP) {
            if (ev.type != YAML_SCALAR_EVENT) {
                parse_error(p, (int)ev.start_mark.line + 1, "mapping keys must be plain scalars");
                yaml_event_delete(&ev);
                goto fail;
            }
            key = strdup((const char *)ev.data.scalar.value);
            int line = (int)ev.start_mark.line + 1;
            key_line = line;
            yaml_event_delete(&ev);
            if (yaml_tree_get(node, key)) {
                char msg[300];
                snprintf(msg, sizeof msg, "duplicate key '%s'", key);
                parse_error(p, line, msg);
                free(key);
                goto fail;
            }
            if (!next_event(p, &ev)) {
                free(key);
                goto fail;
            }
        }
        ynode *child = parse_node(p, &ev, key);
        free(key);
        if (!child) goto fail;
        if (key_line) child->line = key_line; /* messages point at the key, not its value */
        yaml_tree_append(node, child);
    }
fail:
    yaml_tree_free(node);
    return NULL;
}

static ynode *parse_node(tree_parser *p, yaml_event_t *ev, const char *key)
{
    int line = (int)ev->start_mark.line + 1;
    ynode *node = NULL;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        node = yaml_tree_new(YNODE_SCALAR, key, (const char *)ev->data.scalar.value, line);
        node->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                       ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        yaml_event_delete(ev);
        return node;
    case YAML_MAPPING_START_EVENT:
        yaml_event_delete(ev);
        return parse_children(p, yaml_tree_new(YNODE_MAP, key, NULL, line), YAML_MAPPING_END_EVENT);
    case YAML_SEQUENCE_START_EVENT:
        yaml_event_delete(ev);
        return parse_children(p, yaml_tree_new(YNODE_SEQ, key, NULL, line), YAML_SEQUENCE_END_EVENT);
    case YAML_ALIAS_EVENT:
        yaml_event_delete(ev);
        parse_error(p, line, "YAML aliases are not supported in smoecast files");
        return NULL;
    default:
        yaml_event_delete(ev);
        parse_error(p, line, "unexpected YAML event");
        return NULL;
    }
}

static ynode *parse_document(tree_parser *p)
{
    ynode *root = NULL;
    yaml_event_t ev;
    for (;;) {
        if (!next_event(p, &ev)) goto fail;
        yaml_event_type_t type = ev.type;
        if (type == YAML_STREAM_START_EVENT || type == YAML_DOCUMENT_START_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        if (type == YAML_DOCUMENT_END_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        if (type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (root) {
            parse_error(p, (int)ev.start_mark.line + 1, "only one YAML document per file is allowed");
            yaml_event_delete(&ev);
            goto fail;
        }
        root = parse_node(p, &ev, NULL);
        if (!root) goto fail;
    }
    if (!root) root = yaml_tree_new(YNODE_MAP, NULL, NULL, 1);
    return root;
fail:
    yaml_tree_free(root);
    return NULL;
}

int yaml_tree_load_string(const char *text, const char *name, ynode **out)
{
    tree_parser p = {.name = name};
    *out = NULL;
    if (!yaml_parser_initialize(&p.parser)) return sm_fail(SM_ERR_NUMERIC, "%s: cannot initialise the YAML parser", name);
    yaml_parser_set_input_string(&p.parser, (const unsigned char *)text, strlen(text));
    *out = parse_document(&p);
    yaml_parser_delete(&p.parser);
    return *out ? SM_OK : SM_ERR_USAGE;
}

int yaml_tree_load_file(const char *path, ynode **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sm_fail(SM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    tree_parser p = {.name = path};
    if (!yaml_parser_initialize(&p.parser)) {
        fclose(f);
        return sm_fail(SM_ERR_NUMERIC, "%s: cannot initialise the YAML parser", path);
    }
    yaml_parser_set_input_file(&p.parser, f);
    *out = parse_document(&p);
    yaml_parser_delete(&p.parser);
    fclose(f);
    return *out ? SM_OK : SM_ERR_USAGE;
}
