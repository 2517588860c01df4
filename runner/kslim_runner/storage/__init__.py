"""Remote URIs: s3:// objects and prefixes, http(s):// files and archives, fetched into a local cache
(`fetch`), and the upload of a job's output to s3:// (`publish`).

Modules, one job each: `cache` (where downloads live, complete markers), `checksum` (sha256),
`addresses` (which hosts a download may reach), `s3` (client and S3 error mapping), `s3_get` (the
GETs: kept-alive connections, streamed to file), `s3_fetch` (objects, prefixes and config trees into
the cache), `http` (bounded downloads), `archive` (safe unpacking), `fetch` (a URI of the spec to a
local path), `publish` (output upload, report last).
"""
