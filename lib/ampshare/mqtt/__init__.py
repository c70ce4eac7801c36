# MQTT 3.1.1 for the leader: packet.py is the sans-I/O codec, client.py its asyncio shell.
