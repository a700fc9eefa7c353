//! Oracle Trader IPC line protocol (see PROTOCOL.md).
