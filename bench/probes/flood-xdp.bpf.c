// The flood probe of flood-frags-xdp.bpf.c, not frags-aware: the tail-call caller for the
// seed-style probes and the plain empty program, which are SEC("xdp").
#define FLOOD_SECTION "xdp"
#define FLOOD_PROGRAM flood_xdp
#include "flood-frags-xdp.bpf.c"
