/*
 * Plugins that break ABI v1 on purpose, for the host's safety tests. Compile with exactly one
 * of these defined:
 *
 *   -DBAD_NO_SYMBOL    exports no postflight_plugin_entry
 *   -DBAD_MAGIC        the table's magic value is wrong
 *   -DBAD_VERSION      the table claims ABI version 2
 *   -DBAD_MALFORMED    transport `malformed`: send answers OK with text that is not JSON
 *   -DBAD_HANG         transport `hang`: send never returns
 *   -DBAD_DESCRIBE_HANG  describe never returns (the host must give up on this candidate)
 *
 * cc -shared -fPIC -DBAD_HANG -o libpostflight_hang.so bad_plugin.c
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postflight_plugin.h"

#if defined(BAD_HANG)
#define NAME "hang"
#elif defined(BAD_MALFORMED)
#define NAME "malformed"
#else
#define NAME "bad"
#endif

#if defined(BAD_MAGIC)
#define MAGIC 0x21444142u /* "BAD!" */
#else
#define MAGIC PF_MAGIC
#endif

#if defined(BAD_VERSION)
#define VERSION 2u
#else
#define VERSION PF_ABI_VERSION
#endif

static struct pf_buf text_buf(const char *text) {
    struct pf_buf buf = {(uint8_t *)strdup(text), strlen(text), 0};
    return buf;
}

static struct pf_buf describe(void) {
#if defined(BAD_DESCRIBE_HANG)
    for (;;) pause();
#endif
    return text_buf("{\"name\":\"" NAME "\",\"version\":\"0.0.1\",\"abi_version\":1,"
                    "\"transports\":[{\"name\":\"" NAME "\",\"settings\":[]}]}");
}

static int32_t open_(const uint8_t *request, size_t len, void **handle, struct pf_buf *out) {
    (void)request;
    (void)len;
    (void)out;
    *handle = malloc(1);
    return PF_STATUS_OK;
}

static int32_t send_(void *handle, const uint8_t *email, size_t len, struct pf_buf *out) {
    (void)handle;
    (void)email;
    (void)len;
#if defined(BAD_HANG)
    for (;;) pause();
#endif
    *out = text_buf("this is not JSON {");
    return PF_STATUS_OK;
}

static void close_(void *handle) { free(handle); }

static void free_buf(struct pf_buf buf) { free(buf.ptr); }

static const struct pf_plugin_v1 TABLE = {MAGIC, VERSION, describe, open_, send_, close_, free_buf};

#if defined(BAD_NO_SYMBOL)
const struct pf_plugin_v1 *some_other_entry(void) { return &TABLE; }
#else
const struct pf_plugin_v1 *postflight_plugin_entry(void) { return &TABLE; }
#endif
