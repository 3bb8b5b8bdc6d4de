"""Shared helpers of the Python end-to-end tests: gRPC stubs and the server process."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


def generate_stubs(proto_dir):
    """Generates Python stubs for visionserve.v1 and grpc.health.v1 into a temp folder on
    sys.path, with the system protoc and grpc_python_plugin. Returns the folder."""
    gen = tempfile.mkdtemp(prefix="vs_py_stubs_")
    plugin = shutil.which("grpc_python_plugin")
    # health.proto is copied to a flat folder: as grpc/health/v1/ its module would shadow grpcio's.
    flat = os.path.join(gen, "flat")
    os.makedirs(flat)
    shutil.copy("/usr/share/grpc-proto/grpc/health/v1/health.proto", flat)
    for root, proto in [(proto_dir + "/visionserve/v1", "vision_service.proto"),
                        (flat, "health.proto")]:
        subprocess.run(["protoc", "-I", root, f"--python_out={gen}", f"--grpc_out={gen}",
                        f"--plugin=protoc-gen-grpc={plugin}", os.path.join(root, proto)],
                       check=True)
    sys.path.insert(0, gen)
    return gen


class Server:
    def __init__(self, binary, *args):
        self.proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for("listening on", 60)
        self.address = re.search(r"listening on ([0-9.]+:[0-9]+)", line).group(1)

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def wait_for(self, text, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if line is None:
                        raise AssertionError("server exited: " + "".join(l for l in self.lines if l))
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no '{text}' in server output: " + "".join(self.lines))
                self.cond.wait(left)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


