/*
 * postflight transport plugin ABI, version 1, for C (see PLUGINS.md).
 *
 * A plugin is a shared library exporting one function,
 *
 *     const struct pf_plugin_v1 *postflight_plugin_entry(void);
 *
 * that returns a pointer to a static table. The host reads `magic` and `abi_version` first,
 * then the rest. Everything else crosses the boundary as UTF-8 JSON in byte buffers that are
 * NOT NUL-terminated. A buffer the plugin returns (`struct pf_buf`) belongs to the plugin and
 * comes back to its `free_buf` exactly once; buffers the host passes in are only valid for the
 * duration of the call.
 */
#ifndef POSTFLIGHT_PLUGIN_H
#define POSTFLIGHT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

/* "PFLT" read as a little-endian uint32. */
#define PF_MAGIC 0x544c4650u
#define PF_ABI_VERSION 1u

#define PF_STATUS_OK 0
#define PF_STATUS_ERROR 1

struct pf_buf {
    uint8_t *ptr; /* may be NULL when len is 0 */
    size_t len;   /* number of bytes */
    size_t cap;   /* the plugin's own bookkeeping; the host never reads it */
};

struct pf_plugin_v1 {
    uint32_t magic;       /* PF_MAGIC */
    uint32_t abi_version; /* PF_ABI_VERSION */
    /* Returns the manifest JSON. */
    struct pf_buf (*describe)(void);
    /* request: {"transport":..,"account":..,"send_timeout_ms":..,"settings":{..}}.
     * OK: *handle set, *out = {"warnings":[..]} or empty. ERROR: *out = an error object. */
    int32_t (*open)(const uint8_t *request, size_t request_len, void **handle,
                    struct pf_buf *out);
    /* email: the email object. OK: *out = a receipt. ERROR: *out = an error object. */
    int32_t (*send)(void *handle, const uint8_t *email, size_t email_len,
                    struct pf_buf *out);
    /* Releases a handle from a successful open, exactly once. */
    void (*close)(void *handle);
    /* Releases a buffer this plugin returned. Must accept ptr == NULL. */
    void (*free_buf)(struct pf_buf buf);
};

#endif
