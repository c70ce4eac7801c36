# Builds a role on the (fake) ESP32 from settings on stdin, as main.py would: prints the role's
# uid and class, or the refusal.
import json
import sys

from ampshare.config import settings
from ampshare.run import start
from ampshare.config.units import ConfigError

s = settings.parse(json.loads(sys.stdin.read()))
try:
    app = start.build(s)
    print(json.dumps({"built": type(app).__name__, "uid": s["uid"]}))
except ConfigError as e:
    print(json.dumps({"refused": str(e)}))
