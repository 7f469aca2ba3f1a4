/* Variable selectors, source-geometry helpers and SHA-256. */
#include "testutil.h"

#include "core/log.h"
#include "io/field.h"
#include "io/sha256.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void test_selectors(void **state)
{
    (void)state;
    var_selector s;
    assert_int_equal(var_selector_parse("z:500", &s), SM_OK);
    assert_string_equal(s.select, "z");
    assert_string_equal(s.out_name, "z500");
    assert_true(s.has_level && s.level == 500);
    assert_int_equal(s.param_id, 0);
    assert_int_equal(var_selector_parse("2t", &s), SM_OK);
    assert_string_equal(s.out_name, "2t");
    assert_false(s.has_level);
    assert_int_equal(var_selector_parse("129:850", &s), SM_OK);
    assert_int_equal(s.param_id, 129);
    assert_string_equal(s.out_name, "129850");
    assert_int_equal(var_selector_parse("t:0.5", &s), SM_OK);
    assert_string_equal(s.out_name, "t0_5");
    assert_int_equal(var_selector_parse("t2m=2t", &s), SM_OK);
    assert_string_equal(s.select, "2t");
    assert_string_equal(s.out_name, "t2m");
    assert_int_equal(var_selector_parse("geo=129:500", &s), SM_OK);
    assert_int_equal(s.param_id, 129);
    assert_true(s.level == 500);
    assert_string_equal(s.out_name, "geo");
    assert_int_equal(var_selector_parse("=2t", &s), SM_ERR_USAGE);
    assert_int_equal(var_selector_parse("z:abc", &s), SM_ERR_USAGE);
    assert_int_equal(var_selector_parse("", &s), SM_ERR_USAGE);
    assert_int_equal(var_selector_parse(":500", &s), SM_ERR_USAGE);

    field_meta m;
    memset(&m, 0, sizeof m);
    snprintf(m.short_name, sizeof m.short_name, "z");
    m.param_id = 129;
    m.level = 500;
    var_selector_parse("z:500", &s);
    assert_true(var_selector_match(&s, &m));
    var_selector_parse("129:500", &s);
    assert_true(var_selector_match(&s, &m));
    var_selector_parse("z:850", &s);
    assert_false(var_selector_match(&s, &m));
    var_selector_parse("130", &s);
    assert_false(var_selector_match(&s, &m));
    var_selector_parse("z", &s);
    assert_true(var_selector_match(&s, &m));
}

static void test_geometry(void **state)
{
    (void)state;
    double lat[3] = {10, 5, 0};
    src_geometry *a, *b, *c;
    assert_int_equal(io_geometry_regular(3, lat, 4, 350, 10, "regular_ll", &a), SM_OK);
    assert_int_equal(io_geometry_regular(3, lat, 4, -10, 10, "regular_ll", &b), SM_OK);
    assert_int_equal(a->row_start[3], 12);
    assert_true(a->is_regular);
    assert_true(geometry_same(a, b)); /* 350 == -10 modulo 360 */
    int len[3] = {4, 8, 4};
    double l0[3] = {0, 0, 0}, dl[3] = {90, 45, 90};
    assert_int_equal(io_geometry_rows(3, lat, len, l0, dl, "reduced_gg", &c), SM_OK);
    assert_false(c->is_regular);
    assert_int_equal(c->row_start[2], 12);
    assert_int_equal(c->row_start[3], 16);
    assert_false(geometry_same(a, c));
    assert_true(geometry_row_is_global(c, 1));
    assert_false(geometry_row_is_global(a, 0));
    assert_true(io_lon0_canonical(350, 291, 0.1) == -10);
    assert_true(io_lon0_canonical(0, 120, 3) == 0);
    assert_true(io_lon0_canonical(200, 53, 2.5) == 200);
    geometry_free(a);
    geometry_free(b);
    geometry_free(c);
}

static void hex_of(const char *text, size_t n, char out[65])
{
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, text, n);
    unsigned char d[32];
    sha256_final(&c, d);
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void test_sha256(void **state)
{
    (void)state;
    char hex[65];
    hex_of("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* incremental updates across block boundaries give the same digest */
    sha256_ctx c;
    sha256_init(&c);
    for (size_t i = 0; i < strlen(two); i += 7) sha256_update(&c, two + i, strlen(two) - i < 7 ? strlen(two) - i : 7);
    unsigned char d[32];
    sha256_final(&c, d);
    char hex2[65];
    for (int i = 0; i < 32; i++) snprintf(hex2 + 2 * i, 3, "%02x", d[i]);
    assert_string_equal(hex2, hex);
    /* file hashing, and a missing file */
    FILE *f = fopen("sha_test.txt", "wb");
    fputs("abc", f);
    fclose(f);
    assert_int_equal(sha256_file("sha_test.txt", hex), SM_OK);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    remove("sha_test.txt");
    assert_int_equal(sha256_file("no_such_file.grib", hex), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "no_such_file.grib"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_selectors), cmocka_unit_test(test_geometry), cmocka_unit_test(test_sha256)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
