/* opts.c: client options (defaults, validation, the owned copy) and the TLS
 * client context built from them. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "client_int.h"
#include "dlg_err.h"

void dlg_client_opts_init(dlg_client_opts *o) {
    memset(o, 0, sizeof(*o));
    o->reconnect = 1;
    o->backoff_min_ms = 100;
    o->backoff_max_ms = 30000;
    o->backoff_jitter = 0.2;
    o->connect_timeout_ms = 10000;
    o->request_timeout_ms = 10000;
    o->max_frame = DLG_FRAME_DEFAULT_MAX;
    o->offline_queue = 0;
    o->max_pending = 4096;
    o->log_level = -1;
}


static int check(const dlg_client_opts *o, char *err, size_t errlen) {
    if (o->host == NULL || o->host[0] == 0) {
        dlg_errf(err, errlen, "host: missing");
        return DLG_EINVAL;
    }
    if (strlen(o->host) > 253 || strpbrk(o->host, " \t\r\n/") != NULL) {
        dlg_errf(err, errlen, "host: \"%s\" is not a host name or address",
               o->host);
        return DLG_EINVAL;
    }
    if (o->port == 0 || o->port > 65535) {
        dlg_errf(err, errlen, "port: %u is not in 1..65535", o->port);
        return DLG_EINVAL;
    }
    if ((o->cert_file == NULL) != (o->key_file == NULL)) {
        dlg_errf(err, errlen, "%s is set but %s is not",
               o->cert_file ? "cert_file" : "key_file",
               o->cert_file ? "key_file" : "cert_file");
        return DLG_EINVAL;
    }
    if (!(o->backoff_jitter >= 0 && o->backoff_jitter <= 1)) {
        dlg_errf(err, errlen, "backoff_jitter: must be within 0..1");
        return DLG_EINVAL;
    }
    if (o->backoff_min_ms == 0 || o->backoff_min_ms > o->backoff_max_ms) {
        dlg_errf(err, errlen, "backoff_min_ms: must be 1..backoff_max_ms");
        return DLG_EINVAL;
    }
    if (o->connect_timeout_ms == 0 || o->request_timeout_ms == 0) {
        dlg_errf(err, errlen, "%s: must be above 0",
               o->connect_timeout_ms == 0 ? "connect_timeout_ms" : "request_timeout_ms");
        return DLG_EINVAL;
    }
    if (o->max_frame < 64) {
        dlg_errf(err, errlen, "max_frame: must be at least 64 bytes");
        return DLG_EINVAL;
    }
    if (o->max_pending == 0) {
        dlg_errf(err, errlen, "max_pending: must be above 0");
        return DLG_EINVAL;
    }
    if (o->log_level < -1 || o->log_level > DLG_LOG_DEBUG) {
        dlg_errf(err, errlen, "log_level: must be -1..3");
        return DLG_EINVAL;
    }
    return 0;
}

/* Names a file OpenSSL could not use; errno first, as it is clearer than
 * OpenSSL's "system library" for a missing file. */
static int file_err(const char *field, const char *path, char *err,
                    size_t errlen) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s %s: %s", field, path, strerror(errno));
        ERR_clear_error();
        return DLG_ETLS;
    }
    fclose(f);
    char why[200];
    dlg_tlsio_last_error(why, sizeof(why));
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s %s: %s", field, path, why);
    return DLG_ETLS;
}

int dlg__ssl_ctx_new(const dlg__opts *o, SSL_CTX **out, char *err,
                     size_t errlen) {
    /* Length-prefixed protocol list, as the ALPN extension carries it. */
    static const unsigned char alpn[] = "\x0a" DLG__ALPN;
    int rc = DLG_ETLS;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        dlg_errf(err, errlen, "cannot create a TLS context");
        return DLG_ENOMEM;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        goto fail_ctx;
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    if (o->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
            rc = file_err("ca_file", o->ca_file, err, errlen);
            goto fail_ctx_quiet;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        dlg_errf(err, errlen, "cannot load the system trust store");
        goto fail_ctx_quiet;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* SSL_CTX_set_alpn_protos returns 0 on success. */
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0)
        goto fail_ctx;
    if (o->cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
            rc = file_err("cert_file", o->cert_file, err, errlen);
            goto fail_ctx_quiet;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1) {
            /* OpenSSL checks the pair while loading the key. */
            if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
                dlg_errf(err, errlen, "key_file %s does not match cert_file %s",
                       o->key_file, o->cert_file);
            else
                rc = file_err("key_file", o->key_file, err, errlen);
            goto fail_ctx_quiet;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            dlg_errf(err, errlen, "key_file %s does not match cert_file %s",
                   o->key_file, o->cert_file);
            goto fail_ctx_quiet;
        }
    }
    *out = ctx;
    return 0;

fail_ctx: {
    char why[200];
    dlg_tlsio_last_error(why, sizeof(why));
    dlg_errf(err, errlen, "TLS context setup failed: %s", why);
}
fail_ctx_quiet:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return rc;
}

void dlg__opts_free(dlg__opts *o) {
    dlg__free(o->host);
    dlg__free(o->ca_file);
    dlg__free(o->cert_file);
    dlg__free(o->key_file);
    if (o->token != NULL) {
        /* The token is a credential: do not leave it in freed memory. */
        memset(o->token, 0, strlen(o->token));
        dlg__free(o->token);
    }
    dlg__free(o->client_name);
    memset(o, 0, sizeof(*o));
}

int dlg__opts_copy(const dlg_client_opts *in, dlg__opts *o, char *err,
                   size_t errlen) {
    int rc = check(in, err, errlen);
    if (rc != 0)
        return rc;
    memset(o, 0, sizeof(*o));
    o->port = in->port;
    o->reconnect = in->reconnect;
    o->backoff_min_ms = in->backoff_min_ms;
    o->backoff_max_ms = in->backoff_max_ms;
    o->backoff_jitter = in->backoff_jitter;
    o->connect_timeout_ms = in->connect_timeout_ms;
    o->request_timeout_ms = in->request_timeout_ms;
    o->max_frame = in->max_frame;
    o->offline_queue = in->offline_queue;
    o->max_pending = in->max_pending;
    o->log_level = in->log_level;
    if ((o->host = dlg__strdup(in->host)) == NULL ||
        (in->ca_file && (o->ca_file = dlg__strdup(in->ca_file)) == NULL) ||
        (in->cert_file && (o->cert_file = dlg__strdup(in->cert_file)) == NULL) ||
        (in->key_file && (o->key_file = dlg__strdup(in->key_file)) == NULL) ||
        (o->token = dlg__strdup(in->token ? in->token : "")) == NULL ||
        (o->client_name = dlg__strdup(in->client_name ? in->client_name
                                                      : "libdialogue-client")) == NULL) {
        dlg__opts_free(o);
        dlg_errf(err, errlen, "out of memory copying the options");
        return DLG_ENOMEM;
    }
    return 0;
}

int dlg_client_opts_check(const dlg_client_opts *o, char *err, size_t errlen) {
    dlg__opts copy;
    SSL_CTX *ctx = NULL;
    if (o == NULL) {
        dlg_errf(err, errlen, "options: NULL");
        return DLG_EINVAL;
    }
    int rc = dlg__opts_copy(o, &copy, err, errlen);
    if (rc != 0)
        return rc;
    rc = dlg__ssl_ctx_new(&copy, &ctx, err, errlen);
    if (rc == 0)
        SSL_CTX_free(ctx);
    dlg__opts_free(&copy);
    return rc;
}
