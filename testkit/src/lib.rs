//! The one test kit of xtcp: every test that drives the stack goes through it, so the tests
//! run the code the engine runs (listeners, SYN queue, cookies, the TIME-WAIT table).
//!
//! - [`family`]: the address family the harnesses run over (IPv4 or IPv6);
//! - [`seg`]: the owned segment and the `(flags, seq, ack, len)` keys tests assert on;
//! - [`pair`]: the exact-segment harness, a client connection against a server `Stack`;
//! - [`rig`]: a server `Stack` driven by crafted client segments, for the scale tests;
//! - [`bulk`]: node stacks for the simulator and a bulk-transfer host with checked streams;
//! - [`icmp`]: ICMP error frames quoting a segment, and a simulated router with a smaller MTU;
//! - [`veth`]: the privileged fixture: veth pairs in namespaces, raw frames, example servers,
//!   and [`veth::skip`], which `scripts/test.sh` counts;
//! - [`routed6`]: [`veth::Veth::routed_peer`] over IPv6 as well;
//! - [`vlan_port`]: one side of a veth pair on an 802.1Q VLAN (tc programs, for kernels
//!   without VLAN sub-interfaces).
//!
//! A dev-dependency of `xtcp` (and the load generator); it turns on xtcp's `test-hooks`
//! feature (`Stack::set_next_isn`), which no production build has.

pub mod bulk;
pub mod family;
pub mod icmp;
pub mod pair;
pub mod rig;
pub mod routed6;
pub mod seg;
pub mod veth;
pub mod vlan_port;
