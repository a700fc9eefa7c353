//! cTrader Open API: shell until its issue lands.
