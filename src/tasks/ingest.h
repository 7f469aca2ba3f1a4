/* `smoecast ingest` as a library task: GRIB/NetCDF inputs -> selected variables -> target grid ->
 * one dataset file (data/dataset.h). One streaming pass reads each message once (metadata,
 * selection, decode, regrid) and appends the output-grid field to an unlinked scratch file next
 * to the output, keeping a small index entry per field; then the time axis is sorted, duplicates
 * are checked (exact ones dropped with a warning, conflicting ones an error) and the dataset is
 * written in time order from the scratch file. Memory is bounded by a few fields plus the index,
 * whatever the number of messages; the scratch file needs the uncompressed size of the output. */
#ifndef SMOECAST_TASKS_INGEST_H
#define SMOECAST_TASKS_INGEST_H

typedef struct {
    const char *const *inputs;
    int n_inputs;
    const char *const *variables;    /* selectors "2t", "z:500", "129:850" */
    int n_variables;
    const char *grid;                /* "native" or a grid name / path (grid/grid.h) */
    const char *method;              /* bilinear (default), conservative, nearest */
    const char *const *categorical;  /* dataset variable names regridded with nearest */
    int n_categorical;
    int skip_bad;                    /* log and skip broken messages / all-missing fields */
    const char *output;
    const char *history;             /* command line for the history attribute, may be NULL */
    const char *config_text;         /* resolved config (YAML) to store; NULL: these options as YAML */
} ingest_options;

typedef struct {
    int n_fields;        /* fields written */
    int n_times;
    int n_members;
    int n_duplicates;    /* exact duplicates dropped */
    int n_skipped;       /* broken messages / missing fields skipped with --skip-bad */
    int n_empty_slots;   /* (variable, time, member) slots without data (left NaN) */
    double seconds_decode;  /* the pass over the inputs: hash, read, select, decode, regrid, scratch */
    double seconds_write;   /* the compressed NetCDF write (from the scratch file, in time order) */
} ingest_report;

/* The resolved options as YAML (stored in the dataset's smoecast_config). Caller frees. */
char *ingest_options_yaml(const ingest_options *opt);
int ingest_run(const ingest_options *opt, ingest_report *report);

#endif
