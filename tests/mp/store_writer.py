# Rewrites one file forever with ever larger counters; the test kills it at random moments.
import json
import sys

from ampshare.run import store

path = sys.argv[1]
n = 0
while True:
    n += 1
    store.save(path, json.dumps({"n": n, "pad": "x" * (n * 37 % 4000)}))
