/* tasks/plot_gmt: drawing a field built in memory (the way `smoecast experts` uses the API),
 * the reported and actual PNG size, failures that leave nothing behind. Without GMT the
 * program only checks that the reader side still works. */
#include "testutil.h"
#include "core/log.h"
#include "tasks/plot_read.h"
#ifdef SMOECAST_HAVE_GMT
#include "tasks/plot_gmt.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef SMOECAST_HAVE_GMT
/* GMT 6.4 leaks a few strings it duplicates internally: use the committed suppressions. */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "suppressions=" SMOECAST_SOURCE_DIR "/tests/lsan_gmt.supp:print_suppressions=0"; }

/* A 3-expert map on a global 16 x 32 cell-centre grid: expert = longitude band. */
static void make_field(plot_field *f, int categorical)
{
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "memory");
    snprintf(f->var, sizeof f->var, "expert_map");
    f->kind = PLOT_GRID_GEO;
    f->nx = 32, f->ny = 16;
    f->x = malloc(sizeof(double) * f->nx);
    f->y = malloc(sizeof(double) * f->ny);
    f->data = malloc(sizeof(float) * f->nx * f->ny);
    assert_non_null(f->x);
    assert_non_null(f->y);
    assert_non_null(f->data);
    for (size_t i = 0; i < f->nx; i++) f->x[i] = 5.625 + 11.25 * (double)i;
    for (size_t j = 0; j < f->ny; j++) f->y[j] = -84.375 + 11.25 * (double)j;
    f->periodic_x = 1;
    for (size_t j = 0; j < f->ny; j++)
        for (size_t i = 0; i < f->nx; i++) f->data[j * f->nx + i] = categorical ? (float)(i * 3 / f->nx) : (float)sin(0.2 * (double)(i + j));
    if (categorical) {
        f->categorical = 1;
        f->n_categories = 3;
        for (int c = 0; c < 3; c++) {
            f->cat_values[c] = c;
            snprintf(f->cat_labels[c], sizeof f->cat_labels[c], "expert_%d", c);
        }
    }
}

static void png_size(const char *path, int *w, int *h)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    unsigned char b[24];
    assert_int_equal(fread(b, 1, 24, fp), 24);
    fclose(fp);
    assert_memory_equal(b, "\x89PNG\r\n\x1a\n", 8);
    assert_memory_equal(b + 12, "IHDR", 4);
    *w = (b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19];
    *h = (b[20] << 24) | (b[21] << 16) | (b[22] << 8) | b[23];
}

static void test_in_memory(void **state)
{
    (void)state;
    char dir[256], out[512];
    testutil_tmpdir("plot_gmt", dir, sizeof dir);
    snprintf(out, sizeof out, "%s/experts.png", dir);
    plot_field f;
    make_field(&f, 1);
    plot_style s;
    plot_style_default(&s);
    s.width_cm = 12;
    s.height_cm = 8;
    s.dpi = 90;
    s.title = "expert map (in memory)";
    int w = 0, h = 0;
    assert_int_equal(plot_field_png(&f, &s, out, &w, &h), 0);
    assert_int_equal(w, plot_png_pixels(12, 90));
    assert_int_equal(h, plot_png_pixels(8, 90));
    int fw, fh;
    png_size(out, &fw, &fh);
    assert_int_equal(fw, w);
    assert_int_equal(fh, h);
    plot_field_free(&f);

    /* a continuous field with the default style; symmetric colours */
    make_field(&f, 0);
    s.symmetric = 1;
    s.title = NULL;
    assert_int_equal(plot_field_png(&f, &s, out, &w, &h), 0);
    assert_int_equal(w, plot_png_pixels(12, 90));

    /* nothing valid to draw: error, the previous PNG stays as it was, no temporary files */
    for (size_t k = 0; k < f.nx * f.ny; k++) f.data[k] = NAN;
    assert_int_equal(plot_field_png(&f, &s, out, NULL, NULL), SM_ERR_NUMERIC);
    assert_non_null(strstr(sm_last_error(), "no valid value"));
    png_size(out, &fw, &fh);
    assert_int_equal(fw, w);
    /* an uneven grid is refused before GMT runs */
    for (size_t k = 0; k < f.nx * f.ny; k++) f.data[k] = 1;
    f.x[3] += 4.0;
    f.periodic_x = 0;
    assert_int_equal(plot_field_png(&f, &s, out, NULL, NULL), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "not evenly spaced"));
    f.x[3] -= 4.0;
    /* unwritable output: nothing created */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/missing_dir/x.png", dir);
    assert_int_equal(plot_field_png(&f, &s, bad, NULL, NULL), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "does not exist"));
    assert_int_not_equal(access(bad, F_OK), 0);
    plot_field_free(&f);

    char cmd[700];
    snprintf(cmd, sizeof cmd, "test \"$(ls -A '%s')\" = experts.png", dir);
    assert_int_equal(system(cmd), 0);
}
#else
static void test_in_memory(void **state)
{
    (void)state;
    /* nothing to draw with in a build without GMT (test_plot.sh checks the CLI message) */
    print_message("built without GMT: plot_field_png does not exist\n");
    skip();
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
