"""The read side: queries, rankings, lineage and audit reads; never writes."""
