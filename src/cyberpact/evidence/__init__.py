"""Evidence packages: encrypted storage, transfer between nodes, the custody log and court bundles."""
