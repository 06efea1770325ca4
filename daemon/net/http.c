/* http.c: HTTP/1.1 on a listener (ALPN "http/1.1", or a TLS client that
 * offered no ALPN, or plaintext that starts like a request): the web
 * page's files from memory (web.h) and the upgrade of GET /v1/ws to a
 * WebSocket session (ws.h) that speaks dialogue's frames. On the admin
 * listener: the bearer token, then GET/HEAD answered by srv->up.admin
 * (/metrics, /healthz, /readyz), and nothing else. Requests are
 * parsed by http_parser (libhttp-parser); nothing else is served. Until
 * the upgrade, responses wait in this codec (at most DLG_HTTP_MAX_RESP;
 * their bodies are the page's shared buffers); after it, the connection's
 * queue goes out through the WebSocket session. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "conn_int.h"
#include "dlg_alloc.h"
#include "web.h"
#include "ws.h"

/* Bounds on one request before the upgrade: whatever a browser sends,
 * many times over, and far less than the budget before Welcome. */
#define DLG_HTTP_MAX_URL 1024
#define DLG_HTTP_MAX_HEADERS 8192 /* bytes of header names and values */
#define DLG_HTTP_MAX_VALUE 512    /* one header this module reads */
#define DLG_HTTP_MAX_RESP 4       /* responses waiting for the socket */

#define DLG_WS_PATH "/v1/ws"
#define DLG_WS_PROTOCOL "dialogue.v1"
#define DLG_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 1.3 */

/* The headers this module reads; every other one is only counted. */
enum { H_HOST, H_ORIGIN, H_UPGRADE, H_CONNECTION, H_WS_KEY, H_WS_VERSION, H_WS_PROTOCOL,
       H_IF_NONE_MATCH, H_AUTHORIZATION, H_N };
static const char *const hdr_names[H_N] = {
    "host", "origin", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-protocol", "if-none-match", "authorization",
};

/* One request being read: allocated for it and freed at the upgrade. */
typedef struct http_req {
    char url[DLG_HTTP_MAX_URL + 1];
    size_t url_len;
    char val[H_N][DLG_HTTP_MAX_VALUE + 1];
    size_t val_len[H_N];
    unsigned seen[H_N];
    char field[32];         /* the header name being read, lower case */
    size_t field_len;       /* > sizeof(field) - 1: a name we never read */
    int cur;                /* H_* the value being read belongs to, -1 = none */
    int in_value;
    size_t hdr_bytes;
    size_t req_bytes;       /* bytes of this request so far */
    const char *bad;        /* why it is refused (static), or NULL */
    int bad_status;
    int complete;
} http_req;

typedef struct http_resp {
    dlg_buf *head;          /* status line and headers (owned) */
    dlg_buf *body;          /* a reference to a page file, or NULL */
    size_t off;             /* bytes of head, then body, staged */
} http_resp;

typedef struct dlg_http {
    http_parser p;
    http_req *req;          /* NULL once upgraded */
    dlg_ws *ws;             /* the session after the upgrade */
    http_resp resp[DLG_HTTP_MAX_RESP];
    size_t resp_head, n_resp;
    uint64_t resp_bytes;    /* heads waiting (bodies are shared) */
} dlg_http;

static dlg_http *st(const dlg_conn *c) {
    return c->codec_st;
}

/* ---- responses ---------------------------------------------------------- */

/* What every response says, beside its own headers: the page may load
 * only its own files and talk only to its own origin. */
#define DLG_HTTP_COMMON                                                                    \
    "Server: dialogued\r\n"                                                               \
    "X-Content-Type-Options: nosniff\r\n"                                                 \
    "Referrer-Policy: no-referrer\r\n"                                                    \
    "X-Frame-Options: DENY\r\n"                                                           \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "  \
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; "    \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"

static int push_resp(dlg_conn *c, dlg_buf *head, dlg_buf *body) {
    dlg_http *h = st(c);
    if (h->n_resp == DLG_HTTP_MAX_RESP) {
        dlg_buf_unref(head);
        dlg_conn_close(c, "too many pipelined HTTP requests");
        return 1;
    }
    http_resp *r = &h->resp[(h->resp_head + h->n_resp) % DLG_HTTP_MAX_RESP];
    r->head = head;
    r->body = body ? dlg_buf_ref(body) : NULL;
    r->off = 0;
    h->n_resp++;
    h->resp_bytes += head->len;
    dlg_conn_mark_dirty(c);
    return 0;
}

static dlg_buf *make_head(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static dlg_buf *make_head(const char *fmt, ...) {
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return NULL;
    dlg_buf *b = dlg_buf_new((size_t)n);
    if (b != NULL)
        memcpy(b->data, tmp, (size_t)n);
    return b;
}

/* A refusal: status, a one-line text/plain body that says why, and the
 * connection closes after it. extra: more header lines, or "". */
static int refuse(dlg_conn *c, int status, const char *reason, const char *why,
                  const char *extra) {
    dlg_log_debug(&c->srv->log, "conn %s (%s): HTTP %d: %s", c->client_id, c->peer, status,
                  why);
    dlg_buf *head = make_head("HTTP/1.1 %d %s\r\n" DLG_HTTP_COMMON
                              "Content-Type: text/plain; charset=utf-8\r\n"
                              "Cache-Control: no-store\r\n%s"
                              "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                              status, reason, extra, strlen(why) + 1, why);
    if (head == NULL || push_resp(c, head, NULL) != 0) {
        if (head == NULL)
            dlg_conn_close(c, "out of memory");
        return 1;
    }
    dlg_conn_close_after_flush(c, "HTTP request refused");
    return 1;
}

/* ---- requests ------------------------------------------------------------ */

static int on_begin(http_parser *p) {
    http_req *q = ((dlg_http *)p->data)->req;
    size_t keep = q->req_bytes; /* counted by feed, not here */
    memset(q, 0, sizeof(*q));
    q->req_bytes = keep;
    q->cur = -1;
    return 0;
}

static int too_big(http_req *q, int status, const char *why) {
    q->bad = why;
    q->bad_status = status;
    return 1; /* stops the parser */
}

static int on_url(http_parser *p, const char *at, size_t len) {
    http_req *q = ((dlg_http *)p->data)->req;
    if (len > DLG_HTTP_MAX_URL - q->url_len)
        return too_big(q, 414, "the request target is longer than 1024 bytes");
    memcpy(q->url + q->url_len, at, len);
    q->url_len += len;
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t len) {
    http_req *q = ((dlg_http *)p->data)->req;
    if ((q->hdr_bytes += len) > DLG_HTTP_MAX_HEADERS)
        return too_big(q, 431, "the request's headers are larger than 8192 bytes");
    if (q->in_value) { /* a new header begins */
        q->in_value = 0;
        q->field_len = 0;
        q->cur = -1;
    }
    for (size_t i = 0; i < len; i++, q->field_len++)
        if (q->field_len < sizeof(q->field) - 1) {
            char ch = at[i];
            q->field[q->field_len] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        }
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t len) {
    http_req *q = ((dlg_http *)p->data)->req;
    if ((q->hdr_bytes += len) > DLG_HTTP_MAX_HEADERS)
        return too_big(q, 431, "the request's headers are larger than 8192 bytes");
    if (!q->in_value) {
        q->in_value = 1;
        q->cur = -1;
        if (q->field_len < sizeof(q->field)) {
            q->field[q->field_len] = '\0';
            for (int i = 0; i < H_N; i++)
                if (strcmp(q->field, hdr_names[i]) == 0)
                    q->cur = i;
        }
        if (q->cur >= 0) {
            /* Repeated headers are joined with ", " (RFC 9110 5.3). */
            if (q->seen[q->cur]++ && q->val_len[q->cur] + 2 <= DLG_HTTP_MAX_VALUE) {
                memcpy(q->val[q->cur] + q->val_len[q->cur], ", ", 2);
                q->val_len[q->cur] += 2;
            }
        }
    }
    if (q->cur >= 0) {
        if (len > DLG_HTTP_MAX_VALUE - q->val_len[q->cur])
            return too_big(q, 431, "a header this server reads is longer than 512 bytes");
        memcpy(q->val[q->cur] + q->val_len[q->cur], at, len);
        q->val_len[q->cur] += len;
        q->val[q->cur][q->val_len[q->cur]] = '\0';
    }
    return 0;
}

static int on_headers_done(http_parser *p) {
    http_req *q = ((dlg_http *)p->data)->req;
    /* Nothing served here takes a body. */
    if ((p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != ULLONG_MAX)) {
        too_big(q, 413, "requests with a body are not accepted");
        return -1;
    }
    return 0;
}

static int on_complete(http_parser *p) {
    http_req *q = ((dlg_http *)p->data)->req;
    q->complete = 1;
    http_parser_pause(p, 1); /* handled by feed, outside the parser */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_begin,
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_done,
    .on_message_complete = on_complete,
};

/* Whether a comma-separated header value lists token (case-insensitive). */
static int lists(const char *v, const char *token) {
    size_t tl = strlen(token);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - v) == tl && strncasecmp(v, token, tl) == 0)
            return 1;
        v = e;
    }
    return 0;
}

/* The page's own origin, a configured one, or a client that sent none (no
 * browser: browsers always send Origin on a WebSocket upgrade, and that is
 * what the check is for, cross-site WebSocket hijacking). */
static int origin_ok(dlg_conn *c, const http_req *q) {
    if (!q->seen[H_ORIGIN])
        return 1;
    const char *o = q->val[H_ORIGIN];
    const char *scheme = c->st.tls_on ? "https://" : "http://";
    size_t sl = strlen(scheme);
    if (q->seen[H_HOST] && strncasecmp(o, scheme, sl) == 0 &&
        strcasecmp(o + sl, q->val[H_HOST]) == 0)
        return 1;
    for (size_t i = 0; i < c->srv->opts.n_allowed_origins; i++)
        if (strcmp(c->srv->opts.allowed_origins[i], "*") == 0 ||
            strcasecmp(c->srv->opts.allowed_origins[i], o) == 0)
            return 1;
    return 0;
}

/* RFC 6455 4.2.1: the key is 16 random bytes in base64: 24 characters. */
static int key_ok(const http_req *q) {
    if (q->val_len[H_WS_KEY] != 24 || q->val[H_WS_KEY][22] != '=' || q->val[H_WS_KEY][23] != '=')
        return 0;
    uint8_t out[24];
    return EVP_DecodeBlock(out, (const unsigned char *)q->val[H_WS_KEY], 24) == 18;
}

static int upgrade(dlg_conn *c, http_req *q) {
    dlg_http *h = st(c);
    if (h->p.method != HTTP_GET)
        return refuse(c, 405, "Method Not Allowed", "the WebSocket endpoint takes GET",
                      "Allow: GET\r\n");
    if (!q->seen[H_UPGRADE] || !lists(q->val[H_UPGRADE], "websocket") ||
        !lists(q->val[H_CONNECTION], "upgrade"))
        return refuse(c, 426, "Upgrade Required",
                      "/v1/ws is a WebSocket endpoint: send Upgrade: websocket",
                      "Upgrade: websocket\r\n");
    if (strcmp(q->val[H_WS_VERSION], "13") != 0)
        return refuse(c, 426, "Upgrade Required",
                      "Sec-WebSocket-Version must be 13", "Sec-WebSocket-Version: 13\r\n");
    if (!key_ok(q))
        return refuse(c, 400, "Bad Request",
                      "Sec-WebSocket-Key must be 16 bytes in base64 (24 characters)", "");
    if (!lists(q->val[H_WS_PROTOCOL], DLG_WS_PROTOCOL))
        return refuse(c, 400, "Bad Request",
                      "Sec-WebSocket-Protocol must offer " DLG_WS_PROTOCOL, "");
    if (!origin_ok(c, q)) {
        dlg_log_info(&c->srv->log, "conn %s (%s): WebSocket refused: origin %s is not allowed "
                                   "(allowed_origins)", c->client_id, c->peer,
                     q->val[H_ORIGIN]);
        return refuse(c, 403, "Forbidden",
                      "this origin may not open a WebSocket here (allowed_origins)", "");
    }
    unsigned char md[SHA_DIGEST_LENGTH];
    char accept[32];
    char kg[24 + sizeof(DLG_WS_GUID)];
    memcpy(kg, q->val[H_WS_KEY], 24);
    memcpy(kg + 24, DLG_WS_GUID, sizeof(DLG_WS_GUID) - 1);
    SHA1((const unsigned char *)kg, 24 + sizeof(DLG_WS_GUID) - 1, md);
    EVP_EncodeBlock((unsigned char *)accept, md, SHA_DIGEST_LENGTH);
    dlg_buf *head = make_head("HTTP/1.1 101 Switching Protocols\r\nServer: dialogued\r\n"
                              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: %s\r\n"
                              "Sec-WebSocket-Protocol: " DLG_WS_PROTOCOL "\r\n\r\n",
                              accept);
    if (head == NULL || (h->ws = dlg_ws_new(c)) == NULL) {
        dlg_buf_unref(head);
        dlg_conn_close(c, "out of memory");
        return 1;
    }
    if (push_resp(c, head, NULL) != 0)
        return 1;
    dlg_log_debug(&c->srv->log, "conn %s (%s): WebSocket session (origin %s)", c->client_id,
                  c->peer, q->seen[H_ORIGIN] ? q->val[H_ORIGIN] : "none");
    /* The WebSocket's Hello gets the whole budget before Welcome. */
    c->in_bytes -= q->req_bytes < c->in_bytes ? q->req_bytes : c->in_bytes;
    free(h->req);
    h->req = NULL;
    return 0;
}

static int serve(dlg_conn *c, http_req *q) {
    dlg_http *h = st(c);
    if (h->p.method != HTTP_GET && h->p.method != HTTP_HEAD)
        return refuse(c, 405, "Method Not Allowed", "only GET and HEAD are served",
                      "Allow: GET, HEAD\r\n");
    size_t plen = q->url_len;
    const char *qm = memchr(q->url, '?', plen);
    if (qm != NULL)
        plen = (size_t)(qm - q->url);
    const dlg_web_file *f = dlg_web_find(c->srv->web, q->url, plen);
    if (f == NULL)
        return refuse(c, 404, "Not Found", "no such page", "");
    int keep = http_should_keep_alive(&h->p);
    int fresh = q->seen[H_IF_NONE_MATCH] && lists(q->val[H_IF_NONE_MATCH], f->etag);
    int with_body = !fresh && h->p.method == HTTP_GET;
    dlg_buf *head =
        make_head("HTTP/1.1 %s\r\n" DLG_HTTP_COMMON "Content-Type: %s\r\n"
                  "Cache-Control: no-cache\r\nETag: %s\r\nContent-Length: %zu\r\n"
                  "Connection: %s\r\n\r\n",
                  fresh ? "304 Not Modified" : "200 OK", f->type, f->etag,
                  fresh ? (size_t)0 : f->body->len, keep ? "keep-alive" : "close");
    if (head == NULL) {
        dlg_conn_close(c, "out of memory");
        return 1;
    }
    if (push_resp(c, head, with_body ? f->body : NULL) != 0)
        return 1;
    /* A request that was answered no longer counts against the budget
     * before Welcome: the handshake deadline bounds such a connection. */
    c->in_bytes -= q->req_bytes < c->in_bytes ? q->req_bytes : c->in_bytes;
    if (!keep) {
        dlg_conn_close_after_flush(c, "HTTP request done");
        return 1;
    }
    return 0;
}

/* Whether the request carries "Bearer <token>": the two are compared as
 * SHA-256 digests with CRYPTO_memcmp, so the time taken says nothing of
 * how much of the token, or of its length, was right. */
static int token_ok(const http_req *q, const char *token) {
    static const char pfx[] = "Bearer ";
    unsigned char want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];
    const char *v = q->val[H_AUTHORIZATION];
    size_t vl = q->val_len[H_AUTHORIZATION];
    int scheme = q->seen[H_AUTHORIZATION] == 1 && vl >= sizeof(pfx) - 1 &&
                 strncasecmp(v, pfx, sizeof(pfx) - 1) == 0;
    size_t skip = scheme ? sizeof(pfx) - 1 : 0;
    SHA256((const unsigned char *)token, strlen(token), want);
    SHA256((const unsigned char *)v + skip, vl - skip, got);
    return (CRYPTO_memcmp(want, got, sizeof(want)) == 0) & scheme;
}

static const char *status_text(int status) {
    switch (status) {
    case 200: return "OK";
    case 404: return "Not Found";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

/* The admin listener: only srv->up.admin answers, to GET and HEAD, and
 * only with the token when one is configured. */
static int admin_serve(dlg_conn *c, http_req *q) {
    dlg_http *h = st(c);
    const char *token = c->lis->conf.token;
    if (token != NULL && !token_ok(q, token)) {
        dlg_log_info(&c->srv->log, "conn %s (%s): admin request refused: %s bearer token",
                     c->client_id, c->peer, q->seen[H_AUTHORIZATION] ? "wrong" : "no");
        return refuse(c, 401, "Unauthorized", "a valid bearer token is required",
                      "WWW-Authenticate: Bearer realm=\"dialogued admin\"\r\n");
    }
    if (h->p.method != HTTP_GET && h->p.method != HTTP_HEAD)
        return refuse(c, 405, "Method Not Allowed", "only GET and HEAD are served",
                      "Allow: GET, HEAD\r\n");
    size_t plen = q->url_len;
    const char *qm = memchr(q->url, '?', plen);
    if (qm != NULL)
        plen = (size_t)(qm - q->url);
    int status = 404;
    const char *ctype = "text/plain; charset=utf-8";
    dlg_buf *body = NULL;
    if (c->srv->up.admin != NULL &&
        (body = c->srv->up.admin(c->srv, q->url, plen, &status, &ctype)) == NULL) {
        dlg_conn_close(c, "out of memory");
        return 1;
    }
    if (body == NULL)
        return refuse(c, 404, "Not Found", "no such admin endpoint", "");
    int keep = http_should_keep_alive(&h->p);
    dlg_buf *head = make_head("HTTP/1.1 %d %s\r\n" DLG_HTTP_COMMON "Content-Type: %s\r\n"
                              "Cache-Control: no-store\r\nContent-Length: %zu\r\n"
                              "Connection: %s\r\n\r\n",
                              status, status_text(status), ctype, body->len,
                              keep ? "keep-alive" : "close");
    int rc = head == NULL ? 1 : push_resp(c, head, h->p.method == HTTP_GET ? body : NULL);
    dlg_buf_unref(body);
    if (head == NULL) {
        dlg_conn_close(c, "out of memory");
        return 1;
    }
    if (rc != 0)
        return rc;
    c->in_bytes -= q->req_bytes < c->in_bytes ? q->req_bytes : c->in_bytes;
    if (!keep) {
        dlg_conn_close_after_flush(c, "HTTP request done");
        return 1;
    }
    return 0;
}

/* ---- the codec ----------------------------------------------------------- */

static int http_feed(dlg_conn *c, const uint8_t *data, size_t len) {
    dlg_http *h = st(c);
    if (h == NULL) {
        if ((h = dlg_calloc(1, sizeof(*h))) == NULL || (h->req = dlg_calloc(1, sizeof(*h->req))) == NULL) {
            free(h);
            dlg_conn_close(c, "out of memory");
            return 1;
        }
        c->codec_st = h;
        http_parser_init(&h->p, HTTP_REQUEST);
        h->p.data = h;
    }
    while (len > 0) {
        if (h->req == NULL)
            return dlg_ws_feed(h->ws, data, len);
        http_req *q = h->req;
        size_t n = http_parser_execute(&h->p, &settings, (const char *)data, len);
        q->req_bytes += n;
        data += n;
        len -= n;
        enum http_errno e = HTTP_PARSER_ERRNO(&h->p);
        if (q->bad != NULL)
            return refuse(c, q->bad_status,
                          q->bad_status == 414 ? "URI Too Long"
                          : q->bad_status == 413 ? "Content Too Large"
                                                 : "Request Header Fields Too Large",
                          q->bad, "");
        if (e != HPE_OK && e != HPE_PAUSED) {
            char why[160];
            snprintf(why, sizeof(why), "malformed HTTP request: %s", http_errno_description(e));
            dlg_log_info(&c->srv->log, "conn %s (%s): %s", c->client_id, c->peer, why);
            return refuse(c, 400, "Bad Request", why, "");
        }
        if (!q->complete)
            break; /* everything fed was taken: more to come */
        http_parser_pause(&h->p, 0);
        if (h->p.http_major != 1 || h->p.http_minor < 1)
            return refuse(c, 505, "HTTP Version Not Supported", "HTTP/1.1 is required", "");
        size_t plen = q->url_len;
        const char *qm = memchr(q->url, '?', plen);
        if (qm != NULL)
            plen = (size_t)(qm - q->url);
        int rc = c->lis != NULL && c->lis->conf.admin ? admin_serve(c, q)
                 : (plen == sizeof(DLG_WS_PATH) - 1 && memcmp(q->url, DLG_WS_PATH, plen) == 0)
                     ? upgrade(c, q)
                     : h->p.upgrade ? refuse(c, 404, "Not Found",
                                             "the WebSocket endpoint is " DLG_WS_PATH, "")
                                    : serve(c, q);
        if (rc != 0)
            return rc;
        if (h->req != NULL)
            h->req->req_bytes = 0;
    }
    return 0;
}

static size_t http_stage(dlg_conn *c, uint8_t *dst, size_t cap) {
    dlg_http *h = st(c);
    size_t used = 0;
    if (h == NULL) /* nothing was read: only dialogue/1 frames could be queued */
        return dlg_outq_stage(c, dst, cap);
    while (h->n_resp > 0 && used < cap) {
        http_resp *r = &h->resp[h->resp_head];
        size_t total = r->head->len + (r->body ? r->body->len : 0);
        while (r->off < total && used < cap) {
            const uint8_t *src = r->off < r->head->len ? r->head->data + r->off
                                                       : r->body->data + (r->off - r->head->len);
            size_t left = r->off < r->head->len ? r->head->len - r->off
                                                : total - r->off;
            size_t n = left < cap - used ? left : cap - used;
            memcpy(dst + used, src, n);
            used += n;
            r->off += n;
        }
        if (r->off < total)
            break;
        h->resp_bytes -= r->head->len;
        dlg_buf_unref(r->head);
        if (r->body)
            dlg_buf_unref(r->body);
        h->resp_head = (h->resp_head + 1) % DLG_HTTP_MAX_RESP;
        h->n_resp--;
    }
    if (h->ws != NULL) {
        if (h->n_resp == 0) {
            /* The 101 is out: the WebSocket session is the codec now. */
            c->codec_st = h->ws;
            c->codec = &dlg_codec_ws;
            free(h->req);
            free(h);
            if (used < cap)
                used += dlg_ws_stage(c->codec_st, dst + used, cap - used);
        }
    } else {
        /* Before the upgrade, frames queued for this connection (an
         * Error before a close) mean nothing to an HTTP client. */
        while (c->q_len > 0)
            dlg_outq_drop_head(c);
    }
    return used;
}

int dlg_http_upgraded(const dlg_conn *c) {
    const dlg_http *h = c->codec == &dlg_codec_http ? st(c) : NULL;
    return h != NULL && h->ws != NULL;
}

static int http_more(const dlg_conn *c) {
    const dlg_http *h = st(c);
    return h != NULL && (h->n_resp > 0 || (h->ws != NULL && dlg_ws_more(h->ws)));
}

static uint64_t http_pending(const dlg_conn *c) {
    const dlg_http *h = st(c);
    if (h == NULL)
        return 0;
    return h->resp_bytes + (h->ws ? dlg_ws_pending(h->ws) : 0);
}

static size_t http_final_error(dlg_conn *c, int status, const char *msg, uint8_t *dst,
                               size_t cap) {
    dlg_http *h = st(c);
    if (h == NULL || h->ws == NULL || h->n_resp > 0)
        return 0; /* an HTTP client gets nothing it could read as an answer */
    return dlg_ws_final_error(h->ws, status, msg, dst, cap);
}

static const char *http_deadline(dlg_conn *c) {
    dlg_http *h = st(c);
    /* A keep-alive connection that only fetched the page is no client
     * that failed to say Hello. */
    return h == NULL || h->ws == NULL ? "HTTP keep-alive over" : NULL;
}

static void http_free(dlg_conn *c) {
    dlg_http *h = st(c);
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n_resp; i++) {
        http_resp *r = &h->resp[(h->resp_head + i) % DLG_HTTP_MAX_RESP];
        dlg_buf_unref(r->head);
        if (r->body)
            dlg_buf_unref(r->body);
    }
    dlg_ws_free(h->ws);
    free(h->req);
    free(h);
    c->codec_st = NULL;
}

const dlg_codec dlg_codec_http = {
    .name = "http/1.1",
    .feed = http_feed,
    .stage = http_stage,
    .more = http_more,
    .pending = http_pending,
    .final_error = http_final_error,
    .deadline = http_deadline,
    .free = http_free,
};
