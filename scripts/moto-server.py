#!/usr/bin/env python3
"""`moto_server` with each S3 object PUT done under one lock.

moto checks `If-Match` / `If-None-Match` and then writes, without a lock, while its
server handles requests on threads: two racing conditional PUTs can both succeed, which
S3 never allows (seen as "two creates succeeded" in the storage contract's race check).
Holding a lock across the whole PUT makes each conditional write atomic, as in S3.
Arguments are moto_server's.
"""

import threading

from moto import server
from moto.s3.responses import S3Response

_write_lock = threading.Lock()
_put_object = S3Response.put_object


def _put_object_atomically(self):
    with _write_lock:
        return _put_object(self)


S3Response.put_object = _put_object_atomically

if __name__ == "__main__":
    server.main()
