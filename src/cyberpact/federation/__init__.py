"""Federation: node identity, peers, envelopes, inbox, outbox and receipts."""
