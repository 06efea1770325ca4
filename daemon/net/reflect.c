/* reflect.c: gRPC server reflection (grpc.reflection.v1alpha and v1, whose
 * messages are the same on the wire): the services this server has, and
 * the descriptors of service.proto, protocol.proto, reflection.proto and
 * every event schema the daemon loaded, so that grpcurl-style tools call
 * the service and decode typed events without .proto files. Answered on
 * the stream's session, which said Hello as any call does. */
#include "h2_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlg_alloc.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "dlg_schema.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"

/* The descriptor sets built into the daemon (mk/daemon.ninja). */
extern const unsigned char dlg_grpc_descriptors[];
extern const unsigned long dlg_grpc_descriptors_len;

typedef struct rfile {
    const uint8_t *raw; /* the FileDescriptorProto as it was serialised */
    size_t len;
    Google__Protobuf__FileDescriptorProto *fd;
} rfile;

typedef struct rfiles {
    rfile *v;
    size_t n, cap;
} rfiles;

static void files_free(rfiles *fs) {
    for (size_t i = 0; i < fs->n; i++)
        google__protobuf__file_descriptor_proto__free_unpacked(fs->v[i].fd, NULL);
    free(fs->v);
}

static const rfile *by_name(const rfiles *fs, const char *name) {
    for (size_t i = 0; i < fs->n; i++)
        if (fs->v[i].fd->name && strcmp(fs->v[i].fd->name, name) == 0)
            return &fs->v[i];
    return NULL;
}

/* Adds the files of one serialised FileDescriptorSet (field 1, repeated);
 * a name seen before keeps its first file. */
static int add_set(rfiles *fs, const uint8_t *set, size_t len) {
    pbw r = {set, set + len};
    uint32_t f;
    int wt, k;
    uint64_t v;
    const uint8_t *p;
    size_t n;
    while ((k = pbw_next(&r, &f, &wt, &v, &p, &n)) == 1) {
        if (f != 1 || wt != 2)
            continue;
        Google__Protobuf__FileDescriptorProto *fd =
            google__protobuf__file_descriptor_proto__unpack(NULL, n, p);
        if (fd == NULL)
            return DLG_EINVAL;
        if (fd->name == NULL || by_name(fs, fd->name) != NULL) {
            google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
            continue;
        }
        if (fs->n == fs->cap) {
            size_t nc = fs->cap ? 2 * fs->cap : 16;
            rfile *nv = dlg_realloc(fs->v, nc * sizeof(*nv));
            if (nv == NULL) {
                google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
                return DLG_ENOMEM;
            }
            fs->v = nv;
            fs->cap = nc;
        }
        fs->v[fs->n++] = (rfile){p, n, fd};
    }
    return k == 0 ? 0 : DLG_EINVAL;
}

static int collect(const dlg_server *srv, rfiles *fs) {
    int rc = add_set(fs, dlg_grpc_descriptors, dlg_grpc_descriptors_len);
    size_t ns = srv->schema ? dlg_schema_set_count(srv->schema) : 0;
    for (size_t i = 0; rc == 0 && i < ns; i++) {
        const uint8_t *d;
        size_t len;
        dlg_schema_set_at(srv->schema, i, &d, &len);
        rc = add_set(fs, d, len);
    }
    return rc;
}

/* Is sym (fully qualified, no leading dot) name within scope? */
static int named(const char *scope, const char *name, const char *sym) {
    size_t sl = strlen(scope);
    if (sl) {
        if (strncmp(sym, scope, sl) != 0 || sym[sl] != '.')
            return 0;
        sym += sl + 1;
    }
    return name && strcmp(sym, name) == 0;
}

static int in_message(const char *scope, const Google__Protobuf__DescriptorProto *m,
                      const char *sym) {
    if (named(scope, m->name, sym))
        return 1;
    char inner[512];
    snprintf(inner, sizeof(inner), "%s%s%s", scope, scope[0] ? "." : "", m->name);
    for (size_t i = 0; i < m->n_field; i++)
        if (named(inner, m->field[i]->name, sym))
            return 1;
    for (size_t i = 0; i < m->n_nested_type; i++)
        if (in_message(inner, m->nested_type[i], sym))
            return 1;
    for (size_t i = 0; i < m->n_enum_type; i++)
        if (named(inner, m->enum_type[i]->name, sym))
            return 1;
    for (size_t i = 0; i < m->n_extension; i++)
        if (named(inner, m->extension[i]->name, sym))
            return 1;
    return 0;
}

/* Does fd declare sym (a message, field, enum, service, method or
 * extension)? */
static int declares(const Google__Protobuf__FileDescriptorProto *fd, const char *sym) {
    const char *pkg = fd->package ? fd->package : "";
    for (size_t i = 0; i < fd->n_message_type; i++)
        if (in_message(pkg, fd->message_type[i], sym))
            return 1;
    for (size_t i = 0; i < fd->n_enum_type; i++)
        if (named(pkg, fd->enum_type[i]->name, sym))
            return 1;
    for (size_t i = 0; i < fd->n_extension; i++)
        if (named(pkg, fd->extension[i]->name, sym))
            return 1;
    for (size_t i = 0; i < fd->n_service; i++) {
        const Google__Protobuf__ServiceDescriptorProto *s = fd->service[i];
        if (named(pkg, s->name, sym))
            return 1;
        char scope[512];
        snprintf(scope, sizeof(scope), "%s%s%s", pkg, pkg[0] ? "." : "", s->name);
        for (size_t k = 0; k < s->n_method; k++)
            if (named(scope, s->method[k]->name, sym))
                return 1;
    }
    return 0;
}

/* f and, after it, every file it imports (each once). */
static void with_deps(const rfiles *fs, const rfile *f, const rfile **out, size_t *n) {
    for (size_t i = 0; i < *n; i++)
        if (out[i] == f)
            return;
    if (*n == fs->n)
        return;
    out[(*n)++] = f;
    for (size_t i = 0; i < f->fd->n_dependency; i++) {
        const rfile *d = by_name(fs, f->fd->dependency[i]);
        if (d)
            with_deps(fs, d, out, n);
    }
}

static int answer(h2_stream *st, Grpc__Reflection__V1alpha__ServerReflectionResponse *resp) {
    if (st->sess == NULL)
        return DLG_ECLOSED;
    dlg_buf *b = NULL;
    int rc = dlg_frame_pack(&resp->base, 0, &b);
    if (rc != 0)
        return rc;
    dlg_conn_send(st->sess, b);
    dlg_buf_unref(b);
    return 0;
}

int dlg_reflect_request(h2_stream *st, const uint8_t *body, size_t len) {
    Grpc__Reflection__V1alpha__ServerReflectionRequest *req =
        grpc__reflection__v1alpha__server_reflection_request__unpack(NULL, len, body);
    if (req == NULL)
        return DLG_EINVAL;
    Grpc__Reflection__V1alpha__ServerReflectionResponse resp =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__INIT;
    resp.valid_host = req->host ? req->host : "";
    resp.original_request = req;
    Grpc__Reflection__V1alpha__ErrorResponse err =
        GRPC__REFLECTION__V1ALPHA__ERROR_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__FileDescriptorResponse fdr =
        GRPC__REFLECTION__V1ALPHA__FILE_DESCRIPTOR_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__ListServiceResponse lsr =
        GRPC__REFLECTION__V1ALPHA__LIST_SERVICE_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__ExtensionNumberResponse enr =
        GRPC__REFLECTION__V1ALPHA__EXTENSION_NUMBER_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__ServiceResponse svc[3];
    Grpc__Reflection__V1alpha__ServiceResponse *svcp[3];
    static const char *const names[3] = {"dialogue.v1.Dialogue",
                                          "grpc.reflection.v1.ServerReflection",
                                          "grpc.reflection.v1alpha.ServerReflection"};
    rfiles fs = {0};
    const rfile **picked = NULL;
    ProtobufCBinaryData *blobs = NULL;
    char msg[600];
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        for (int i = 0; i < 3; i++) {
            grpc__reflection__v1alpha__service_response__init(&svc[i]);
            svc[i].name = (char *)names[i];
            svcp[i] = &svc[i];
        }
        lsr.service = svcp;
        lsr.n_service = 3;
        resp.message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
        resp.list_services_response = &lsr;
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
        int by_file = req->message_request_case ==
                      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
        const char *what = by_file ? req->file_by_filename : req->file_containing_symbol;
        if (collect(st->h->c->srv, &fs) != 0) {
            err.error_code = DIALOGUE__V1__STATUS__INTERNAL;
            err.error_message = "out of memory reading the descriptors";
            resp.message_response_case =
                GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
            resp.error_response = &err;
            break;
        }
        const rfile *f = NULL;
        if (by_file) {
            f = by_name(&fs, what);
        } else {
            const char *sym = what[0] == '.' ? what + 1 : what;
            for (size_t i = 0; f == NULL && i < fs.n; i++)
                if (declares(fs.v[i].fd, sym))
                    f = &fs.v[i];
        }
        if (f == NULL) {
            snprintf(msg, sizeof(msg), "%s %.400s not found", by_file ? "file" : "symbol", what);
            err.error_code = DIALOGUE__V1__STATUS__NOT_FOUND;
            err.error_message = msg;
            resp.message_response_case =
                GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
            resp.error_response = &err;
            break;
        }
        picked = dlg_calloc(fs.n, sizeof(*picked));
        blobs = dlg_calloc(fs.n, sizeof(*blobs));
        if (picked == NULL || blobs == NULL) {
            err.error_code = DIALOGUE__V1__STATUS__INTERNAL;
            err.error_message = "out of memory";
            resp.message_response_case =
                GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
            resp.error_response = &err;
            break;
        }
        size_t n = 0;
        with_deps(&fs, f, picked, &n);
        for (size_t i = 0; i < n; i++) {
            blobs[i].data = (uint8_t *)picked[i]->raw;
            blobs[i].len = picked[i]->len;
        }
        fdr.file_descriptor_proto = blobs;
        fdr.n_file_descriptor_proto = n;
        resp.message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
        resp.file_descriptor_response = &fdr;
        break;
    }
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        /* No file declares extensions a client could need to list. */
        enr.base_type_name = req->all_extension_numbers_of_type;
        resp.message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
        resp.all_extension_numbers_response = &enr;
        break;
    default:
        err.error_code = DIALOGUE__V1__STATUS__UNIMPLEMENTED;
        err.error_message = "this reflection request is not supported";
        resp.message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
        resp.error_response = &err;
        break;
    }
    /* Out of memory packing the answer: the call goes on without it. */
    answer(st, &resp);
    free(picked);
    free(blobs);
    files_free(&fs);
    grpc__reflection__v1alpha__server_reflection_request__free_unpacked(req, NULL);
    return 0;
}
