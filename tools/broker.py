"""Mosquitto for the tests and benches: started on loopback ports, paused (SIGSTOP) and resumed,
killed and started again, its log read back. Debian's package (make setup installs it)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

# Debian puts the broker in /usr/sbin, which a user's PATH may not hold.
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
USER, PASSWORD = "leader", "s3cret"  # the password listener's one user


class Broker:
    """Mosquitto with three listeners: anonymous, user and password, and TLS (or the first alone,
    given one port). Each start logs to a file of its own (log())."""

    def __init__(self, folder, ports):
        self.dir = Path(folder)
        folder = self.dir
        self.port, self.auth_port, self.tls_port = (list(ports) + [None, None])[:3]
        self.proc = None
        self.paused = False
        self.runs = 0
        self.log_path = None
        if self.auth_port is None:
            return
        self.passwd = folder / "passwd"
        subprocess.run(["mosquitto_passwd", "-b", "-c", str(self.passwd), USER, PASSWORD], check=True,
                       capture_output=True)
        os.chmod(self.passwd, 0o600)
        self.cert, self.key = folder / "cert.pem", folder / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", str(self.key), "-out", str(self.cert)], check=True, capture_output=True)

    def start(self):
        self.runs += 1
        self.log_path = self.dir / ("broker-%d.log" % self.runs)
        conf = self.dir / "mosquitto.conf"
        conf.write_text("\n".join([
            # As root, Mosquitto 2 would switch to its own user, who cannot read this folder.
            "user root" if os.geteuid() == 0 else "",
            "per_listener_settings true",
            "persistence false",
            "log_dest file %s" % self.log_path,
            "log_type all",
            "listener %d 127.0.0.1" % self.port,
            "allow_anonymous true",
            ""] + ([] if self.auth_port is None else [
                "listener %d 127.0.0.1" % self.auth_port,
                "allow_anonymous false",
                "password_file %s" % self.passwd,
                "listener %d 127.0.0.1" % self.tls_port,
                "allow_anonymous true",
                "certfile %s" % self.cert,
                "keyfile %s" % self.key,
                ""])))
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.paused = False

        def up():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        end = time.monotonic() + 5
        while not up():
            if time.monotonic() > end:
                raise RuntimeError("mosquitto did not start (code %s)" % self.proc.poll())
            time.sleep(0.02)

    def _signal(self, sig):
        self.proc.send_signal(sig)

    def pause(self):
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self._signal(signal.SIGCONT)
        self.paused = False

    def stop(self, kill=False):
        self._signal(signal.SIGKILL if kill else signal.SIGTERM)
        if self.paused and not kill:
            self.resume()
        self.proc.wait(timeout=5)
        self.proc = None
        self.paused = False

    def ensure(self):
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        elif self.paused:
            self.resume()

    def log(self):
        return self.log_path.read_text(errors="replace")

    def count(self, pattern):
        return len(re.findall(pattern, self.log()))
