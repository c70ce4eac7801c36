#!/usr/bin/env python3
"""The leader's page: its gzipped size, and how soon headless Chromium paints it on loopback.

    .venv/bin/python tools/bench_page.py [--loads 10] [--page build/page.html.gz] [--url URL]

Prints the size of the gzipped page in bytes, then the median (and range) over --loads fresh
loads, cache disabled, of first paint and first contentful paint as the Performance API reports
them (performance.getEntriesByType('paint')), from the navigation's start.

By default the page is served the way the leader serves it (gzip, text/html) by a minimal
server in this process on 127.0.0.1, which answers every /api/ path 404: what is measured is
the page alone, not the leader's HTTP stack or a board's Wi-Fi. --url measures a running
leader instead (say `make sim`'s http://127.0.0.1:8080/). Speed is measured, never asserted.
Needs Debian's chromium and chromium-driver and the venv's selenium (make setup).
"""
import argparse
import gzip
import statistics
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def serve(body):
    """A server on a free loopback port: the page at /, 404 for anything else."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] in ("/", "/index.html"):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=UTF-8")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=412,915"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))
    drv.execute_cdp_cmd("Network.enable", {})
    drv.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    return drv


PAINTS = """
const p = {};
for (const e of performance.getEntriesByType('paint')) p[e.name] = e.startTime;
const n = performance.getEntriesByType('navigation')[0];
p.transfer = n ? n.transferSize : null;
return p;
"""


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", type=int, default=10)
    ap.add_argument("--page", default=str(ROOT / "build" / "page.html.gz"),
                    help="the gzipped page (make build/page.html.gz)")
    ap.add_argument("--url", help="a running leader's page instead of the minimal server")
    args = ap.parse_args(argv[1:])
    body = Path(args.page).read_bytes()
    raw = len(gzip.decompress(body))
    print("page: %d bytes gzipped (%d bytes of HTML) from %s" % (len(body), raw, args.page))
    srv = None
    url = args.url
    if url is None:
        srv = serve(body)
        url = "http://127.0.0.1:%d/" % srv.server_address[1]
    drv = browser()
    fp, fcp, transfer = [], [], None
    try:
        drv.get("about:blank")
        for _ in range(args.loads):
            drv.get(url)
            p = {}
            # The entries come with the first frame; get() returns at the load event.
            for _ in range(50):
                p = drv.execute_script(PAINTS)
                if "first-contentful-paint" in p:
                    break
                drv.execute_script("return new Promise(r => setTimeout(r, 20))")
            fp.append(p.get("first-paint"))
            fcp.append(p.get("first-contentful-paint"))
            transfer = p.get("transfer")
            drv.get("about:blank")
    finally:
        drv.quit()
        if srv is not None:
            srv.shutdown()
    where = url if args.url else "a minimal server on loopback (%s)" % url
    print("served by %s; %d loads, cache disabled, headless Chromium at 412x915" % (where, args.loads))
    if transfer:
        print("transferred per load: %d bytes (headers included)" % transfer)
    for name, xs in (("first paint", fp), ("first contentful paint", fcp)):
        got = [x for x in xs if x is not None]
        if not got:
            print("%s: not reported" % name)
            continue
        print("%s: median %.1f ms (min %.1f, max %.1f, %d of %d loads)" % (
            name, statistics.median(got), min(got), max(got), len(got), len(xs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
