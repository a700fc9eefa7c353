//! executor: shell until its issue lands.
