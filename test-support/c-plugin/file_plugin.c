/*
 * A postflight transport plugin in plain C: the transport `cfile` appends each email, as the
 * JSON object the host sends, to the file named by the setting `path` (one object per line).
 * Proof that ABI v1 needs nothing from Rust.
 *
 * Build: cc -shared -fPIC -o libpostflight_cfile.so file_plugin.c
 */
#define _GNU_SOURCE /* asprintf, strndup */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postflight_plugin.h"

static const char MANIFEST[] =
    "{\"name\":\"cfile\",\"version\":\"1.0.0\",\"abi_version\":1,"
    "\"description\":\"appends each email as a JSON line to a file (written in C)\","
    "\"transports\":[{\"name\":\"cfile\",\"description\":\"appends emails as JSON lines\","
    "\"settings\":[{\"name\":\"path\",\"type\":\"string\",\"required\":true,\"secret\":false,"
    "\"help\":\"file that receives one JSON object per email\"}]}]}";

/* Hands a malloc'd string to the host as a buffer (free_buf frees it); NULL gives {NULL,0}. */
static struct pf_buf own_buf(char *text) {
    struct pf_buf buf = {(uint8_t *)text, text ? strlen(text) : 0, 0};
    return buf;
}

static struct pf_buf make_buf(const char *text) { return own_buf(strdup(text)); }

/* The string value of "key" after `from` in `json` (no escapes allowed), malloc'd, or NULL. */
static char *string_field(const uint8_t *json, size_t len, const char *from, const char *key) {
    char *text = malloc(len + 1), *start, *end, *value = NULL;
    char pattern[64];
    if (!text) return NULL;
    memcpy(text, json, len);
    text[len] = '\0';
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    start = from ? strstr(text, from) : text;
    if (start && (start = strstr(start, pattern)) != NULL) {
        start += strlen(pattern);
        end = strchr(start, '"');
        if (end && end > start && !memchr(start, '\\', (size_t)(end - start))) {
            value = strndup(start, (size_t)(end - start));
        }
    }
    free(text);
    return value;
}

static struct pf_buf describe(void) { return make_buf(MANIFEST); }

static int32_t open_(const uint8_t *request, size_t len, void **handle, struct pf_buf *out) {
    char *transport = string_field(request, len, NULL, "transport"), *path;
    int known = transport && strcmp(transport, "cfile") == 0;
    free(transport);
    if (!known) {
        *out = make_buf("{\"kind\":\"config\",\"permanent\":true,"
                        "\"message\":\"this plugin provides only the transport cfile\"}");
        return PF_STATUS_ERROR;
    }
    path = string_field(request, len, "\"settings\":", "path");
    if (!path) {
        *out = make_buf("{\"kind\":\"config\",\"permanent\":true,"
                        "\"message\":\"the cfile transport needs `path` (a plain file name)\","
                        "\"hint\":\"add `path = \\\"/var/mail/postflight.jsonl\\\"` to the account\"}");
        return PF_STATUS_ERROR;
    }
    *handle = path;
    return PF_STATUS_OK; /* an empty *out means: no warnings */
}

static int32_t send_(void *handle, const uint8_t *email, size_t len, struct pf_buf *out) {
    const char *path = handle;
    char *id = string_field(email, len, NULL, "message_id"), *reply = NULL;
    FILE *file = fopen(path, "a");
    int ok = file && fwrite(email, 1, len, file) == len && fputc('\n', file) != EOF;
    int saved = errno;
    if (file && fclose(file) != 0) ok = 0;
    /* `path` and `id` came out of JSON strings without escapes, so they need none. */
    if (ok && asprintf(&reply, "{\"message_id\":\"%s\",\"location\":\"%s\"}",
                       id ? id : "", path) < 0) {
        reply = NULL;
    } else if (!ok && asprintf(&reply,
                               "{\"kind\":\"other\",\"permanent\":false,\"message\":"
                               "\"cannot append to the file: %s\",\"hint\":"
                               "\"check that its directory exists and is writable\"}",
                               strerror(saved)) < 0) {
        reply = NULL;
    }
    free(id);
    *out = own_buf(reply); /* out of memory: empty, which the host reports as a plugin error */
    return ok ? PF_STATUS_OK : PF_STATUS_ERROR;
}

static void close_(void *handle) { free(handle); }

static void free_buf(struct pf_buf buf) { free(buf.ptr); }

static const struct pf_plugin_v1 TABLE = {
    PF_MAGIC, PF_ABI_VERSION, describe, open_, send_, close_, free_buf,
};

const struct pf_plugin_v1 *postflight_plugin_entry(void) { return &TABLE; }
