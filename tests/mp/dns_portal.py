# The captive portal's DNS as a process: dns_portal.py BIND PORT IP. Beside it, a task prints
# the portal's counters every 50 ms: their flow shows that the event loop never waited on the
# socket (tests/test_dns.py).
import sys

import asyncio
from ampshare.web.dns import Portal

TICK_MS = 50


async def ticker(p):
    while True:
        print(p.answered, p.dropped, p.unsent)
        await asyncio.sleep_ms(TICK_MS)


async def main():
    p = Portal(sys.argv[3], sys.argv[1], int(sys.argv[2]))
    print("ready")
    await asyncio.gather(p.run(), ticker(p))


asyncio.run(main())
