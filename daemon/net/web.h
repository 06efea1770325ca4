/* web.h: the web page's files, read once from a folder (config
 * http.web_root) into shared buffers and served by exact path: no file is
 * opened while serving, so no request can name one outside the folder. */
#ifndef DLG_WEB_H
#define DLG_WEB_H

#include <stddef.h>
#include <stdint.h>

#include "dlg_buf.h"

/* Limits of one folder: what a dashboard page needs, many times over. */
#define DLG_WEB_MAX_FILES 256
#define DLG_WEB_MAX_BYTES (32u << 20) /* all files together */
#define DLG_WEB_MAX_DEPTH 4

typedef struct dlg_web_file {
    char *path;        /* URL path, "/app.js"; "/" serves "/index.html" */
    const char *type;  /* Content-Type (static string) */
    dlg_buf *body;     /* one reference, owned; responses take their own */
    char etag[12];     /* "\"xxxxxxxx\"": CRC32C of the body */
} dlg_web_file;

typedef struct dlg_web {
    dlg_web_file *v;   /* sorted by path */
    size_t n;
    uint64_t bytes;
} dlg_web;

/* Reads every regular file under root (dot files, symbolic links and
 * anything deeper than DLG_WEB_MAX_DEPTH are left out) into *out, owned by
 * the caller (dlg_web_free). Returns 0, or DLG_EIO / DLG_ETOOBIG /
 * DLG_ENOMEM with err naming the file or the limit. */
int dlg_web_load(const char *root, dlg_web **out, char *err, size_t errlen);

/* The file served for a URL path of len bytes (no query; "/" and a path
 * ending in "/" mean its index.html), or NULL. Borrowed from w. */
const dlg_web_file *dlg_web_find(const dlg_web *w, const char *path, size_t len);

/* Frees w (NULL is fine). Responses that still hold a body keep it. */
void dlg_web_free(dlg_web *w);

#endif
