"""Cold init of a Lambda function binary: time from process start until it
asks the Runtime API for its first event (the end of Lambda's INIT phase),
with a stand-in Runtime API on loopback. The functions do no network I/O at
init, so this is their own start-up cost.

    python3 bench/lambda-init.py target/release/strata-api [runs]
"""
import http.server
import os
import statistics
import subprocess
import sys
import threading
import time

binary = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
polled = threading.Event()


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            polled.set()
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
threading.Thread(target=server.serve_forever, daemon=True).start()
env = dict(os.environ)
env.update(
    AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
    AWS_LAMBDA_FUNCTION_NAME="strata-api", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024", AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/strata-api",
    AWS_LAMBDA_LOG_STREAM_NAME="local", AWS_REGION="us-east-1", STRATA_STORE="s3://example-bucket/strata",
    AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y",
)
times = []
for _ in range(runs):
    polled.clear()
    start = time.perf_counter()
    p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not polled.wait(10):
        p.kill()
        sys.exit("the function never polled for an event")
    times.append((time.perf_counter() - start) * 1000)
    p.kill()
    p.wait()
times.sort()
print(f"cold init of {os.path.basename(binary)} ({runs} runs): median {statistics.median(times):.1f} ms, "
      f"p90 {times[int(len(times) * 0.9) - 1]:.1f} ms, min {times[0]:.1f} ms")
