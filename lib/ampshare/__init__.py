# ampshare: power sharing for EV wallboxes.
VERSION = "0.1.0"
