/* web.c: the web page's files in memory (see web.h). */
#include "web.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dlg_alloc.h"
#include "dlg_crc32c.h"
#include "dlg_err.h"

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
    {".webmanifest", "application/manifest+json"},
};

static const char *type_of(const char *name) {
    const char *dot = strrchr(name, '.');
    if (dot != NULL)
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

typedef struct walk {
    dlg_web *w;
    size_t cap;
    char *err;
    size_t errlen;
} walk;

/* Reads the file at fd (name for messages) into a new buffer. */
static int read_all(int fd, const char *name, size_t size, dlg_buf **out, walk *k) {
    dlg_buf *b = dlg_buf_new(size);
    if (b == NULL)
        return DLG_ENOMEM;
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, b->data + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(k->err, k->errlen, "web file %s: %s", name,
                     n < 0 ? strerror(errno) : "it shrank while being read");
            dlg_buf_unref(b);
            return DLG_EIO;
        }
        got += (size_t)n;
    }
    *out = b;
    return 0;
}

static int add_file(walk *k, int dirfd, const char *name, const char *url, const char *full) {
    int rc = DLG_EIO;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(k->err, k->errlen, "web file %s: %s", full, strerror(errno));
        goto fail;
    }
    if (k->w->n == DLG_WEB_MAX_FILES) {
        snprintf(k->err, k->errlen, "web_root holds more than %d files (at %s)",
                 DLG_WEB_MAX_FILES, full);
        rc = DLG_ETOOBIG;
        goto fail;
    }
    if ((uint64_t)st.st_size > DLG_WEB_MAX_BYTES - k->w->bytes) {
        snprintf(k->err, k->errlen, "web_root holds more than %u MiB (at %s)",
                 DLG_WEB_MAX_BYTES >> 20, full);
        rc = DLG_ETOOBIG;
        goto fail;
    }
    if (k->w->n == k->cap) {
        size_t nc = k->cap ? 2 * k->cap : 16;
        dlg_web_file *nv = dlg_realloc(k->w->v, nc * sizeof(*nv));
        if (nv == NULL) {
            rc = DLG_ENOMEM;
            goto fail;
        }
        k->w->v = nv;
        k->cap = nc;
    }
    dlg_web_file *f = &k->w->v[k->w->n];
    memset(f, 0, sizeof(*f));
    if ((f->path = dlg_strdup(url)) == NULL) {
        rc = DLG_ENOMEM;
        goto fail;
    }
    if ((rc = read_all(fd, full, (size_t)st.st_size, &f->body, k)) != 0) {
        free(f->path);
        goto fail;
    }
    f->type = type_of(name);
    snprintf(f->etag, sizeof(f->etag), "\"%08x\"", dlg_crc32c(0, f->body->data, f->body->len));
    k->w->n++;
    k->w->bytes += f->body->len;
    close(fd);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Adds the files of the folder open at dirfd (URL prefix url, path full
 * for messages); takes dirfd. */
static int add_dir(walk *k, int dirfd, const char *url, const char *full, int depth) {
    DIR *d = fdopendir(dirfd);
    if (d == NULL) {
        snprintf(k->err, k->errlen, "web folder %s: %s", full, strerror(errno));
        close(dirfd);
        return DLG_EIO;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* ., .., and dot files are never served */
        char u[1024], p[4096];
        if ((size_t)snprintf(u, sizeof(u), "%s/%s", url, e->d_name) >= sizeof(u) ||
            (size_t)snprintf(p, sizeof(p), "%s/%s", full, e->d_name) >= sizeof(p))
            continue; /* a name that long is no page file */
        struct stat st;
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISREG(st.st_mode)) {
            rc = add_file(k, dirfd, e->d_name, u, p);
        } else if (S_ISDIR(st.st_mode) && depth < DLG_WEB_MAX_DEPTH) {
            int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                rc = add_dir(k, sub, u, p, depth + 1);
        }
    }
    closedir(d);
    return rc;
}

static int by_path(const void *a, const void *b) {
    return strcmp(((const dlg_web_file *)a)->path, ((const dlg_web_file *)b)->path);
}

int dlg_web_load(const char *root, dlg_web **out, char *err, size_t errlen) {
    walk k = {.err = err, .errlen = errlen};
    if ((k.w = dlg_calloc(1, sizeof(*k.w))) == NULL)
        return DLG_ENOMEM;
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "web_root %s: %s", root, strerror(errno));
        dlg_web_free(k.w);
        return DLG_EIO;
    }
    int rc = add_dir(&k, fd, "", root, 1);
    if (rc != 0) {
        dlg_web_free(k.w);
        return rc;
    }
    if (k.w->n > 1)
        qsort(k.w->v, k.w->n, sizeof(*k.w->v), by_path);
    *out = k.w;
    return 0;
}

const dlg_web_file *dlg_web_find(const dlg_web *w, const char *path, size_t len) {
    char key[1040];
    if (w == NULL || len == 0 || path[0] != '/' || len > 1024)
        return NULL;
    memcpy(key, path, len);
    key[len] = '\0';
    if (path[len - 1] == '/')
        memcpy(key + len, "index.html", 11);
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(w->v[mid].path, key);
        if (c == 0)
            return &w->v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void dlg_web_free(dlg_web *w) {
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->v[i].path);
        dlg_buf_unref(w->v[i].body);
    }
    free(w->v);
    free(w);
}
