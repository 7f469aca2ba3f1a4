/* Helpers shared by the cmocka tests: locating data, skipping, relative-error checks. */
#ifndef SMOECAST_TESTS_TESTUTIL_H
#define SMOECAST_TESTS_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Path of a file in ../shared/data, or NULL when the directory is absent. Under CI=true a
 * missing file fails the test instead of returning NULL. */
const char *testutil_shared_data(const char *name, char *buf, size_t len);
/* Skip a test (cmocka skip) unless CI=true, where it fails with `why`. */
void testutil_skip_or_fail(const char *why);
const char *testutil_source_path(const char *rel, char *buf, size_t len);
/* A fresh empty directory under the test's working directory. */
const char *testutil_tmpdir(const char *name, char *buf, size_t len);
/* ||a - b||_2 / (||b||_2 + tiny) */
double testutil_rel_l2(const float *a, const float *b, size_t n);

#endif

/* Golden files are NetCDF (tests/golden/<file>.nc, written by scripts/make_golden*.py).
 * Loads variable `var` as float (malloc'd, caller frees); fails the test if absent.
 * *n receives the number of elements; shape may be NULL or receive up to 8 dims (*ndim). */
float *testutil_golden_load(const char *file, const char *var, size_t *n, int *ndim, size_t *shape);
