//! The sans-I/O TCP core (being written).
