"""moto's S3 server with atomic conditional writes.

moto checks `If-None-Match: *` and then writes, with no lock between the two
(shared/INFRA.md), so two of several racing creates of one key can both
succeed: Strata's start-up probe rightly refuses such a store, and a test that
opens many engines at once against it fails at random. Real S3 (and
LocalStack) decide a conditional write atomically. This wrapper serves the
same moto application, threaded as `moto_server` does, but runs every
mutating request (PUT, POST, DELETE) under one lock, so the check and the
write of a conditional request happen as one step. Reads stay concurrent.

    python moto_atomic.py HOST PORT
"""

import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

MUTATING = {"PUT", "POST", "DELETE"}


class SerializedWrites:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") not in MUTATING:
            return self.app(environ, start_response)
        with self.lock:
            # The body is produced inside the lock: the write happens while
            # the application runs, and nothing of it is left for later.
            return list(self.app(environ, start_response))


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, SerializedWrites(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
