# UDP without blocking: a non-blocking socket whose reads wait in asyncio's I/O queue
# (MicroPython's asyncio has no datagram endpoints). A send that would block is dropped and
# counted: the protocol repeats what matters, and the control loop never waits on the network.
import socket

from asyncio import core  # type: ignore[attr-defined]  # not in the stubs
from micropython import const

# The longest message (PAIR) is 96 bytes: room for newer peers' fields, and each read
# allocates this much, which a leader's full heap must find in one piece.
_MAX_DATAGRAM = const(128)


def _readable(sock):
    yield core._io_queue.queue_read(sock)


def address(host, port):
    return socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]


class Link:
    def __init__(self, bind, port, broadcast=False):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if broadcast:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.bind(address(bind, port))
        s.setblocking(False)
        self.sock = s
        self.sent = 0
        self.dropped = 0

    async def recv(self):
        """The next datagram and its sender's address."""
        while True:
            try:
                return self.sock.recvfrom(_MAX_DATAGRAM)
            except OSError:
                pass  # nothing there yet (EAGAIN): wait until the socket is readable
            await _readable(self.sock)

    def send(self, data, addr):
        try:
            self.sock.sendto(data, addr)
            self.sent += 1
        except OSError:
            self.dropped += 1

    def close(self):
        self.sock.close()
