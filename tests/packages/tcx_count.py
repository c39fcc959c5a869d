#!/usr/bin/env python3
"""Prints how many BPF programs are attached to an interface's TCX hooks: "ingress N egress N".

  tcx_count.py IFNAME       (run in the interface's network namespace, as root)

bpftool 7.1 (Debian 12) does not show TCX attachments, so this asks the kernel directly:
bpf(BPF_PROG_QUERY) with target_ifindex and attach type BPF_TCX_INGRESS (46) / BPF_TCX_EGRESS (47).
"""
import ctypes, ctypes.util, os, socket, struct, sys

SYS_BPF = {"x86_64": 321, "aarch64": 280}[os.uname().machine]
BPF_PROG_QUERY = 16
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def count(ifindex, attach_type):
    # union bpf_attr, query part: target_ifindex, attach_type, query_flags, attach_flags,
    # prog_ids (u64), prog_cnt (u32), pad, prog_attach_flags, link_ids, link_attach_flags, revision
    attr = ctypes.create_string_buffer(struct.pack("=IIIIQIIQQQQ", ifindex, attach_type, 0, 0, 0, 0, 0, 0, 0, 0, 0), 64)
    if libc.syscall(SYS_BPF, BPF_PROG_QUERY, attr, 64) != 0:
        e = ctypes.get_errno()
        sys.exit(f"BPF_PROG_QUERY {attach_type} on {ifindex}: {os.strerror(e)}")
    return struct.unpack_from("=I", attr.raw, 24)[0]


ifindex = socket.if_nametoindex(sys.argv[1])
print(f"ingress {count(ifindex, 46)} egress {count(ifindex, 47)}")
