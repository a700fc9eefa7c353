//! preditor: shell until its issue lands.
