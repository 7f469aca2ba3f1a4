/* The declaration of every config key (private to the config module). */
#ifndef SMOECAST_CORE_CONFIG_SCHEMA_H
#define SMOECAST_CORE_CONFIG_SCHEMA_H

#include <stddef.h>

typedef enum {
    CFG_T_INT,
    CFG_T_FLOAT,
    CFG_T_BOOL,
    CFG_T_STRING,
    CFG_T_ENUM,     /* a string from `choices` ("a|b|c") */
    CFG_T_PATH,     /* a string resolved relative to the config file's directory */
    CFG_T_STRLIST,
    CFG_T_PATHLIST,
    CFG_T_NUMLIST
} cfg_type;

enum { CFG_F_REQUIRED = 1, CFG_F_NULLABLE = 2 };

typedef struct {
    const char *key;      /* dotted path, e.g. "training.lr" */
    cfg_type type;
    size_t offset;        /* into sm_config */
    size_t size;          /* of the field (string capacity) */
    const char *def;      /* default as YAML text; "???" = required */
    const char *choices;  /* CFG_T_ENUM */
    double min, max;      /* numeric range (inclusive) */
    unsigned flags;
    const char *doc;
} cfg_key;

extern const cfg_key config_schema[];
extern const int config_schema_len;

#endif
