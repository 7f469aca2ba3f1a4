/* SHA-256 (FIPS 180-4) of files, for the provenance of every input a dataset was made from.
 * A thin layer over OpenSSL's libcrypto (hardware SHA extensions where the CPU has them). */
#ifndef SMOECAST_IO_SHA256_H
#define SMOECAST_IO_SHA256_H

#include <stddef.h>

/* Streaming state; the opaque buffer holds OpenSSL's SHA256_CTX (112 bytes in OpenSSL 1.1 and 3),
 * so callers keep it on the stack and nothing needs freeing. */
typedef struct {
    _Alignas(8) unsigned char state[128];
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, unsigned char digest[32]);
/* hex[65] receives the lowercase hex digest of the file; SM_ERR_IO naming `path` on failure. */
int sha256_file(const char *path, char hex[65]);

#endif
