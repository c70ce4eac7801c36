# Device entry: start ampshare; a fatal error is logged and the board resets.
import sys

import machine

try:
    from ampshare.run import app

    app.main()
except Exception as e:  # anything escaping the app is fatal: a clean restart is safer
    sys.print_exception(e)
    machine.reset()
