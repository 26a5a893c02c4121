"""moto_server, one request at a time.

moto's own `moto_server` serves every request on its own thread, and moto does not isolate
concurrent DynamoDB transactions on the same item: two conditional TransactWriteItems that
race can both succeed, or half-apply. DynamoDB itself guarantees serializable transactions,
and Hookline's idempotency relies on that. Serving requests one at a time gives the emulator
the same guarantee. Usage: moto_serial.py HOST PORT
"""

import os
import sys

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
app = DomainDispatcherApplication(create_backend_app)
run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)
