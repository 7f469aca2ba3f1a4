/* A YAML document as a small tree (maps, sequences, scalars) with line numbers, built with
 * libyaml. Used by the config loader, grid definitions and anything else that reads YAML. */
#ifndef SMOECAST_CORE_YAML_TREE_H
#define SMOECAST_CORE_YAML_TREE_H

#include <stddef.h>

typedef enum { YNODE_SCALAR, YNODE_MAP, YNODE_SEQ } ynode_kind;

typedef struct ynode {
    ynode_kind kind;
    int line;                 /* 1-based line in the source document */
    int quoted;               /* scalar was written in quotes (so "null" is a string) */
    char *key;                /* key in the parent map, NULL for sequence items/root */
    char *value;              /* scalar text (NULL for maps and sequences) */
    struct ynode **items;     /* children of a map or sequence, in document order */
    size_t n_items;
} ynode;

/* Parse a file / a string into *out. Returns SM_OK, SM_ERR_IO (cannot read) or SM_ERR_USAGE
 * (invalid YAML) with "name:line: message". An empty document yields an empty map. */
int yaml_tree_load_file(const char *path, ynode **out);
int yaml_tree_load_string(const char *text, const char *name, ynode **out);
void yaml_tree_free(ynode *node);

ynode *yaml_tree_get(const ynode *map, const char *key); /* direct child of a map, or NULL */
ynode *yaml_tree_new(ynode_kind kind, const char *key, const char *value, int line);
void yaml_tree_append(ynode *parent, ynode *child);
void yaml_tree_remove(ynode *map, const char *key);      /* frees the child if present */

#endif
