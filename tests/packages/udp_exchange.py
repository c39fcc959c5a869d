#!/usr/bin/env python3
"""Known UDP traffic for make test-packages.

  udp_exchange.py echo ADDRESS PORT          answer every datagram with itself, from PORT (until killed)
  udp_exchange.py send ADDRESS PORT COUNT SIZE
                                             send COUNT datagrams of SIZE payload bytes one at a time,
                                             each answered before the next (exit 1 if one is not)
On Ethernet + IPv4 each datagram is a frame of 14 + 20 + 8 + SIZE bytes each way.
"""
import socket, sys

mode, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "echo":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((address, port))
    print("listening", flush=True)
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)
elif mode == "send":
    count, size = int(sys.argv[4]), int(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    payload = b"s" * size
    for i in range(count):
        s.sendto(payload, (address, port))
        data, _ = s.recvfrom(65535)
        if data != payload:
            sys.exit(f"datagram {i}: a wrong answer")
    print(f"sent and received {count} datagrams of {size} bytes")
else:
    sys.exit(__doc__)
