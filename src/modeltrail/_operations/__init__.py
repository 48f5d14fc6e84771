"""Every write of the ledger, one function per idea, shared by the live path, the spool replay and imports."""
