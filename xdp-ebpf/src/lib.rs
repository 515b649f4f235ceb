//! The XDP program that steers xtcp's TCP flows into AF_XDP sockets, and the Rust mirror of
//! its map layouts. (Filled by the datapath work.)
