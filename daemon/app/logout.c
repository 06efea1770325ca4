/* logout.c: the daemon's log destination and format (see logout.h): the
 * file and its reopening, and the JSON lines (jansson). */
#include "logout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "dlg_alloc.h"
#include "dlg_err.h"

/* Lines about one connection start "conn ID (PEER): " or "conn ID: "
 * (daemon/net): their id and peer become fields. On a match *rest is the
 * message after the prefix. */
static bool conn_prefix(const char *msg, char *id, size_t idlen, char *peer, size_t peerlen,
                        const char **rest) {
    if (strncmp(msg, "conn ", 5) != 0)
        return false;
    const char *p = msg + 5;
    size_t n = strcspn(p, " :");
    if (n == 0 || n >= idlen)
        return false;
    memcpy(id, p, n);
    id[n] = '\0';
    p += n;
    peer[0] = '\0';
    if (strncmp(p, " (", 2) == 0) {
        const char *end = strstr(p + 2, "): ");
        size_t pl = end ? (size_t)(end - (p + 2)) : 0;
        if (!end || pl == 0 || pl >= peerlen)
            return false;
        memcpy(peer, p + 2, pl);
        peer[pl] = '\0';
        *rest = end + 3;
        return true;
    }
    if (strncmp(p, ": ", 2) != 0)
        return false;
    *rest = p + 2;
    return true;
}

size_t dlg_logout_json(const char *prog, int level, const char *ts, const char *msg, char *buf,
                       size_t cap) {
    char id[64], peer[128];
    const char *rest = msg;
    bool conn = conn_prefix(msg, id, sizeof(id), peer, sizeof(peer), &rest);
    /* msg went through dlg_log_escape: valid UTF-8, which json_string
     * requires. */
    json_t *o = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", dlg_log_level_name(level), "prog",
                          prog ? prog : "dialogue");
    if (o == NULL)
        return 0;
    if ((conn && json_object_set_new(o, "conn", json_string(id)) != 0) ||
        (conn && *peer && json_object_set_new(o, "peer", json_string(peer)) != 0) ||
        json_object_set_new(o, "msg", json_string(rest)) != 0) {
        json_decref(o);
        return 0;
    }
    size_t n = json_dumpb(o, buf, cap > 0 ? cap - 1 : 0, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (n == 0 || n + 1 >= cap)
        return 0;
    buf[n++] = '\n';
    buf[n] = '\0';
    return n;
}

static void emit_json(const dlg_log *l, int level, const char *ts, const char *msg) {
    FILE *f = l->out ? l->out : stderr;
    /* The escaped message is at most 4 KiB; its JSON form a little more. */
    char buf[8192];
    size_t n = dlg_logout_json(l->prog, level, ts, msg, buf, sizeof(buf));
    if (n == 0)
        n = (size_t)snprintf(buf, sizeof(buf),
                             "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"(log line lost: out "
                             "of memory)\"}\n",
                             ts, dlg_log_level_name(level));
    /* One write of the whole line so concurrent writers do not interleave. */
    fwrite(buf, 1, n, f);
    fflush(f);
}

static int open_append(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        dlg_errf(err, errlen, "log_file %s: %s", path, strerror(errno));
    return fd;
}

int dlg_logout_open(dlg_logout *o, dlg_log *log, const char *path, bool json, char *err,
                    size_t errlen) {
    FILE *f = NULL;
    char *p = NULL;
    if (path) {
        if ((p = dlg_strdup(path)) == NULL)
            return DLG_ENOMEM;
        int fd = open_append(path, err, errlen);
        if (fd < 0) {
            free(p);
            return DLG_EIO;
        }
        if ((f = fdopen(fd, "a")) == NULL) {
            close(fd);
            free(p);
            return DLG_ENOMEM;
        }
    }
    o->path = p;
    o->f = f;
    log->out = f;
    log->emit = json ? emit_json : NULL;
    return 0;
}

int dlg_logout_reopen(dlg_logout *o, char *err, size_t errlen) {
    if (o->f == NULL)
        return DLG_ENOTFOUND;
    int fd = open_append(o->path, err, errlen);
    if (fd < 0)
        return DLG_EIO;
    /* The FILE stays; only its descriptor moves to the new file, under the
     * stream's lock: a line being written (by any thread) finishes in the
     * old file, the next one starts in the new. */
    flockfile(o->f);
    fflush(o->f);
    int rc = dup3(fd, fileno(o->f), O_CLOEXEC);
    int e = errno;
    funlockfile(o->f);
    close(fd);
    if (rc < 0) {
        dlg_errf(err, errlen, "log_file %s: %s", o->path, strerror(e));
        return DLG_EIO;
    }
    return 0;
}

void dlg_logout_close(dlg_logout *o, dlg_log *log) {
    log->out = NULL;
    log->emit = NULL;
    if (o->f)
        fclose(o->f);
    free(o->path);
    o->f = NULL;
    o->path = NULL;
}
