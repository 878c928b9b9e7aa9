/*
 * pyevent-envoy: declarations of the HTTP/1.1 head scanner (http1_scan.c),
 * read by cffi for the pyevent_envoy._http1 module.
 *
 * pe_http1_scan_head(head, len, response, out, cap, info) returns 0 and
 * fills out/info for a head in the scanner's subset, -1 to decline (the
 * caller parses the head with llhttp), -2 when out is too small.
 * info: [0] fields, [1] bytes of out used (pieces separated by NUL),
 * [2] 1 for HTTP/1.1 else 0, [3] a response's status, [4] name and value
 * bytes (a request's target included) as Envoy counts them, [5] which
 * special fields were seen (bits below).
 */
#define PE_SPECIAL_HOST 0x1
#define PE_SPECIAL_CONTENT_LENGTH 0x2
#define PE_SPECIAL_TRANSFER_ENCODING 0x4
#define PE_SPECIAL_CONNECTION 0x8
#define PE_SPECIAL_OTHER 0x10
#define PE_SPECIAL_REPEATED 0x20
int pe_http1_scan_head(const char *head, size_t len, int response, char *out, size_t cap, long *info);
