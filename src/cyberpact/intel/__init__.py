"""Threat intelligence: STIX 2.1 objects in TAXII 2.1 collections, TLP-governed sharing, MISP interchange."""
