/*
 * pyevent-envoy: declarations of the HTTP/1.1 head scanner (http1_scan.c),
 * read by cffi for the pyevent_envoy._http1 module.
 *
 * pe_http1_scan_head(head, len, response, out, cap, info) returns 0 and
 * fills out/info for a head in the scanner's subset, -1 to decline (the
 * caller parses the head with llhttp), -2 when out is too small.
 * info: [0] fields, [1] bytes of out used (pieces separated by NUL),
 * [2] 1 for HTTP/1.1 else 0, [3] a response's status, [4] name and value
 * bytes (a request's target included) as Envoy counts them.
 */
int pe_http1_scan_head(const char *head, size_t len, int response, char *out, size_t cap, long *info);
