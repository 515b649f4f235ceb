// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * layout_probe.c - built and run on the host by build.rs. Prints, as Rust
 * constants, the sizes, offsets and numbers that xtcp_maps.h defines, so the
 * Rust mirror types are checked against the C compiler's view of the header
 * rather than against numbers copied by hand.
 */
#include <stddef.h>
#include <stdio.h>

#include "xtcp_maps.h"

#define CONST(name, value) printf("pub const %s: usize = %zu;\n", name, (size_t)(value))

int main(void)
{
	CONST("LISTENER_KEY_SIZE", sizeof(struct xtcp_listener_key));
	CONST("LISTENER_KEY_ALIGN", _Alignof(struct xtcp_listener_key));
	CONST("LISTENER_KEY_ADDR", offsetof(struct xtcp_listener_key, addr));
	CONST("LISTENER_KEY_PORT", offsetof(struct xtcp_listener_key, port));
	CONST("LISTENER_KEY_PAD", offsetof(struct xtcp_listener_key, pad));

	CONST("PORT_RANGE_SIZE", sizeof(struct xtcp_port_range));
	CONST("PORT_RANGE_ALIGN", _Alignof(struct xtcp_port_range));
	CONST("PORT_RANGE_ADDR", offsetof(struct xtcp_port_range, addr));
	CONST("PORT_RANGE_LO", offsetof(struct xtcp_port_range, lo));
	CONST("PORT_RANGE_HI", offsetof(struct xtcp_port_range, hi));
	CONST("PORT_RANGE_ENABLED", offsetof(struct xtcp_port_range, enabled));

	CONST("LISTENER6_KEY_SIZE", sizeof(struct xtcp_listener6_key));
	CONST("LISTENER6_KEY_ALIGN", _Alignof(struct xtcp_listener6_key));
	CONST("LISTENER6_KEY_ADDR", offsetof(struct xtcp_listener6_key, addr));
	CONST("LISTENER6_KEY_PORT", offsetof(struct xtcp_listener6_key, port));
	CONST("LISTENER6_KEY_PAD", offsetof(struct xtcp_listener6_key, pad));

	CONST("PORT_RANGE6_SIZE", sizeof(struct xtcp_port_range6));
	CONST("PORT_RANGE6_ALIGN", _Alignof(struct xtcp_port_range6));
	CONST("PORT_RANGE6_ADDR", offsetof(struct xtcp_port_range6, addr));
	CONST("PORT_RANGE6_LO", offsetof(struct xtcp_port_range6, lo));
	CONST("PORT_RANGE6_HI", offsetof(struct xtcp_port_range6, hi));
	CONST("PORT_RANGE6_ENABLED", offsetof(struct xtcp_port_range6, enabled));

	CONST("ADDR6_SIZE", sizeof(struct xtcp_addr6));
	CONST("MAX_ND6", XTCP_MAX_ND6);
	CONST("V6_MAX_EXT", XTCP_V6_MAX_EXT);

	CONST("MAX_LISTENERS", XTCP_MAX_LISTENERS);
	CONST("PORT_RANGE_SLOTS", XTCP_PORT_RANGE_SLOTS);
	CONST("MAX_QUEUES", XTCP_MAX_QUEUES);
	CONST("VLAN_SLOTS", XTCP_VLAN_SLOTS);
	CONST("CNT_REDIRECTED", XTCP_CNT_REDIRECTED);
	CONST("CNT_PASSED", XTCP_CNT_PASSED);
	CONST("CNT_MALFORMED", XTCP_CNT_MALFORMED);
	CONST("CNT_NO_SOCKET", XTCP_CNT_NO_SOCKET);
	CONST("CNT_MAX", XTCP_CNT_MAX);
	return 0;
}
