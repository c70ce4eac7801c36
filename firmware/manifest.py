# Freeze ampshare into an ESP32 image:
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/ampshare/firmware/manifest.py
include("$(PORT_DIR)/boards/manifest.py")
package("ampshare", base_path="../lib")
module("main.py", base_path="..")
module("boot.py", base_path="..")
# Microdot serves the leader's page (make setup installs the pinned release in build/vendor).
package("microdot", base_path="../build/vendor")
