/* listener.h: the daemon's listening sockets. Each configured listener has
 * its own address and its own TLS context (certificate, key, client CA,
 * CRLs), or is plaintext. Accepting is our own accept4 loop on a uv_poll
 * handle rather than libuv's, because libuv sheds connections silently when
 * the process runs out of file descriptors: here an EMFILE/ENFILE episode
 * is logged when it starts and when it ends, and the pending connections
 * are shed through a reserve descriptor so the loop never spins. While the
 * connections that have not said Hello fill their budget
 * (limits.pre_auth_max_connections) and the oldest of them is young, the
 * listener stops accepting and newcomers wait in the kernel's backlog:
 * a burst of reconnects is served in turn instead of each newcomer closing
 * a handshake about to finish. */
#ifndef DLG_LISTENER_H
#define DLG_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

struct dlg_server;

/* What one listener is made from (config listen[], or the command line).
 * Strings are borrowed and must outlive the listener. */
typedef struct dlg_listener_conf {
    const char *address;         /* "host:port"; port 0 = any free port */
    int plaintext;               /* 1 = no TLS (benchmarks only; insecure) */
    const char *cert_file;       /* PEM chain (TLS) */
    const char *key_file;        /* PEM key (TLS) */
    const char *client_ca_file;  /* ask for client certificates, verify with it */
    const char *client_crl_file; /* CRLs for them (tlsctx.h), or NULL */
    int require_client_cert;     /* refuse the handshake without one */
    const char *ticket_key_file; /* 80 bytes encrypting TLS session tickets
                                    (tlsctx.h); NULL = no tickets */
    /* The admin listener (config admin): HTTP/1.1 only, whatever ALPN or the
     * first bytes say; GET/HEAD of the admin paths go to srv->up.admin,
     * everything else is 404 (http.c). */
    int admin;
    const char *token;           /* admin: the bearer token every request must carry;
                                    NULL = none asked */
} dlg_listener_conf;

typedef struct dlg_listener {
    struct dlg_server *srv;
    dlg_listener_conf conf;
    size_t index;                /* in srv->listeners */
    int fd;                      /* -1 = not listening */
    int port;                    /* the bound port */
    uv_poll_t poll;
    int polling;                 /* poll initialised (must be closed) */
    /* Accepting paused while the pre-auth budget is full of young
     * handshakes (listener.c): the timer looks again every millisecond. */
    uv_timer_t resume;
    int resume_ok;               /* timer initialised (must be closed) */
    int paused;
    SSL_CTX *ssl_ctx;            /* owned; NULL = plaintext */
} dlg_listener;

/* Binds and listens on l->conf.address and starts accepting on the
 * server's loop; l->ssl_ctx must be set already for a TLS listener (or
 * NULL for a plaintext one). Returns 0, or a DLG_E* code with err naming
 * the address and the reason. */
int dlg_listener_start(dlg_listener *l, char *err, size_t errlen);

/* Stops accepting and closes the socket (the poll handle closes on the
 * loop). Safe to call twice and on a listener that never started. */
void dlg_listener_stop(dlg_listener *l);

/* Frees the TLS context. After dlg_listener_stop and the loop's run. */
void dlg_listener_free(dlg_listener *l);

/* Opens the reserve descriptor that an EMFILE episode spends to shed
 * pending connections (one per server). Returns it, or -1. */
int dlg_listener_reserve_fd(void);

#endif
