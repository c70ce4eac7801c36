# Runs before main.py on every reset. Collect early so the app starts on an unfragmented
# heap: a board without PSRAM has about 110-170 KB for everything.
import gc

gc.collect()
