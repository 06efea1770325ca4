/* selfsigned.h: one P-256 key and a self-signed "localhost" certificate
 * for a whole cmocka suite (key generation is the slow part of a
 * handshake): the TLS suites' group setup and teardown. */
#ifndef TEST_SELFSIGNED_H
#define TEST_SELFSIGNED_H

#include <openssl/evp.h>
#include <openssl/x509.h>

static EVP_PKEY *g_key;
static X509 *g_cert;

/* cmocka group setup: makes g_key and g_cert; -1 when OpenSSL fails. */
static int selfsigned_setup(void **state) {
    (void)state;
    g_key = EVP_EC_gen("P-256");
    g_cert = X509_new();
    if (g_key == NULL || g_cert == NULL)
        return -1;
    X509_NAME *nm = X509_get_subject_name(g_cert);
    if (X509_set_version(g_cert, 2) != 1 ||
        ASN1_INTEGER_set(X509_get_serialNumber(g_cert), 1) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(g_cert), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(g_cert), 86400) == NULL ||
        X509_set_pubkey(g_cert, g_key) != 1 ||
        X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
                                   -1, -1, 0) != 1 ||
        X509_set_issuer_name(g_cert, nm) != 1 || X509_sign(g_cert, g_key, EVP_sha256()) <= 0)
        return -1;
    return 0;
}

/* cmocka group teardown: frees them. */
static int selfsigned_teardown(void **state) {
    (void)state;
    X509_free(g_cert);
    EVP_PKEY_free(g_key);
    return 0;
}

#endif
