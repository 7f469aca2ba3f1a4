/* SHA-256 through OpenSSL (see sha256.h). The SHA256_* calls are the low-level interface that
 * OpenSSL 3 marks deprecated in favour of EVP; they need no allocation, which keeps this
 * streaming API infallible, and run the same accelerated code. */
#define OPENSSL_API_COMPAT 0x10100000L
#include "io/sha256.h"

#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

_Static_assert(sizeof(SHA256_CTX) <= sizeof(((sha256_ctx *)0)->state), "sha256_ctx too small for SHA256_CTX");

void sha256_init(sha256_ctx *c) { SHA256_Init((SHA256_CTX *)c->state); }

void sha256_update(sha256_ctx *c, const void *data, size_t len) { SHA256_Update((SHA256_CTX *)c->state, data, len); }

void sha256_final(sha256_ctx *c, unsigned char digest[32]) { SHA256_Final(digest, (SHA256_CTX *)c->state); }

int sha256_file(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f) return sm_fail(SM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    sha256_ctx c;
    sha256_init(&c);
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(&c, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return sm_fail(SM_ERR_IO, "%s: read error while hashing", path);
    unsigned char d[32];
    sha256_final(&c, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return SM_OK;
}
