/* SHA-256 (FIPS 180-4) of files, for the provenance of every input a dataset was made from. */
#ifndef SMOECAST_IO_SHA256_H
#define SMOECAST_IO_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    unsigned char buf[64];
    size_t nbuf;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, unsigned char digest[32]);
/* hex[65] receives the lowercase hex digest of the file; SM_ERR_IO naming `path` on failure. */
int sha256_file(const char *path, char hex[65]);

#endif
