/* listener.c: listening sockets and the accept loop (see listener.h). */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "dlg_err.h"
#include "server.h"

/* Connections taken per readable event: others wait for the next turn,
 * so a flood of connects cannot hold the loop. */
#define DLG_ACCEPT_BATCH 64
/* Pending connections the kernel keeps for us (capped by
 * net.core.somaxconn): a reconnect storm waits there while the pre-auth
 * budget is full. */
#define DLG_LISTEN_BACKLOG 4096
/* The pre-auth budget makes room by closing its oldest connection only
 * when that one has waited this long (or half the handshake timeout, if
 * less): a slow or silent client still gives way to newcomers, but a
 * handshake in progress is not closed for one that came after it. */
#define DLG_PRE_AUTH_KEEP_MS 1000

static int parse_addr(const char *spec, struct sockaddr_storage *ss) {
    char host[128];
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon == spec || (size_t)(colon - spec) >= sizeof(host))
        return DLG_EINVAL;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (*end || errno || port < 0 || port > 65535 || colon[1] == 0)
        return DLG_EINVAL;
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 3 || host[n - 1] != ']')
            return DLG_EINVAL;
        host[n - 1] = 0;
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) == 0 ? 0 : DLG_EINVAL;
    }
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 ? 0 : DLG_EINVAL;
}

int dlg_listener_reserve_fd(void) {
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Out of descriptors: the pending connections cannot be taken, and a
 * level-triggered poll would report them again at once. The reserve
 * descriptor is given up to accept and close them (the clients see a
 * reset, not a hang), then taken back. The episode is logged when it
 * starts and when the next accept works. */
static void shed(dlg_listener *l, int err) {
    dlg_server *s = l->srv;
    if (!s->emfile_active) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        s->emfile_active = 1;
        s->emfile_refused = 0;
        dlg_log_warn(&s->log, "accept failed on %s: %s (descriptor limit %llu, %u connections "
                              "open): refusing new connections until some close",
                     l->conf.address, strerror(err), (unsigned long long)rl.rlim_cur,
                     s->n_conns);
    }
    if (s->reserve_open) {
        close(s->reserve_fd);
        s->reserve_open = 0;
    }
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        close(fd);
        s->emfile_refused++;
        s->counters.conns_refused++;
        s->counters.hs_failed[DLG_HSF_FULL]++;
    }
    s->reserve_fd = dlg_listener_reserve_fd();
    s->reserve_open = s->reserve_fd >= 0;
}

/* Whether the connections before Welcome fill their budget and the oldest
 * of them is too young to be closed for a newcomer (conn.c would close it
 * to make room): then the newcomer had better wait in the backlog. In a
 * reconnect storm every closed handshake is CPU spent for nothing, and its
 * client comes back later, after a backoff. */
static int pre_auth_full_of_young(const dlg_server *s) {
    uint32_t budget = s->opts.pre_auth_max_connections;
    if (budget > s->opts.max_connections)
        budget = s->opts.max_connections;
    if (s->n_pre_auth < budget || s->pre_head == NULL)
        return 0;
    uint64_t keep = s->opts.handshake_timeout_ms / 2;
    if (keep > DLG_PRE_AUTH_KEEP_MS)
        keep = DLG_PRE_AUTH_KEEP_MS;
    return uv_now(s->loop) - s->pre_head->born_ms < keep;
}

static void on_readable(uv_poll_t *h, int status, int events);

static void on_resume(uv_timer_t *t) {
    dlg_listener *l = t->data;
    if (!l->paused || pre_auth_full_of_young(l->srv))
        return;
    l->paused = 0;
    uv_timer_stop(&l->resume);
    if (l->polling && uv_poll_start(&l->poll, UV_READABLE, on_readable) != 0)
        l->srv->accept_errors++; /* logged once a second by the sweep */
}

/* Stops accepting until on_resume finds room (the poll is level-triggered:
 * left on, it would report the backlog at every turn). */
static void pause_accepting(dlg_listener *l) {
    if (l->paused || !l->resume_ok)
        return;
    l->paused = 1;
    uv_poll_stop(&l->poll);
    uv_timer_start(&l->resume, on_resume, 1, 1);
}

static void on_readable(uv_poll_t *h, int status, int events) {
    dlg_listener *l = h->data;
    dlg_server *s = l->srv;
    (void)events;
    if (status < 0)
        return;
    for (int i = 0; i < DLG_ACCEPT_BATCH; i++) {
        if (pre_auth_full_of_young(s)) {
            pause_accepting(l);
            return;
        }
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                shed(l, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                s->accept_errors++; /* logged once a second by the sweep */
            return;
        }
        if (s->emfile_active) {
            s->emfile_active = 0;
            dlg_log_info(&s->log, "accepting again on %s: %llu connection(s) refused while out "
                                  "of file descriptors", l->conf.address,
                         (unsigned long long)s->emfile_refused);
        }
        dlg_conn_accept(l, fd);
    }
}

int dlg_listener_start(dlg_listener *l, char *err, size_t errlen) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    l->fd = -1;
    if (parse_addr(l->conf.address, &ss) != 0) {
        snprintf(err, errlen, "listen address \"%s\" is not HOST:PORT", l->conf.address);
        return DLG_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    socklen_t sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                            : sizeof(struct sockaddr_in);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (ss.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, DLG_LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", l->conf.address, strerror(errno));
        if (fd >= 0)
            close(fd);
        return DLG_EIO;
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    getsockname(fd, (struct sockaddr *)&bound, &bl);
    l->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    l->paused = 0;
    l->resume_ok = uv_timer_init(l->srv->loop, &l->resume) == 0;
    l->resume.data = l;
    int r = uv_poll_init_socket(l->srv->loop, &l->poll, fd);
    if (r == 0) {
        l->polling = 1;
        l->poll.data = l;
        r = uv_poll_start(&l->poll, UV_READABLE, on_readable);
    }
    l->fd = fd;
    if (r != 0) {
        snprintf(err, errlen, "cannot poll %s: %s", l->conf.address, uv_strerror(r));
        dlg_listener_stop(l);
        return DLG_EIO;
    }
    return 0;
}

void dlg_listener_stop(dlg_listener *l) {
    if (l->resume_ok) {
        uv_close((uv_handle_t *)&l->resume, NULL);
        l->resume_ok = 0;
        l->paused = 0;
    }
    if (l->polling) {
        uv_poll_stop(&l->poll);
        uv_close((uv_handle_t *)&l->poll, NULL);
        l->polling = 0;
    }
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
}

void dlg_listener_free(dlg_listener *l) {
    SSL_CTX_free(l->ssl_ctx);
    l->ssl_ctx = NULL;
}
