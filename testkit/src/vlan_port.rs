//! An 802.1Q VLAN on one side of a veth pair, for the VLAN tests.
//!
//! The usual way, a VLAN sub-interface (`ip link add link X name X.100 type vlan id 100`),
//! needs a kernel built with `CONFIG_VLAN_8021Q`; the test machines' kernel (6.18) has it off
//! and loads no modules ("Error: Unknown device type"), and has no `act_vlan` or bridge VLAN
//! filtering either. [`vlan_port`] gets the same behaviour from a tc (clsact) program pair,
//! `testkit/bpf/vlan_port.c`, compiled here with clang and attached with `tc`: the interface's
//! IPv4 and ARP frames from addresses of one subnet leave tagged with the VID, and frames
//! arriving with that VID are untagged before the kernel sees them. So a kernel socket bound
//! to (or routed from) an address of that subnet talks over the VLAN, like one on `X.100`.
//!
//! Where the tag goes ([`set_tag_offload`]): the program pushes the tag as skb metadata;
//! with the device's `tx-vlan-offload` (`ethtool -K X txvlan`) off the kernel writes it into
//! the frame before the veth hands it over, and XDP/AF_XDP on the peer see it; with it on,
//! the tag stays metadata and the peer's XDP program sees an untagged frame. (A real VLAN
//! sub-interface behaves the same way: it hands tagged skbs to its parent.)

use std::path::PathBuf;
use std::process::Command;

/// Why the VLAN port cannot be made here (no clang, no tc), if so.
pub fn unavailable() -> Option<String> {
    if xtcp_xdp_ebpf::find_clang().is_none() {
        return Some("no clang >= 14 to build testkit/bpf/vlan_port.c".into());
    }
    let tc = Command::new("tc").arg("-V").output();
    if !tc.is_ok_and(|o| o.status.success()) {
        return Some("tc (iproute2) not installed".into());
    }
    None
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Makes `ifname` in namespace `ns` a member of VLAN `vid` for the senders in
/// `net`/`prefix` (see the module docs), with the tag written into the frame
/// (`txvlan off`). Everything goes away with the interface.
pub fn vlan_port(
    ns: &str,
    ifname: &str,
    vid: u16,
    net: std::net::Ipv4Addr,
    prefix: u8,
) -> Result<(), String> {
    let clang = xtcp_xdp_ebpf::find_clang().ok_or("no clang")?;
    let src = crate::veth::repo_root().join("testkit/bpf/vlan_port.c");
    let obj: PathBuf = std::env::temp_dir().join(format!(
        "xtcp-vlan-port-{}-{ns}-{ifname}.o",
        std::process::id()
    ));
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    run(Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg("-I/usr/include/x86_64-linux-gnu")
        .arg(format!("-DVID={vid}"))
        .arg(format!("-DNET={:#x}u", u32::from(net) & mask))
        .arg(format!("-DMASK={mask:#x}u"))
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj))?;
    let tc = |args: &[&str]| run(Command::new("tc").args(["-n", ns]).args(args));
    let o = obj.to_str().ok_or("temp path not UTF-8")?;
    let r = tc(&["qdisc", "add", "dev", ifname, "clsact"])
        .and_then(|()| {
            tc(&[
                "filter",
                "add",
                "dev",
                ifname,
                "egress",
                "bpf",
                "da",
                "obj",
                o,
                "sec",
                "tc/egress",
            ])
        })
        .and_then(|()| {
            tc(&[
                "filter",
                "add",
                "dev",
                ifname,
                "ingress",
                "bpf",
                "da",
                "obj",
                o,
                "sec",
                "tc/ingress",
            ])
        });
    let _ = std::fs::remove_file(&obj);
    r?;
    set_tag_offload(ns, ifname, false)
}

/// Turns `ifname`'s tx-vlan-offload on (the tag stays skb metadata, invisible to the veth
/// peer's XDP) or off (the kernel writes it into the frame).
pub fn set_tag_offload(ns: &str, ifname: &str, on: bool) -> Result<(), String> {
    run(Command::new("ip")
        .args(["netns", "exec", ns, "ethtool", "-K", ifname, "txvlan"])
        .arg(if on { "on" } else { "off" }))
}
