/* schema_check.c: test tool for tests/schema/test_schema_py.py; validates one
 * payload read from stdin against an event of the given descriptor sets.
 * Usage: schema_check [--allow-unknown] DESCSET... -- EVENT
 * Exit 0 = valid, 1 = invalid (error on stderr), 2 = usage or load error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlg_err.h"
#include "dlg_schema.h"

#define MAX_PAYLOAD (64u << 20)

static int usage(void) {
    fprintf(stderr, "usage: schema_check [--allow-unknown] DESCSET... -- EVENT < payload\n");
    return 2;
}

/* Reads all of stdin into *out (caller frees); -1 on error or over the cap. */
static int read_stdin(uint8_t **out, size_t *len) {
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return -1;
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_PAYLOAD)
                goto fail;
            uint8_t *b = realloc(buf, cap * 2);
            if (b == NULL)
                goto fail;
            buf = b;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) {
            if (ferror(stdin))
                goto fail;
            break;
        }
    }
    *out = buf;
    *len = n;
    return 0;
fail:
    free(buf);
    return -1;
}

int main(int argc, char **argv) {
    unsigned flags = 0;
    int i = 1, sep = -1;
    if (i < argc && strcmp(argv[i], "--allow-unknown") == 0) {
        flags |= DLG_SCHEMA_ALLOW_UNKNOWN;
        i++;
    }
    for (int k = i; k < argc; k++)
        if (strcmp(argv[k], "--") == 0) {
            sep = k;
            break;
        }
    if (sep < 0 || sep == i || sep + 2 != argc)
        return usage();

    char err[1024];
    int rc = 2;
    uint8_t *data = NULL;
    size_t len = 0;
    dlg_schema *s = NULL;
    if (dlg_schema_new(&s) != 0) {
        fprintf(stderr, "schema_check: out of memory\n");
        return 2;
    }
    for (int k = i; k < sep; k++)
        if (dlg_schema_load_file(s, argv[k], err, sizeof(err)) != 0) {
            fprintf(stderr, "schema_check: %s\n", err);
            goto fail;
        }
    const dlg_schema_event *ev = dlg_schema_event_find(s, argv[sep + 1]);
    if (ev == NULL) {
        fprintf(stderr, "schema_check: event %s is not in the loaded sets\n", argv[sep + 1]);
        goto fail;
    }
    if (read_stdin(&data, &len) != 0) {
        fprintf(stderr, "schema_check: cannot read stdin (or over %u MiB)\n",
                MAX_PAYLOAD >> 20);
        goto fail;
    }
    if (dlg_schema_validate(ev, data, len, flags, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        rc = 1;
        goto fail;
    }
    rc = 0;
fail:
    free(data);
    dlg_schema_free(s);
    return rc;
}
